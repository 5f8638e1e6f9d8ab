#!/usr/bin/env python
"""Train a text-to-image latent diffusion model (Rombach et al. 2022): a UNet2DConditionModel denoising the latents of
a frozen first stage, conditioned on a CLIP text encoder through cross-attention, with classifier-free guidance.

    accelerate launch training_scripts/diffusion/train_ldm.py     # built-in digits, captions from their labels
    accelerate launch training_scripts/diffusion/train_ldm.py --vae_name_or_path vae-digits
    accelerate launch training_scripts/diffusion/train_ldm.py --pretrained_model_name_or_path <SD folder> \
        --train_data_dir my_images/ --caption_column text --use_lora

The first stage is, in order: the one of --pretrained_model_name_or_path, --vae_name_or_path (an hfgen VAEModel
folder, e.g. one train_vae.py wrote, a diffusers AutoencoderKL, or a diffusers VQModel, e.g. the folder train_vqgan.py
wrote, whose latents are diffused before quantisation and quantised by its decoder), or a small hfgen VAEModel this
script trains first on the same images (`--first_stage_steps`). The text encoder is the pretrained one,
--text_encoder_name_or_path, or a small CLIP text transformer trained jointly from scratch with a tokenizer the script
writes from the captions.

The output folder loads with `hfgen.LatentDiffusionPipeline.from_pretrained(dir)`; with --use_lora it holds only the
LoRA weights in diffusers' format, for `pipeline.load_lora_weights(dir)` on the base model.
"""

import json
import logging
import math
import os
import tempfile

import torch
from accelerate.logging import get_logger
from accelerate.utils import set_seed
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel, VQModel
from tqdm.auto import tqdm
from transformers import CLIPTextModel, CLIPTokenizer

import hfgen
from hfgen.data import BUILTIN_DIGITS, collate_images, images_as_tensor
from hfgen.data.captions import (
    IndexedImages,
    LabelCaptions,
    batch_captions,
    collate_indexed,
    dataset_captions,
    drop_captions,
    grid_prompts,
)
from hfgen.metrics import load_clip_score
from hfgen.models.latent_diffusion import build_caption_text_encoder, load_clip_text_encoder, write_caption_tokenizer
from hfgen.pipelines.latent_diffusion.evaluation import (
    GUIDANCE_SCALE,
    NUM_INFERENCE_STEPS,
    TEXT_TO_IMAGE_METRIC_NAMES,
    measure_text_to_image,
    text_to_image_protocol,
    unguided_metrics,
)
from hfgen.pipelines.latent_diffusion.folders import sampling_pipeline
from hfgen.training import save_checkpoint
from hfgen.training.arguments import (
    add_data_arguments,
    add_run_arguments,
    check_run_arguments,
    print_dry_run,
    resolve_max_train_steps,
)
from hfgen.training.cli import check_flag_ranges, make_parser, run_script
from hfgen.training.diffusion import (
    DIFFUSION_FLAG_RANGES,
    add_diffusion_arguments,
    add_unet_lora,
    averaged_weights,
    check_space_base,
    create_ema,
    denoising_loss,
    encode_latents,
    encode_text,
    first_stage_latents,
    local_folder,
    noised_latents,
    save_lora,
)
from hfgen.training.evaluation import load_run_data, measure_references
from hfgen.training.hub import print_run_summary, push_folder, save_card_grid, write_model_card, write_run_record
from hfgen.training.runs import (
    check_finite,
    check_replicas,
    end_run,
    endless_batches,
    gradient_sync,
    make_accelerator,
    make_lr_schedulers,
    make_train_dataloader,
    random_flip,
    resume_run,
    save_grid,
    start_trackers,
    to_training_memory_format,
)

logger = get_logger(__name__)

DEFAULT_TRAIN_STEPS = 1500

