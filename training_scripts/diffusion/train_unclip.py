#!/usr/bin/env python
"""Train unCLIP (Ramesh et al. 2022) on a frozen CLIP model: a prior from CLIP text embeddings to CLIP image
embeddings (diffusers' `PriorTransformer`, a diffusion prior predicting the clean embedding, and hfgen's regression
prior, its baseline) and a pixel-space decoder (diffusers' `UNet2DConditionModel`) that draws images from CLIP image
embeddings, with classifier-free guidance in both.

    accelerate launch training_scripts/vision_language/train_clip.py --output_dir clip-digits      # ~1 min, 2 cores
    accelerate launch training_scripts/diffusion/train_unclip.py --clip_model_name_or_path clip-digits
    accelerate launch training_scripts/diffusion/train_unclip.py --clip_model_name_or_path <CLIP folder> \\
        --train_data_dir my_images/ --caption_column text

The CLIP folder (a `CLIPModel` with its processor, as train_clip.py writes one or a Hub CLIP) stays frozen: every step
embeds its images with CLIP's vision tower and their captions (the data's caption column, or written from the class
labels) with its text tower. In the same step, the decoder learns to denoise the images given their image embedding
(replaced by zeros with probability --cfg_dropout, for guidance), the diffusion prior to recover the standardised image
embedding from a noised one given the caption (replaced by the empty caption with probability --prior_cfg_dropout),
and the regression prior to predict it from the caption's text embedding (cosine loss). The priors are small beside
the decoder, so the three train together.

The output folder loads with `hfgen.UnCLIPPipeline.from_pretrained(dir)` (the --prior_type prior inside): text to
image with `pipeline(prompt=...)`, variations with `pipeline(image=...)`. Its card holds the metrics measured at the
end: the priors' cosine and retrieval accuracy against the text-embedding baseline, FID, prompt accuracy and CLIP score
of prompted samples, and the similarity of variations against random pairs of real images.
"""

import logging
import math
import os

import torch
import torch.nn.functional as F
from accelerate.logging import get_logger
from accelerate.utils import set_seed
from diffusers import DDPMScheduler, PriorTransformer, UnCLIPScheduler, UNet2DConditionModel
from tqdm.auto import tqdm
from transformers import CLIPModel, CLIPProcessor

import hfgen
from hfgen.data import BUILTIN_DIGITS, images_as_tensor
from hfgen.data.captions import (
    IndexedImages,
    LabelCaptions,
    batch_captions,
    collate_indexed,
    drop_captions,
    grid_prompts,
)
from hfgen.pipelines.unclip.evaluation import (
    CARD_METRIC_NAMES,
    NUM_VARIATION_IMAGES,
    evaluate_unclip,
    run_captions,
    sampling_pipeline,
    unclip_protocol,
)
from hfgen.pipelines.unclip.pipeline_unclip import (
    DECODER_GUIDANCE_SCALE,
    DECODER_NUM_INFERENCE_STEPS,
    PRIOR_GUIDANCE_SCALE,
    PRIOR_NUM_INFERENCE_STEPS,
    check_decoder,
    clip_pixels,
    clip_towers,
    prior_text_inputs,
)
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
    averaged_weights,
    create_ema,
    denoising_loss,
    noised_latents,
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
from hfgen.training.vision_language import load_config

logger = get_logger(__name__)

DEFAULT_TRAIN_STEPS = 1000

# The decoder works in pixel space, so its cost grows with the image's area: at 16 px (which keeps every detail of the
# built-in digits, 8 x 8 scans) a step of 32 images took 0.28 s on one CPU thread shared with other jobs, against
# 1.0 s at 32 px. CLIP embeds the images at its own size whatever this is. Pass --resolution for larger images.
DEFAULT_RESOLUTION = 16

# The decoder of a new model: three levels over the image, cross-attention to the embedding's context tokens at the
# lowest one and in the middle block, where it is cheap; the embedding is also added to the timestep embedding
# (addition_embed_type "image"), as in unCLIP and Kandinsky 2.2.
DEFAULT_DECODER = dict(
    block_out_channels=(32, 64, 64),
    layers_per_block=1,
    down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    cross_attention_dim=64,
    attention_head_dim=8,
    norm_num_groups=8,
    encoder_hid_dim_type="image_proj",
    addition_embed_type="image",
)
DECODER_DOWNSAMPLING = 4
# The diffusion prior of a new model: a 4-layer causal transformer of width 128 over the caption's tokens, the text
# embedding, the timestep, the noised image embedding and the prediction token.
DEFAULT_PRIOR = dict(num_attention_heads=4, attention_head_dim=32, num_layers=4, additional_embeddings=4)
# The regression prior of a new model: a residual MLP of two 512-wide layers.
DEFAULT_REGRESSION_PRIOR = dict(hidden_size=512, num_hidden_layers=2)
# The prior's noise schedule: unCLIP's (1000 cosine steps; the UnCLIPScheduler's only schedule). Its predictions of
# the standardised embedding are clipped to this range while sampling.
PRIOR_CLIP_SAMPLE_RANGE = 5.0
# Training images (at most) whose image embeddings give the prior's standardisation (mean and std per dimension).
STANDARDISATION_IMAGES = 1000


def parse_args(input_args=None):
    parser = make_parser("Train unCLIP (a prior and a decoder) on a frozen CLIP model.")
    add_data_arguments(parser, BUILTIN_DIGITS)
    parser.add_argument(
        "--caption_column",
        type=str,
        default=None,
        help="The dataset column holding each image's caption. Without it, captions are written from the class "
        "labels ('a handwritten digit seven' on the digits, 'a photo of <class>' on a folder's class subfolders).",
    )
    # models
    parser.add_argument(
        "--clip_model_name_or_path",
        type=str,
        required=True,
        help="The CLIP model (a folder or Hub id holding a CLIPModel and its CLIPProcessor, e.g. the output of "
        "train_clip.py), frozen: its embeddings are what the prior maps and the decoder draws from.",
    )
    parser.add_argument(
        "--prior_type",
        type=str,
        default="diffusion",
        choices=["diffusion", "regression"],
        help="The prior the saved pipeline holds; both are trained and measured, the other as its comparison.",
    )
    parser.add_argument(
        "--decoder_config_name_or_path",
        type=str,
        default=None,
        help="A UNet2DConditionModel config (folder or config.json) for the decoder, with encoder_hid_dim_type "
        "'image_proj' and/or addition_embed_type 'image'; by default one is built.",
    )
    parser.add_argument(
        "--prior_config_name_or_path",
        type=str,
        default=None,
        help="A PriorTransformer config (folder or config.json) for the diffusion prior; its embedding sizes are set "
        "from the CLIP model. By default a small one.",
    )
    parser.add_argument(
        "--regression_prior_config_name_or_path",
        type=str,
        default=None,
        help="An UnCLIPRegressionPriorConfig (folder or config.json) for the regression prior; its embedding_dim is "
        "set from the CLIP model. By default a small one.",
    )
    # guidance and sampling
    parser.add_argument(
        "--cfg_dropout",
        type=float,
        default=0.1,
        help="Probability of training the decoder on the zero embedding, the unconditional input of its guidance.",
    )
    parser.add_argument(
        "--prior_cfg_dropout",
        type=float,
        default=0.1,
        help="Probability of training the diffusion prior on the empty caption, the unconditional input of its "
        "guidance.",
    )
    parser.add_argument("--guidance_scale", type=float, default=DECODER_GUIDANCE_SCALE, help="Decoder guidance.")
    parser.add_argument(
        "--prior_guidance_scale", type=float, default=PRIOR_GUIDANCE_SCALE, help="Diffusion prior guidance."
    )
    parser.add_argument("--prior_num_inference_steps", type=int, default=PRIOR_NUM_INFERENCE_STEPS)
    parser.add_argument(
        "--prior_num_train_timesteps", type=int, default=1000, help="Timesteps of the prior's cosine schedule."
    )
    parser.add_argument(
        "--num_variation_images",
        type=int,
        default=NUM_VARIATION_IMAGES,
        help="Held-out images whose variations the metrics measure (at most).",
    )
    # optimisation
    parser.add_argument("--learning_rate", type=float, default=5e-4, help="The decoder's.")
    parser.add_argument("--prior_learning_rate", type=float, default=1e-3, help="The priors'.")
    parser.add_argument("--adam_beta1", type=float, default=0.9)
    parser.add_argument("--adam_beta2", type=float, default=0.999)
    parser.add_argument("--adam_weight_decay", type=float, default=0.0)
    add_diffusion_arguments(parser, num_inference_steps=DECODER_NUM_INFERENCE_STEPS)
    add_run_arguments(parser, family="unclip")
    parser.set_defaults(
        resolution=DEFAULT_RESOLUTION,
        train_batch_size=32,
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
            "cfg_dropout": (0, 1, "high_open"),
            "prior_cfg_dropout": (0, 1, "high_open"),
            "guidance_scale": (0, None, "closed"),
            "prior_guidance_scale": (0, None, "closed"),
            "prior_num_inference_steps": (1, None, "closed"),
            "prior_num_train_timesteps": (2, None, "closed"),
            "num_variation_images": (1, None, "closed"),
            "prior_learning_rate": (0, None, "open"),
        },
    )
    for flag, steps, schedule in (
        ("num_inference_steps", args.num_inference_steps, "num_train_timesteps"),
        ("prior_num_inference_steps", args.prior_num_inference_steps, "prior_num_train_timesteps"),
    ):
        if steps > getattr(args, schedule):
            parser.error(f"--{flag} {steps} is more than the {getattr(args, schedule)} of --{schedule}")
    if args.decoder_config_name_or_path is None and args.resolution % DECODER_DOWNSAMPLING:
        parser.error(
            f"--resolution must be a multiple of {DECODER_DOWNSAMPLING} for the default decoder, got {args.resolution}"
        )
    return args