# The first stage trained when none is given: a quarter of the image's side in 4 channels (4x8x8 for 32 px digits,
# the f=4 autoencoder of Rombach et al.), with a KL weight small enough that it reconstructs sharply (the diffusion
# model, not the prior, is what samples) but keeps the latents bounded.
FIRST_STAGE = dict(block_out_channels=[32, 64, 64], latent_channels=4, norm_num_groups=8, kl_weight=0.01)
FIRST_STAGE_LEARNING_RATE = 3e-3

# The UNet of a new model: two levels over the latent, cross-attention at both.
DEFAULT_UNET = dict(
    block_out_channels=(64, 128),
    layers_per_block=1,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    attention_head_dim=8,
    norm_num_groups=16,
)
# The text encoder trained from scratch: a 2-layer CLIP text transformer of width 64 over captions of at most 16
# tokens.
TEXT_HIDDEN_SIZE, TEXT_MAX_LENGTH = 64, 16
# The noise schedule of a new model: Stable Diffusion's (as in the LDM paper's latent models).
LATENT_SCHEDULE = dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)


def parse_args(input_args=None):
    parser = make_parser("Train a text-to-image latent diffusion model (or LoRA adapters on one).")
    add_data_arguments(parser, BUILTIN_DIGITS)
    parser.add_argument(
        "--caption_column",
        type=str,
        default=None,
        help="The dataset column holding each image's caption. Without it, captions are written from the class "
        "labels ('a handwritten digit seven' on the digits, 'a photo of <class>' on a folder's class subfolders); "
        "data without labels trains an unconditional model (empty captions).",
    )
    # models
    parser.add_argument(
        "--pretrained_model_name_or_path",
        type=str,
        default=None,
        help="A Stable-Diffusion-style folder or Hub id (vae, text_encoder, tokenizer, unet, scheduler), or a "
        "folder this script wrote: fine-tune it (or, with --use_lora, adapt it).",
    )
    parser.add_argument(
        "--vae_name_or_path",
        type=str,
        default=None,
        help="The first stage of a new model: an hfgen VAEModel folder (e.g. the output of train_vae.py), a "
        "diffusers AutoencoderKL (a folder or a pipeline folder's vae/) or a diffusers VQModel (e.g. the output of "
        "train_vqgan.py, or its vqvae/). By default one is trained first.",
    )
    parser.add_argument(
        "--first_stage_steps",
        type=int,
        default=500,
        help="Optimizer steps of the first stage trained when neither --vae_name_or_path nor "
        "--pretrained_model_name_or_path gives one.",
    )
    parser.add_argument(
        "--text_encoder_name_or_path",
        type=str,
        default=None,
        help="A CLIP text encoder with its tokenizer (a folder, a pipeline folder with text_encoder/ and "
        "tokenizer/, or a Hub id), frozen unless --train_text_encoder. By default a small one is trained from "
        "scratch with a tokenizer written from the captions.",
    )
    parser.add_argument(
        "--train_text_encoder", action="store_true", help="Also train a pretrained text encoder (not with LoRA)."
    )
    parser.add_argument(
        "--unet_config_name_or_path",
        type=str,
        default=None,
        help="A UNet2DConditionModel config (folder or config.json) for a new model; by default one is built.",
    )
    parser.add_argument("--gradient_checkpointing", action="store_true")
    # LoRA
    parser.add_argument(
        "--use_lora",
        action="store_true",
        help="Train only LoRA adapters on the UNet's attention projections (to_q, to_k, to_v, to_out.0) of "
        "--pretrained_model_name_or_path, and save them in diffusers' LoRA format.",
    )
    parser.add_argument("--lora_rank", type=int, default=4)
    parser.add_argument(
        "--lora_alpha", type=float, default=None, help="LoRA scaling numerator (scale alpha / rank); default rank."
    )
    # guidance and sampling
    parser.add_argument(
        "--cfg_dropout",
        type=float,
        default=0.1,
        help="Probability of training on the empty caption, so the model also learns the unconditional prediction "
        "that classifier-free guidance needs.",
    )
    parser.add_argument(
        "--guidance_scale", type=float, default=GUIDANCE_SCALE, help="Guidance of validation grids and the metrics."
    )
    parser.add_argument(
        "--clip_model_name_or_path",
        type=str,
        default=None,
        help="A CLIP model folder (model and processor): the CLIP score of samples against their prompts is "
        "measured with it.",
    )
    # optimisation
    parser.add_argument("--learning_rate", type=float, default=5e-4)
    parser.add_argument("--adam_beta1", type=float, default=0.9)
    parser.add_argument("--adam_beta2", type=float, default=0.999)
    parser.add_argument("--adam_weight_decay", type=float, default=0.0)
    add_diffusion_arguments(parser, num_inference_steps=NUM_INFERENCE_STEPS)
    parser.set_defaults(prediction_type=None, beta_schedule=LATENT_SCHEDULE["beta_schedule"])
    add_run_arguments(parser, family="ldm")
    parser.set_defaults(
        train_batch_size=64,
        lr_scheduler="cosine",
        lr_warmup_steps=50,
        max_grad_norm=1.0,
        checkpointing_steps=500,
        validation_steps=500,
    )
    args = parser.parse_args(input_args)
    check_run_arguments(parser, args)
    check_flag_ranges(
        parser,
        args,
        {
            **DIFFUSION_FLAG_RANGES,
            "first_stage_steps": (1, None, "closed"),
            "lora_rank": (1, None, "closed"),
            "lora_alpha": (0, None, "open"),
            "cfg_dropout": (0, 1, "high_open"),
            "guidance_scale": (0, None, "closed"),
        },
    )
    if args.use_lora and args.pretrained_model_name_or_path is None:
        parser.error("--use_lora adapts an existing model: give it with --pretrained_model_name_or_path")
    if args.use_lora:
        check_space_base(parser, args)
    if args.use_lora and args.prediction_type is not None:
        parser.error(
            "--prediction_type with --use_lora: the adapters are used with the base model's scheduler, whose "
            "prediction type they must keep; fine-tune fully to change it"
        )
    if args.use_lora and args.train_text_encoder:
        parser.error("--train_text_encoder trains the whole text encoder; with --use_lora only the UNet is adapted")
    if args.pretrained_model_name_or_path and (args.vae_name_or_path or args.text_encoder_name_or_path):
        parser.error(
            "--pretrained_model_name_or_path brings its own first stage and text encoder: leave out "
            "--vae_name_or_path and --text_encoder_name_or_path"
        )
    if args.use_lora:
        args.use_ema = False  # the adapters are small and few steps: the averaged adapters would lag behind
    return args