# --- models ---


def load_clip(path: str) -> tuple[CLIPModel, CLIPProcessor]:
    """The frozen CLIP model and processor of --clip_model_name_or_path; anything else is a one-line error."""
    try:
        return CLIPModel.from_pretrained(path).eval(), CLIPProcessor.from_pretrained(path)
    except (OSError, ValueError, KeyError, TypeError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"--clip_model_name_or_path {path!r} is not a CLIP model with its processor ({first_line}): give a folder "
            "holding both, e.g. the output of training_scripts/vision_language/train_clip.py"
        ) from None


def build_models(args, clip: CLIPModel, tokenizer):
    """The decoder, the diffusion prior and the regression prior (from their config flags or the defaults), sized
    for the CLIP model's embeddings and the data; and the two noise schedules."""
    embedding_dim = clip.config.projection_dim
    text_config = clip.config.text_config
    channels = 1 if args.color_mode == "L" else 3
    if args.decoder_config_name_or_path is not None:
        decoder_config = UNet2DConditionModel.load_config(args.decoder_config_name_or_path)
        decoder = UNet2DConditionModel.from_config(decoder_config)
    else:
        decoder = UNet2DConditionModel(
            sample_size=args.resolution,
            in_channels=channels,
            out_channels=channels,
            encoder_hid_dim=embedding_dim,
            **DEFAULT_DECODER,
        )
    check_decoder(decoder, embedding_dim)
    if decoder.config.sample_size != args.resolution or decoder.config.out_channels != channels:
        raise ValueError(
            f"the decoder makes {decoder.config.sample_size}px {decoder.config.out_channels}-channel images but the "
            f"data is {args.resolution}px {args.color_mode}: pass --resolution {decoder.config.sample_size} (and the "
            "matching --color_mode)"
        )
    # the prior attends to the caption's tokens when the text encoder's hidden states have the embedding's width
    attends_to_tokens = text_config.hidden_size == embedding_dim
    prior_sizes = dict(
        embedding_dim=embedding_dim,
        num_embeddings=tokenizer.model_max_length if attends_to_tokens else 0,
        encoder_hid_proj_type="linear" if attends_to_tokens else None,
    )
    if args.prior_config_name_or_path is not None:
        prior_config = PriorTransformer.load_config(args.prior_config_name_or_path)
        prior = PriorTransformer.from_config({**prior_config, **prior_sizes})
    else:
        prior = PriorTransformer(**DEFAULT_PRIOR, **prior_sizes)
    if args.regression_prior_config_name_or_path is not None:
        regression_config = load_config(
            hfgen.UnCLIPRegressionPriorConfig,
            args.regression_prior_config_name_or_path,
            "--regression_prior_config_name_or_path",
        )
        regression_config.embedding_dim = embedding_dim
    else:
        regression_config = hfgen.UnCLIPRegressionPriorConfig(embedding_dim=embedding_dim, **DEFAULT_REGRESSION_PRIOR)
    regression = hfgen.UnCLIPRegressionPrior(regression_config)
    decoder_schedule = DDPMScheduler(
        num_train_timesteps=args.num_train_timesteps,
        beta_schedule=args.beta_schedule,
        prediction_type=args.prediction_type,
    )
    prior_schedule = UnCLIPScheduler(
        num_train_timesteps=args.prior_num_train_timesteps,
        prediction_type="sample",
        clip_sample_range=PRIOR_CLIP_SAMPLE_RANGE,
    )
    return decoder, prior, regression, decoder_schedule, prior_schedule


@torch.no_grad()
def standardise_prior(prior: PriorTransformer, image_encoder, image_processor, data, args, device) -> None:
    """Set the diffusion prior's `clip_mean` / `clip_std` to those of the image embeddings of (up to 1000) training
    images: it then diffuses standardised embeddings, whose dimensions all have unit variance as its noise does, and
    `post_process_latents` undoes it. Fixed, not trained."""
    train = data.evaluation.train
    images = images_as_tensor(
        train, args.resolution, args.color_mode, num_images=min(len(train), STANDARDISATION_IMAGES), seed=args.seed
    )
    embeds = torch.cat(
        [image_embeddings(image_encoder, image_processor, part.to(device)) for part in images.split(256)]
    )
    prior.clip_mean.copy_(embeds.mean(dim=0, keepdim=True))
    prior.clip_std.copy_(embeds.std(dim=0, keepdim=True).clamp(min=1e-4))
    prior.clip_mean.requires_grad_(False)
    prior.clip_std.requires_grad_(False)


def image_embeddings(image_encoder, image_processor, images: torch.Tensor) -> torch.Tensor:
    """Unit-norm CLIP image embeddings of images in [-1, 1] (as the pipeline embeds tensors)."""
    pixels = clip_pixels(
        images, image_encoder.config.image_size, image_processor.image_mean, image_processor.image_std
    )
    return F.normalize(image_encoder(pixel_values=pixels).image_embeds, dim=-1)


def text_conditioning(text_encoder, tokenizer, texts: list[str], device) -> tuple:
    """`(text_embeds, last_hidden_state, attention_mask)` of `texts`, padded as the pipeline pads prompts."""
    inputs = tokenizer(
        texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).to(device)
    output = text_encoder(input_ids=inputs.input_ids, attention_mask=inputs.attention_mask)
    return output.text_embeds, output.last_hidden_state, inputs.attention_mask.bool()


# --- training step ---