# --- models ---


# The diffusers first stages a folder's config.json may name (`_class_name`), and the class that loads each.
DIFFUSERS_STAGES = {"AutoencoderKL": AutoencoderKL, "VQModel": VQModel}


def first_stage_folder(path: str, flag: str) -> tuple[str, dict]:
    """The folder and config of the first stage in `path` (a folder or Hub id; itself, a pipeline's `vae/`, or a
    VQ-GAN folder's `vqvae/`): an hfgen VAEModel, a diffusers AutoencoderKL or a diffusers VQModel; anything else is a
    one-line error naming the folder and `flag`."""
    path = local_folder(path)
    for folder in (path, os.path.join(path, "vae"), os.path.join(path, "vqvae")):
        config_file = os.path.join(folder, "config.json")
        if os.path.isfile(config_file):
            with open(config_file, encoding="utf-8") as file:
                config = json.load(file)
            if config.get("model_type") == hfgen.VAEConfig.model_type or config.get("_class_name") in DIFFUSERS_STAGES:
                return folder, config
    raise ValueError(
        f"{flag} {path!r} holds no hfgen VAEModel, AutoencoderKL or VQModel (no config.json naming one, there or in "
        "vae/ or vqvae/): give the folder train_vae.py or train_vqgan.py wrote, or an AutoencoderKL folder"
    )


def load_first_stage(path: str, flag: str):
    folder, config = first_stage_folder(path, flag)
    if config.get("model_type") == hfgen.VAEConfig.model_type:
        return hfgen.VAEModel.from_pretrained(folder)
    return DIFFUSERS_STAGES[config["_class_name"]].from_pretrained(folder)


def default_color_mode(args) -> None:
    """Without --color_mode, a given first stage decides it (a Stable Diffusion VAE takes RGB even for greyscale
    data); otherwise the data does (see `resolve_color_mode`)."""
    path = args.pretrained_model_name_or_path or args.vae_name_or_path
    if args.color_mode is None and path is not None:
        flag = "--pretrained_model_name_or_path" if args.pretrained_model_name_or_path else "--vae_name_or_path"
        _, config = first_stage_folder(path, flag)
        args.color_mode = "L" if config.get("in_channels", 3) == 1 else "RGB"


def first_stage_latent_channels(vae) -> int:
    """Channels of the latents the UNet denoises: a VQModel's are its codes' (`vq_embed_dim`, by default its
    `latent_channels`)."""
    return getattr(vae.config, "vq_embed_dim", None) or vae.config.latent_channels


def first_stage_downsampling(vae) -> int:
    return 2 ** (len(vae.config.block_out_channels) - 1)


@torch.no_grad()
def latent_scaling_factor(vae, data, args, device) -> float:
    """1 / the standard deviation of the first stage's latents of (up to 1000) training images: scaled by it, the
    latents the diffusion model sees have unit variance, as its noise does (Rombach et al., appendix)."""
    train = data.evaluation.train
    images = images_as_tensor(
        train, args.resolution, args.color_mode, num_images=min(len(train), 1000), seed=args.seed
    )
    generator = torch.Generator(device=device).manual_seed(args.seed)
    latents = [first_stage_latents(vae, batch.to(device), generator) for batch in images.split(256)]
    return 1.0 / torch.cat(latents).std().item()


def train_first_stage(args, data, accelerator) -> hfgen.VAEModel:
    """The default first stage: a small VAEModel trained on the run's images, its latents scaled to unit variance.

    Every process trains the same model on the same batches with its own seeded random stream, inside a fork of
    torch's RNG, so the rest of the run draws what it would draw without this phase and no process waits for another
    (the model is small; data parallelism would not pay). The main process saves it in `<output_dir>/first_stage`
    with the facts it was trained from; a resumed run loads it from there (after checking those facts), so its
    latents are those the checkpoints were trained on.
    """
    folder = os.path.join(args.output_dir, "first_stage")
    facts = {
        "data": args.train_data_dir or args.dataset_name,
        "resolution": args.resolution,
        "color_mode": args.color_mode,
        "steps": args.first_stage_steps,
        "seed": args.seed,
    }
    facts_file = os.path.join(folder, "first_stage_facts.json")
    if os.path.isfile(os.path.join(folder, "model.safetensors")) and os.path.isfile(facts_file):
        with open(facts_file, encoding="utf-8") as file:
            saved = json.load(file)
        if saved != facts:
            raise ValueError(
                f"{folder} holds a first stage trained with {saved}, not {facts}: resume with those flags, or use "
                "another --output_dir"
            )
        return hfgen.VAEModel.from_pretrained(folder)
    channels = 1 if args.color_mode == "L" else 3
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        vae = hfgen.VAEModel(hfgen.VAEConfig(in_channels=channels, sample_size=args.resolution, **FIRST_STAGE))
        vae.to(accelerator.device)
        to_training_memory_format(args, vae)
        optimizer = torch.optim.AdamW(vae.parameters(), lr=FIRST_STAGE_LEARNING_RATE, fused=True)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.first_stage_steps)
        loader = make_train_dataloader(data.train, args, collate_images)
        batches = iter(())
        progress = tqdm(
            range(args.first_stage_steps), desc="first stage", disable=not accelerator.is_local_main_process
        )
        for step in progress:
            batch = next(batches, None)
            if batch is None:
                batches = iter(loader)
                batch = next(batches)
            output = vae(batch["pixel_values"].to(accelerator.device), sample_posterior=True)
            check_finite(output.loss, "the first stage's loss", step, args.output_dir)
            output.loss.backward()
            torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            progress.set_postfix(reconstruction=f"{output.reconstruction_loss.item():.1f}")
        vae.eval().to(memory_format=torch.contiguous_format)
        vae.config.scaling_factor = latent_scaling_factor(vae, data, args, accelerator.device)
    if accelerator.is_main_process:
        vae.save_pretrained(folder)
        with open(facts_file, "w", encoding="utf-8") as file:
            json.dump(facts, file, indent=2)
        logger.info(f"first stage saved in {folder} (latent scaling factor {vae.config.scaling_factor:.4f})")
    return vae