def unclip_losses(models, clip_parts, schedules, pixel_values, texts, args) -> dict:
    """The three losses of one batch: the decoder's denoising loss under the (sometimes zeroed) image embeddings,
    the diffusion prior's squared error on the standardised clean embedding (its target, as in unCLIP) under the
    (sometimes emptied) captions, and the regression prior's cosine loss."""
    decoder, prior, regression = models
    text_encoder, tokenizer, image_encoder, image_processor = clip_parts
    decoder_schedule, prior_schedule = schedules
    device = pixel_values.device
    with torch.no_grad():
        image_embeds = image_embeddings(image_encoder, image_processor, pixel_values)
        text_embeds, _, _ = text_conditioning(text_encoder, tokenizer, texts, device)
        prior_texts = drop_captions(texts, args.prior_cfg_dropout)
        prior_text_embeds, hidden_states, mask = text_conditioning(text_encoder, tokenizer, prior_texts, device)
    # 1. the decoder: Algorithm 1 of Ho et al. on the images, conditioned on their embeddings
    keep = (torch.rand(pixel_values.shape[0], 1, device=device) >= args.cfg_dropout).to(image_embeds.dtype)
    noise, timesteps, noisy = noised_latents(pixel_values, decoder_schedule, args.noise_offset)
    prediction = decoder(
        noisy, timesteps, encoder_hidden_states=None, added_cond_kwargs={"image_embeds": image_embeds * keep}
    ).sample
    decoder_loss = denoising_loss(prediction, pixel_values, noise, timesteps, decoder_schedule, args)
    # 2. the diffusion prior: the clean standardised embedding from a noised one, given the caption
    unwrapped_prior = prior.module if hasattr(prior, "module") else prior
    target = (image_embeds - unwrapped_prior.clip_mean) / unwrapped_prior.clip_std
    prior_timesteps = torch.randint(0, prior_schedule.config.num_train_timesteps, (target.shape[0],), device=device)
    noisy_embeds = prior_schedule.add_noise(target, torch.randn_like(target), prior_timesteps)
    predicted = prior(
        noisy_embeds,
        timestep=prior_timesteps,
        **prior_text_inputs(unwrapped_prior, prior_text_embeds, hidden_states, mask),
    ).predicted_image_embedding
    prior_loss = F.mse_loss(predicted, target)
    # 3. the regression prior: the image embedding from the caption's text embedding
    regression_loss = regression(text_embeds, image_embeds=image_embeds).loss
    return {"decoder": decoder_loss, "prior": prior_loss, "regression_prior": regression_loss}


# --- evaluation ---


def pipelines(models, clip_parts, schedules, accelerator, args) -> tuple:
    """The pipeline with --prior_type's prior, and the same with the other prior (for its metrics), on the current
    weights."""
    decoder, prior, regression = (accelerator.unwrap_model(model) for model in models)
    text_encoder, tokenizer, image_encoder, image_processor = clip_parts
    shared = dict(
        decoder=decoder,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        image_encoder=image_encoder,
        feature_extractor=image_processor,
    )
    built = {
        kind: sampling_pipeline({**shared, "prior": model}, *schedules)
        for kind, model in (("diffusion", prior), ("regression", regression))
    }
    other = "regression" if args.prior_type == "diffusion" else "diffusion"
    return built[args.prior_type], built[other]


@torch.no_grad()
def sample_grids(pipeline, captions, data, args, count: int) -> tuple[list, list, int]:
    """`(text-to-image samples, variations, columns)` for grids: `count` prompted samples (the classes in turn) and,
    for eight held-out images, the images then two variations of each."""
    prompts = grid_prompts(captions, count)
    generator = torch.Generator().manual_seed(args.seed)
    samples = pipeline(
        prompt=prompts,
        generator=generator,
        prior_guidance_scale=args.prior_guidance_scale,
        prior_num_inference_steps=args.prior_num_inference_steps,
        guidance_scale=args.guidance_scale,
        num_inference_steps=args.num_inference_steps,
    ).images
    inputs = torch.stack([data.eval[i]["pixel_values"] for i in range(min(8, len(data.eval)))])
    variations = [
        pipeline(
            image=(inputs + 1) / 2,
            generator=torch.Generator().manual_seed(args.seed + row),
            guidance_scale=args.guidance_scale,
            num_inference_steps=args.num_inference_steps,
        ).images
        for row in range(2)
    ]
    originals = pipeline.image_processor.postprocess(inputs, output_type="pil")
    return samples, originals + variations[0] + variations[1], grid_columns(captions)


def grid_columns(captions) -> int:
    """A grid's columns: one per class for captions written from labels, else eight."""
    return len(captions.phrases) if isinstance(captions, LabelCaptions) else 8