def build_models(args, data, captions, accelerator):
    """The first stage, text encoder and tokenizer, UNet and training noise schedule of the run, checked against each
    other and the data."""
    channels = 1 if args.color_mode == "L" else 3
    if args.pretrained_model_name_or_path is not None:
        path = args.pretrained_model_name_or_path
        vae = load_first_stage(path, "--pretrained_model_name_or_path")
        text_encoder = CLIPTextModel.from_pretrained(path, subfolder="text_encoder")
        tokenizer = CLIPTokenizer.from_pretrained(path, subfolder="tokenizer")
        unet = UNet2DConditionModel.from_pretrained(path, subfolder="unet")
        base_schedule = DDPMScheduler.from_pretrained(path, subfolder="scheduler").config
        args.prediction_type = args.prediction_type or base_schedule.get("prediction_type", "epsilon")
        noise_scheduler = DDPMScheduler.from_config(base_schedule, prediction_type=args.prediction_type)
        # the base's schedule is kept: the record shows it, not the flags' defaults
        args.beta_schedule = noise_scheduler.config.beta_schedule
        args.num_train_timesteps = noise_scheduler.config.num_train_timesteps
    else:
        vae = load_first_stage(args.vae_name_or_path, "--vae_name_or_path") if args.vae_name_or_path else None
        if vae is None and not args.dry_run:
            vae = train_first_stage(args, data, accelerator)
        if args.text_encoder_name_or_path is not None:
            text_encoder, tokenizer = load_clip_text_encoder(local_folder(args.text_encoder_name_or_path))
        else:
            with tempfile.TemporaryDirectory() as folder:
                # unconditional data still gets a (tiny) vocabulary: the pipeline encodes its empty prompts
                vocabulary = captions.vocabulary() if captions is not None else []
                tokenizer = write_caption_tokenizer(vocabulary, folder, TEXT_MAX_LENGTH)
            text_encoder = build_caption_text_encoder(tokenizer, hidden_size=TEXT_HIDDEN_SIZE)
        downsampling = (
            first_stage_downsampling(vae) if vae is not None else 2 ** (len(FIRST_STAGE["block_out_channels"]) - 1)
        )
        latent_channels = first_stage_latent_channels(vae) if vae is not None else FIRST_STAGE["latent_channels"]
        if args.unet_config_name_or_path is not None:
            unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(args.unet_config_name_or_path))
        else:
            unet = UNet2DConditionModel(
                sample_size=args.resolution // downsampling,
                in_channels=latent_channels,
                out_channels=latent_channels,
                cross_attention_dim=text_encoder.config.hidden_size,
                **DEFAULT_UNET,
            )
        args.prediction_type = args.prediction_type or "epsilon"
        noise_scheduler = DDPMScheduler(
            num_train_timesteps=args.num_train_timesteps,
            beta_schedule=args.beta_schedule,
            beta_start=LATENT_SCHEDULE["beta_start"],
            beta_end=LATENT_SCHEDULE["beta_end"],
            prediction_type=args.prediction_type,
            clip_sample=False,
        )
    if args.num_inference_steps > noise_scheduler.config.num_train_timesteps:
        raise ValueError(
            f"--num_inference_steps {args.num_inference_steps} is more than the "
            f"{noise_scheduler.config.num_train_timesteps} timesteps of the noise schedule"
        )
    if vae is not None:
        check_compatible(vae, text_encoder, unet, channels, args)
    if isinstance(vae, hfgen.VAEModel) and vae.config.scaling_factor == 1.0 and not args.dry_run:
        # an hfgen VAE never scaled for diffusion (train_vae.py leaves the factor at 1): scale it now, and the saved
        # pipeline's vae/ records the factor its latents were trained with
        vae.config.scaling_factor = latent_scaling_factor(vae, data, args, accelerator.device)
        logger.info(f"latent scaling factor of the first stage set to {vae.config.scaling_factor:.4f}")
    return vae, text_encoder, tokenizer, unet, noise_scheduler


def check_compatible(vae, text_encoder, unet, channels: int, args) -> None:
    """One-line errors for a first stage, text encoder and UNet that do not fit each other or the data."""
    if vae.config.in_channels != channels:
        raise ValueError(
            f"the first stage takes {vae.config.in_channels}-channel images but --color_mode {args.color_mode} "
            f"gives {channels}"
        )
    if unet.config.in_channels != first_stage_latent_channels(vae):
        raise ValueError(
            f"the UNet takes {unet.config.in_channels}-channel latents but the first stage makes "
            f"{first_stage_latent_channels(vae)}"
        )
    latent_size = args.resolution // first_stage_downsampling(vae)
    if unet.config.sample_size != latent_size:
        raise ValueError(
            f"the UNet denoises {unet.config.sample_size}px latents but --resolution {args.resolution} gives "
            f"{latent_size}px ones: pass --resolution {unet.config.sample_size * first_stage_downsampling(vae)}"
        )
    if unet.config.cross_attention_dim != text_encoder.config.hidden_size:
        raise ValueError(
            f"the UNet's cross_attention_dim is {unet.config.cross_attention_dim} but the text encoder's hidden_size "
            f"is {text_encoder.config.hidden_size}"
        )


# --- training step ---


def latent_diffusion_loss(vae, text_encoder, tokenizer, unet, noise_scheduler, pixel_values, texts, args):
    """Encode the images with the frozen first stage, then Algorithm 1 of Ho et al. in latent space, conditioned on
    the texts (some dropped to the empty caption for guidance)."""
    latents = encode_latents(vae, pixel_values)
    encoder_hidden_states = encode_text(
        text_encoder, tokenizer, drop_captions(texts, args.cfg_dropout), latents.device
    )
    noise, timesteps, noisy = noised_latents(latents, noise_scheduler, args.noise_offset)
    prediction = unet(noisy, timesteps, encoder_hidden_states=encoder_hidden_states).sample
    return denoising_loss(prediction, latents, noise, timesteps, noise_scheduler, args)


# --- evaluation ---


@torch.no_grad()
def validate(models, captions, data, args, accelerator, step, ema, trained_parameters, clip_metric=None) -> dict:
    """A grid of prompted samples (main process) and the metrics (all processes) of the averaged weights."""
    vae, text_encoder, tokenizer, unet, noise_scheduler = models
    with averaged_weights(ema, trained_parameters):
        unet_model, text_model = accelerator.unwrap_model(unet), accelerator.unwrap_model(text_encoder)
        text_was_training = text_model.training
        unet_model.eval()
        text_model.eval()
        pipeline = sampling_pipeline(vae, text_model, tokenizer, unet_model, noise_scheduler)
        if accelerator.is_main_process:
            prompts = grid_prompts(captions, args.num_validation_images)
            images = pipeline(
                prompt=prompts,
                guidance_scale=args.guidance_scale if any(prompts) else 1.0,
                num_inference_steps=args.num_inference_steps,
                generator=torch.Generator(device="cpu").manual_seed(args.seed),
            ).images
            columns = len(captions.phrases) if isinstance(captions, LabelCaptions) else None
            save_grid(images, os.path.join(args.output_dir, "validation"), "samples", accelerator, step, columns)
        metrics = measure_text_to_image(pipeline, captions, data, args, accelerator, args.guidance_scale, clip_metric)
        unet_model.train()
        text_model.train(text_was_training)
    accelerator.log({f"eval/{name}": value for name, value in metrics.items()}, step=step)
    logger.info(f"step {step}: " + ", ".join(f"{name} {value:.4g}" for name, value in metrics.items()))
    return metrics