@torch.no_grad()
def validate(models, clip_parts, schedules, captions, data, args, accelerator, step, ema, trained) -> dict:
    """Grids (main process) and the metrics (all processes) of the averaged weights."""
    with averaged_weights(ema, trained):
        for model in models:
            model.eval()
        pipeline, other = pipelines(models, clip_parts, schedules, accelerator, args)
        if accelerator.is_main_process:
            samples, variations, columns = sample_grids(pipeline, captions, data, args, args.num_validation_images)
            folder = os.path.join(args.output_dir, "validation")
            save_grid(samples, folder, "samples", accelerator, step, columns)
            save_grid(variations, folder, "variations", accelerator, step, len(variations) // 3)
        metrics = evaluate_unclip(pipeline, captions, data, args, accelerator, other)
        for model in models:
            model.train()
    accelerator.log({f"eval/{name}": value for name, value in metrics.items()}, step=step)
    logger.info(f"step {step}: " + ", ".join(f"{name} {value:.4g}" for name, value in metrics.items()))
    return metrics


def main(args):
    accelerator = make_accelerator(args)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)

    # 1. the CLIP model first (a wrong folder costs nothing), then the data and captions: every image is decoded
    # before anything else, so a broken file fails early
    clip, processor = load_clip(args.clip_model_name_or_path)
    data = load_run_data(args, accelerator, logger)
    captions = run_captions(data, args.caption_column)

    # 2. models: built with the same seed everywhere, then each process gets its own stream of noise
    set_seed(args.seed)
    text_encoder, image_encoder = (tower.to(accelerator.device) for tower in clip_towers(clip))
    text_encoder.requires_grad_(False)
    image_encoder.requires_grad_(False)
    tokenizer, image_processor = processor.tokenizer, processor.image_processor
    decoder, prior, regression, decoder_schedule, prior_schedule = build_models(args, clip, tokenizer)
    if args.dry_run:
        data = {split: len(images) for split, images in data.dataset.items()}
        print_dry_run(
            args,
            accelerator,
            decoder_config=dict(decoder.config),
            prior_config=dict(prior.config),
            regression_prior_config=regression.config.to_dict(),
            data=data,
        )
        return None
    prior.to(accelerator.device)
    standardise_prior(prior, image_encoder, image_processor, data, args, accelerator.device)
    to_training_memory_format(args, decoder)
    models = (decoder, prior, regression)
    trained = [p for model in models for p in model.parameters() if p.requires_grad]
    ema = create_ema(trained, args) if args.use_ema else None
    set_seed(args.seed, device_specific=True)
    train_dataloader = make_train_dataloader(IndexedImages(data.train), args, collate_indexed)

    # 3. optimisation: one optimizer, the decoder's learning rate and the priors'
    prior_parameters = [p for model in (prior, regression) for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": list(decoder.parameters()), "lr": args.learning_rate},
            {"params": prior_parameters, "lr": args.prior_learning_rate},
        ],
        betas=(args.adam_beta1, args.adam_beta2),
        weight_decay=args.adam_weight_decay,
        fused=True,
    )
    updates_per_epoch = math.ceil(len(train_dataloader) / accelerator.num_processes / args.gradient_accumulation_steps)
    resolve_max_train_steps(args, updates_per_epoch, 1, DEFAULT_TRAIN_STEPS)
    (lr_scheduler,) = make_lr_schedulers(args, accelerator, optimizer)
    decoder, prior, regression, optimizer, train_dataloader, lr_scheduler = accelerator.prepare(
        decoder, prior, regression, optimizer, train_dataloader, lr_scheduler
    )
    if ema is not None:
        ema.to(accelerator.device)
        accelerator.register_for_checkpointing(ema)
    models = (decoder, prior, regression)
    clip_parts = (text_encoder, tokenizer, image_encoder, image_processor)
    schedules = (decoder_schedule, prior_schedule)

    start_trackers(accelerator, args, "train_unclip")

    # 4. resume
    global_step = resume_run(accelerator, args.output_dir, args.resume_from_checkpoint, logger)
    batches = endless_batches(accelerator, train_dataloader, global_step * args.gradient_accumulation_steps)
    total_batch = args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    logger.info(
        f"{len(data.train)} training images, {args.max_train_steps} steps, batch {total_batch} "
        f"({accelerator.num_processes} processes); CLIP embeddings of width {clip.config.projection_dim}, "
        f"pipeline prior: {args.prior_type}"
    )
    progress = tqdm(
        range(args.max_train_steps), initial=global_step, desc="steps", disable=not accelerator.is_local_main_process
    )

    # 5. the loop: one optimizer step per --gradient_accumulation_steps micro-batches, their mean loss
    for model in models:
        model.train()
    micro_batches = args.gradient_accumulation_steps
    while global_step < args.max_train_steps:
        for index in range(micro_batches):
            batch = next(batches)
            pixel_values = batch["pixel_values"]
            if args.random_flip:
                pixel_values = random_flip(pixel_values)
            texts = batch_captions(batch, captions)
            with gradient_sync(accelerator, list(models), index, micro_batches):
                losses = unclip_losses(models, clip_parts, schedules, pixel_values, texts, args)
                loss = sum(losses.values())
                check_finite(loss, "the loss", global_step, args.output_dir)
                accelerator.backward(loss / micro_batches)
        if args.max_grad_norm is not None:
            for model in models:
                accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.step(trained)
        global_step += 1
        progress.update(1)
        logs = {f"loss/{name}": value.item() for name, value in losses.items()}
        logs["lr"] = lr_scheduler.get_last_lr()[0]
        progress.set_postfix(loss=f"{loss.item():.4f}")
        accelerator.log(logs, step=global_step)

        if global_step % args.checkpointing_steps == 0:
            save_checkpoint(accelerator, args.output_dir, global_step, args.checkpoints_total_limit)
        if global_step % args.validation_steps == 0 and global_step < args.max_train_steps:
            validate(models, clip_parts, schedules, captions, data, args, accelerator, global_step, ema, trained)
    progress.close()

    # 6. the end of the run: final metrics of the averaged weights (all processes); then, on the main process, the
    # Hub-ready folder (pipeline, sample and variation grids, record, model card) and the upload
    run_facts = check_replicas(accelerator, decoder, global_step, logger)
    metrics = validate(models, clip_parts, schedules, captions, data, args, accelerator, global_step, ema, trained)
    if accelerator.is_main_process:
        references = measure_references(data.evaluation, args)
        if ema is not None:
            ema.copy_to(trained)  # the run is over: the saved models are the averages
        for model in models:
            accelerator.unwrap_model(model).eval().to(memory_format=torch.contiguous_format)
        pipeline, _ = pipelines(models, clip_parts, schedules, accelerator, args)
        pipeline.save_pretrained(args.output_dir)
        # samples.png: eight full rows (a column per class)
        samples, variations, columns = sample_grids(pipeline, captions, data, args, 8 * grid_columns(captions))
        save_card_grid(samples, args.output_dir, columns=columns)
        save_card_grid(variations, args.output_dir, columns=len(variations) // 3, name="variations.png")
        protocol = unclip_protocol(data, captions, args)
        record = write_run_record(args, metrics, references, run_facts, protocol)
        write_model_card(
            args,
            "unclip",
            record,
            CARD_METRIC_NAMES,
            tags=["diffusion", "unclip", "text-to-image", "image-variation"],
            pipeline_tag="text-to-image",
            decoder_config=dict(accelerator.unwrap_model(decoder).config),
            prior_config=dict(accelerator.unwrap_model(prior).config),
            example_prompt=captions.prompt(min(7, len(captions.phrases) - 1))
            if isinstance(captions, LabelCaptions)
            else captions.texts[0],
            prompt_accuracy="class_accuracy" in metrics,
        )
        print_run_summary(args.output_dir, data.evaluation, metrics)
        if args.push_to_hub:
            push_folder(args, "train_unclip.py", logger)
    end_run(accelerator)
    return metrics


if __name__ == "__main__":
    run_script(main, parse_args())