def main(args):
    accelerator = make_accelerator(args)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)

    # 1. data and captions: every image is decoded before anything else, so a broken file fails first
    default_color_mode(args)
    data = load_run_data(args, accelerator, logger)
    captions = dataset_captions(data.evaluation.train, args.caption_column)
    if captions is None:
        logger.info("the data has neither labels nor --caption_column: training an unconditional model")

    # 2. models: built with the same seed everywhere, then each process gets its own stream of noise
    set_seed(args.seed)
    vae, text_encoder, tokenizer, unet, noise_scheduler = build_models(args, data, captions, accelerator)
    if args.dry_run:
        data = {split: len(images) for split, images in data.dataset.items()}
        print_dry_run(
            args,
            accelerator,
            unet_config=dict(unet.config),
            text_encoder_config=text_encoder.config.to_dict(),
            first_stage=vae.config.to_dict() if vae is not None else f"trained first: {FIRST_STAGE}",
            data=data,
        )
        return None
    clip_metric = (
        load_clip_score(args.clip_model_name_or_path, accelerator.device) if args.clip_model_name_or_path else None
    )
    vae.requires_grad_(False).eval().to(accelerator.device)
    train_text = args.text_encoder_name_or_path is None and args.pretrained_model_name_or_path is None
    train_text = train_text or args.train_text_encoder
    text_encoder.requires_grad_(train_text)
    if args.use_lora:
        add_unet_lora(unet, args.lora_rank, args.lora_alpha)
    to_training_memory_format(args, unet, vae)
    if args.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    trained_parameters = [p for model in (unet, text_encoder) for p in model.parameters() if p.requires_grad]
    ema = create_ema(trained_parameters, args) if args.use_ema else None
    set_seed(args.seed, device_specific=True)
    train_dataloader = make_train_dataloader(IndexedImages(data.train), args, collate_indexed)

    # 3. optimisation
    optimizer = torch.optim.AdamW(
        trained_parameters,
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        weight_decay=args.adam_weight_decay,
        fused=True,
    )
    updates_per_epoch = math.ceil(len(train_dataloader) / accelerator.num_processes / args.gradient_accumulation_steps)
    resolve_max_train_steps(args, updates_per_epoch, 1, DEFAULT_TRAIN_STEPS)
    (lr_scheduler,) = make_lr_schedulers(args, accelerator, optimizer)
    if train_text:
        unet, text_encoder, optimizer, train_dataloader, lr_scheduler = accelerator.prepare(
            unet, text_encoder, optimizer, train_dataloader, lr_scheduler
        )
    else:
        text_encoder.eval().to(accelerator.device)
        unet, optimizer, train_dataloader, lr_scheduler = accelerator.prepare(
            unet, optimizer, train_dataloader, lr_scheduler
        )
    if ema is not None:
        ema.to(accelerator.device)
        accelerator.register_for_checkpointing(ema)
    models = (vae, text_encoder, tokenizer, unet, noise_scheduler)

    start_trackers(accelerator, args, "train_ldm")

    # 4. resume
    global_step = resume_run(accelerator, args.output_dir, args.resume_from_checkpoint, logger)
    batches = endless_batches(accelerator, train_dataloader, global_step * args.gradient_accumulation_steps)
    total_batch = args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    logger.info(
        f"{len(data.train)} training images, {args.max_train_steps} steps, batch {total_batch} "
        f"({accelerator.num_processes} processes); training {'LoRA adapters' if args.use_lora else 'the UNet'}"
        f"{' and the text encoder' if train_text else ''}"
    )
    progress = tqdm(
        range(args.max_train_steps), initial=global_step, desc="steps", disable=not accelerator.is_local_main_process
    )

    # 5. the loop: one optimizer step per --gradient_accumulation_steps micro-batches, their mean loss
    unet.train()
    micro_batches = args.gradient_accumulation_steps
    synced = [unet, text_encoder] if train_text else [unet]
    while global_step < args.max_train_steps:
        for index in range(micro_batches):
            batch = next(batches)
            pixel_values = batch["pixel_values"]
            if args.random_flip:
                pixel_values = random_flip(pixel_values)
            texts = batch_captions(batch, captions)
            with gradient_sync(accelerator, synced, index, micro_batches):
                loss = latent_diffusion_loss(
                    vae, text_encoder, tokenizer, unet, noise_scheduler, pixel_values, texts, args
                )
                check_finite(loss, "the loss", global_step, args.output_dir)
                accelerator.backward(loss / micro_batches)
        if args.max_grad_norm is not None:
            accelerator.clip_grad_norm_(trained_parameters, args.max_grad_norm)
        optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.step(trained_parameters)
        global_step += 1
        progress.update(1)
        logs = {"loss": loss.item(), "lr": lr_scheduler.get_last_lr()[0]}
        progress.set_postfix(loss=f"{logs['loss']:.4f}")
        accelerator.log(logs, step=global_step)

        if global_step % args.checkpointing_steps == 0:
            save_checkpoint(accelerator, args.output_dir, global_step, args.checkpoints_total_limit)
        if global_step % args.validation_steps == 0 and global_step < args.max_train_steps:
            validate(models, captions, data, args, accelerator, global_step, ema, trained_parameters, clip_metric)
    progress.close()

    # 6. the end of the run: final metrics of the averaged weights with guidance and without (all processes); then,
    # on the main process, the Hub-ready folder (pipeline or LoRA file, sample grid, record, model card) and the upload
    run_facts = check_replicas(accelerator, unet, global_step, logger)
    metrics = validate(models, captions, data, args, accelerator, global_step, ema, trained_parameters, clip_metric)
    with averaged_weights(ema, trained_parameters):
        pipeline = sampling_pipeline(
            vae, accelerator.unwrap_model(text_encoder), tokenizer, accelerator.unwrap_model(unet), noise_scheduler
        )
        metrics.update(unguided_metrics(pipeline, captions, data, args, accelerator))
    if accelerator.is_main_process:
        references = measure_references(data.evaluation, args)
        unet_model, text_model = accelerator.unwrap_model(unet), accelerator.unwrap_model(text_encoder)
        if ema is not None:
            ema.copy_to(trained_parameters)  # the run is over: the saved model is the average
        for model in (unet_model, text_model, vae):
            model.eval().to(memory_format=torch.contiguous_format)
        pipeline = sampling_pipeline(vae, text_model, tokenizer, unet_model, noise_scheduler)
        if args.use_lora:
            save_lora(args.output_dir, unet_model)
        else:
            pipeline.save_pretrained(args.output_dir)
        prompts = grid_prompts(captions, 64)
        samples = pipeline(
            prompt=prompts,
            guidance_scale=args.guidance_scale if any(prompts) else 1.0,
            num_inference_steps=args.num_inference_steps,
            generator=torch.Generator(device="cpu").manual_seed(args.seed),
        ).images
        columns = len(captions.phrases) if isinstance(captions, LabelCaptions) else 8
        save_card_grid(samples, args.output_dir, columns=columns)
        protocol = text_to_image_protocol(data, captions, args)
        record = write_run_record(args, metrics, references, run_facts, protocol)
        family = "lora" if args.use_lora else "ldm"
        write_model_card(
            args,
            family,
            record,
            TEXT_TO_IMAGE_METRIC_NAMES,
            tags=["diffusion", "latent-diffusion", "text-to-image"] + (["lora"] if args.use_lora else []),
            pipeline_tag="text-to-image",
            unet_config=dict(unet_model.config),
            example_prompt=prompts[min(7, len(prompts) - 1)] or "",
            prompt_accuracy="class_accuracy" in metrics,
        )
        print_run_summary(args.output_dir, data.evaluation, metrics)
        if args.push_to_hub:
            push_folder(args, "train_ldm.py", logger, also_ignore=("first_stage/*",))
    end_run(accelerator)
    return metrics


if __name__ == "__main__":
    run_script(main, parse_args())
