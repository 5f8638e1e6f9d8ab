#!/usr/bin/env python
"""Train a VQ-GAN (Esser et al. 2021) on images, then a GPT-2 prior over its codes, ending with a Hub-ready folder.

    accelerate launch training_scripts/vae/train_vqgan.py                  # built-in digits, ~5 minutes on 2 CPU cores
    accelerate launch training_scripts/vae/train_vqgan.py --train_data_dir my_images/ --resolution 64 \
        --perceptual_model facebook/dinov2-small --codebook_ema

The autoencoder is diffusers' `VQModel` (encoder, codebook, decoder); it learns from an L1 pixel loss, an L1 loss on an
image pyramid (and, with `--perceptual_model`, a feature-space loss through a transformers vision backbone), the
commitment loss, and, after `--discriminator_start` steps, a PatchGAN's adversarial loss scaled by the adaptive weight.
The codebook learns from the codebook loss or, with `--codebook_ema`, by moving averages; codes unused for
`--dead_code_steps` steps are restarted at encoder outputs. Then a small GPT-2 learns the code sequences of the
training images (`--prior_train_steps`, 0 skips it), so the folder also samples new images.

The output folder loads with `hfgen.VQGANPipeline.from_pretrained(dir)` (`reconstruct(images)`, and sampling through
the prior); its `vqvae/` with `diffusers.VQModel.from_pretrained(dir, subfolder="vqvae")`, and serves as the first
stage of train_ldm.py (`--vae_name_or_path dir`). It holds the model card (README.md) with the metrics measured at the
end of training, `samples.png`, `metrics.json` and `training_args.json`.
"""

import functools
import logging
import math
import os

import torch
import torch.nn.functional as F
from accelerate.logging import get_logger
from accelerate.utils import set_seed
from diffusers import VQModel
from diffusers.optimization import get_scheduler
from tqdm.auto import tqdm
from transformers import GPT2Config, GPT2LMHeadModel

import hfgen
from hfgen.data import BUILTIN_DIGITS, collate_images
from hfgen.losses import adaptive_adversarial_weight, discriminator_loss, generator_loss, pyramid_l1
from hfgen.models.vqgan import (
    DeadCodeRestarts,
    EMACodebook,
    code_sequences,
    codebook_perplexity,
    load_perceptual_loss,
    nearest_codes,
    prior_config,
)
from hfgen.models.vqgan.training import VQGANAutoencoder, update_codebook
from hfgen.pipelines.vqgan.evaluation import CARD_METRIC_NAMES, evaluate_reconstructions, evaluate_vqgan
from hfgen.pipelines.vqgan.pipeline_vqgan import vq_latent_shape
from hfgen.training import save_checkpoint
from hfgen.training.adversarial import Phase, run_phase
from hfgen.training.arguments import (
    add_data_arguments,
    add_run_arguments,
    check_run_arguments,
    print_dry_run,
    resolve_max_train_steps,
)
from hfgen.training.cli import check_flag_ranges, make_parser, run_script
from hfgen.training.evaluation import evaluation_batches, load_run_data, measure_references, run_protocol
from hfgen.training.hub import print_run_summary, push_folder, save_card_grid, write_model_card, write_run_record
from hfgen.training.runs import (
    check_finite,
    check_replicas,
    end_run,
    endless_batches,
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

# Default lengths, whatever the size of the data: the autoencoder's steps of batch 32 (about 8 passes over the digits'
# training images), then the prior's (about 11 passes over their code sequences; a step of the 3-layer prior over 65
# tokens costs about 1.4 times one of the autoencoder at 32 px without its discriminator, measured on one CPU thread).
DEFAULT_TRAIN_STEPS = 360
DEFAULT_PRIOR_TRAIN_STEPS = 500

# The VQModel of a new run when no --model_config_name_or_path is given: sized so that the default run on the built-in
# digits trains in about five minutes on 2 CPU cores. Three blocks give codes at a quarter of the image's side (8x8
# for 32 px, 64 tokens for the prior); a small code dimension (4) and 128 codes keep the codebook well used
# (low-dimensional codes collapse less, Yu et al. 2022); 16 channels at full resolution (32 cost 60% more time per
# step) and no attention in the middle block, which costs more than it gives at 8x8.
DEFAULT_ARCHITECTURE = dict(
    block_out_channels=[16, 32, 64],
    layers_per_block=1,
    latent_channels=4,
    num_vq_embeddings=128,
    norm_num_groups=8,
    mid_block_add_attention=False,
)

# The PatchGAN (hfgen's CycleGAN discriminator): 64 channels doubling per layer as in Esser et al., 2 stride-2 layers
# up to 32 px (patches of 34 px), 3 beyond (70 px, the paper's), instance norm.
DISCRIMINATOR_CHANNELS = 64


def parse_args(input_args=None):
    parser = make_parser("Train a VQ-GAN (diffusers VQModel) and its GPT-2 token prior.")
    add_data_arguments(parser, BUILTIN_DIGITS)
    # model
    parser.add_argument(
        "--pretrained_model_name_or_path",
        type=str,
        default=None,
        help="Start from a trained VQ-GAN folder (its vqvae/ and discriminator/) or a VQModel folder.",
    )
    parser.add_argument(
        "--model_config_name_or_path",
        type=str,
        default=None,
        help="A diffusers VQModel config (folder or config.json) for a new model; by default one is built for the "
        "data (see DEFAULT_ARCHITECTURE).",
    )
    # quantisation
    parser.add_argument(
        "--commitment_cost", type=float, default=0.25, help="beta: weight of the commitment loss ||z - sg[e]||^2."
    )
    parser.add_argument(
        "--codebook_ema",
        action="store_true",
        help="Update the codebook by exponential moving averages of the encoder outputs assigned to each code "
        "instead of by gradient (the codebook loss is then left out).",
    )
    parser.add_argument("--codebook_ema_decay", type=float, default=0.99)
    parser.add_argument(
        "--dead_code_steps",
        type=int,
        default=20,
        help="Restart a code unused for this many steps at a recent encoder output; 0 never restarts.",
    )
    # reconstruction losses
    parser.add_argument(
        "--pyramid_weight",
        type=float,
        default=1.0,
        help="Weight of the L1 loss between average-pooled copies (1/2, 1/4, 1/8) of the images.",
    )
    parser.add_argument(
        "--perceptual_model",
        type=str,
        default=None,
        help="A transformers vision backbone (folder or cached Hub id, e.g. facebook/dinov2-small) whose hidden "
        "features give a perceptual loss; none by default (the run stays offline).",
    )
    parser.add_argument("--perceptual_weight", type=float, default=1.0)
    # adversarial
    parser.add_argument("--gan_loss", type=str, default="hinge", choices=["hinge", "non-saturating"])
    parser.add_argument(
        "--adversarial_weight",
        type=float,
        default=0.1,
        help="Multiplies the adaptive weight of the adversarial loss; 0 trains a plain VQ-VAE. (Measured on the "
        "digits' default run: 0.5 cost 9 dB of PSNR, 0.1 about 0.5 dB against 0, for a better prior FID.)",
    )
    parser.add_argument("--max_adaptive_weight", type=float, default=1e4, help="Clamp of the adaptive weight.")
    parser.add_argument(
        "--discriminator_start",
        type=int,
        default=None,
        help="Step from which the discriminator trains and its loss reaches the autoencoder; by default half of "
        "the autoencoder's steps (the reconstructions must be decent before the PatchGAN judges them).",
    )
    # optimisation
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--discriminator_learning_rate", type=float, default=None, help="Default: --learning_rate.")
    parser.add_argument("--adam_beta1", type=float, default=0.5)
    parser.add_argument("--adam_beta2", type=float, default=0.9)
    parser.add_argument("--adam_weight_decay", type=float, default=0.0)
    # prior
    parser.add_argument(
        "--prior_train_steps",
        type=int,
        default=DEFAULT_PRIOR_TRAIN_STEPS,
        help="Steps of the GPT-2 prior on the training images' codes, after the autoencoder; 0 skips it (the folder "
        "then reconstructs but does not sample).",
    )
    parser.add_argument(
        "--prior_config_name_or_path",
        type=str,
        default=None,
        help="A transformers GPT2Config (folder or config.json) for the prior; by default a 3-layer, 128-wide one "
        "over the codebook and the latent's positions.",
    )
    parser.add_argument("--prior_learning_rate", type=float, default=1e-3)
    parser.add_argument("--sample_temperature", type=float, default=1.0, help="Of the prior's samples in the metrics.")
    parser.add_argument("--sample_top_k", type=int, default=None, help="Of the prior's samples in the metrics.")
    # seed, schedule, checkpoints, validation, logging, Hub
    add_run_arguments(parser, family="vqgan")
    parser.set_defaults(
        train_batch_size=32, lr_scheduler="constant_with_warmup", lr_warmup_steps=20, checkpointing_steps=200
    )
    parser.set_defaults(validation_steps=200)
    args = parser.parse_args(input_args)
    check_run_arguments(parser, args)
    check_flag_ranges(
        parser,
        args,
        {
            "commitment_cost": (0, None, "closed"),
            "codebook_ema_decay": (0, 1, "open"),
            "dead_code_steps": (0, None, "closed"),
            "pyramid_weight": (0, None, "closed"),
            "perceptual_weight": (0, None, "closed"),
            "adversarial_weight": (0, None, "closed"),
            "max_adaptive_weight": (0, None, "open"),
            "discriminator_start": (0, None, "closed"),
            "discriminator_learning_rate": (0, None, "open"),
            "prior_train_steps": (0, None, "closed"),
            "prior_learning_rate": (0, None, "open"),
            "sample_temperature": (0, None, "open"),
            "sample_top_k": (1, None, "closed"),
        },
    )
    building_from_flags = args.pretrained_model_name_or_path is None and args.model_config_name_or_path is None
    downsampling = 2 ** (len(DEFAULT_ARCHITECTURE["block_out_channels"]) - 1)
    if building_from_flags and args.resolution % downsampling:
        parser.error(
            f"--resolution must be a multiple of {downsampling} for the default VQ-GAN architecture, got "
            f"{args.resolution}"
        )
    if args.discriminator_learning_rate is None:
        args.discriminator_learning_rate = args.learning_rate
    return args


def vqmodel_folder(path: str) -> str:
    """The VQModel folder in `path`: a VQ-GAN folder's `vqvae/`, or the folder itself."""
    nested = os.path.join(path, "vqvae")
    return nested if os.path.isfile(os.path.join(nested, "config.json")) else path


def build_vqvae(args) -> VQModel:
    channels = 1 if args.color_mode == "L" else 3
    if args.pretrained_model_name_or_path is not None:
        try:
            vqvae = VQModel.from_pretrained(vqmodel_folder(args.pretrained_model_name_or_path))
        except (OSError, ValueError) as error:
            raise ValueError(
                f"--pretrained_model_name_or_path {args.pretrained_model_name_or_path!r} holds no VQModel (a VQ-GAN "
                f"folder with vqvae/, or a VQModel folder): {str(error).splitlines()[0]}"
            ) from error
    else:
        if args.model_config_name_or_path is not None:
            config = VQModel.load_config(args.model_config_name_or_path)
        else:
            blocks = len(DEFAULT_ARCHITECTURE["block_out_channels"])
            config = dict(
                in_channels=channels,
                out_channels=channels,
                sample_size=args.resolution,
                down_block_types=["DownEncoderBlock2D"] * blocks,
                up_block_types=["UpDecoderBlock2D"] * blocks,
                **DEFAULT_ARCHITECTURE,
            )
        vqvae = VQModel.from_config(config)
    if vqvae.config.in_channels != channels:
        raise ValueError(
            f"the VQModel takes {vqvae.config.in_channels}-channel images but --color_mode {args.color_mode} gives "
            f"{channels}"
        )
    if vqvae.config.sample_size != args.resolution:
        raise ValueError(
            f"the VQModel's sample_size is {vqvae.config.sample_size} but --resolution is {args.resolution}: pass "
            f"--resolution {vqvae.config.sample_size}"
        )
    return vqvae


def build_discriminator(args, channels: int) -> hfgen.CycleGANDiscriminator:
    folder = args.pretrained_model_name_or_path and os.path.join(args.pretrained_model_name_or_path, "discriminator")
    if folder and os.path.isfile(os.path.join(folder, "config.json")):
        return hfgen.CycleGANDiscriminator.from_pretrained(folder)
    config = hfgen.CycleGANConfig(
        in_channels=channels,
        out_channels=channels,
        discriminator_layers=2 if args.resolution <= 32 else 3,
        discriminator_channels=DISCRIMINATOR_CHANNELS,
        norm="instance",
    )
    return hfgen.CycleGANDiscriminator(config)


def build_prior(args, vqvae: VQModel) -> GPT2LMHeadModel:
    _, height, width = vq_latent_shape(vqvae)
    num_codes = vqvae.config.num_vq_embeddings
    if args.prior_config_name_or_path is None:
        config = prior_config(num_codes, height * width)
    else:
        config = GPT2Config.from_pretrained(args.prior_config_name_or_path)
        if config.vocab_size != num_codes + 1 or config.bos_token_id != num_codes:
            raise ValueError(
                f"--prior_config_name_or_path: the prior needs vocab_size {num_codes + 1} and bos_token_id "
                f"{num_codes} (the codes, then the start token), got {config.vocab_size} and {config.bos_token_id}"
            )
        if config.n_positions < height * width + 1:
            raise ValueError(
                f"--prior_config_name_or_path: n_positions {config.n_positions} is shorter than the start token and "
                f"the {height * width} codes"
            )
    return GPT2LMHeadModel(config)


@torch.no_grad()
def latent_scaling_factor(vqvae: VQModel, train_dataset, device, max_images: int = 1000) -> float:
    """1 / the standard deviation of the latents (before quantisation) of up to `max_images` training images: what
    `VQModel.config.scaling_factor` must be for a latent diffusion model to see latents of unit variance."""
    vqvae.eval()
    count = min(len(train_dataset), max_images)
    images = collate_images([train_dataset[index] for index in range(count)])["pixel_values"]
    latents = torch.cat([vqvae.encode(batch.to(device)).latents for batch in images.split(256)])
    return 1.0 / latents.std().item()


@torch.no_grad()
def training_codes(vqvae: VQModel, train_dataset, device) -> torch.LongTensor:
    """The code indices `(images, height, width)` of every training image (unflipped), for the prior to learn."""
    vqvae.eval()
    loader = torch.utils.data.DataLoader(train_dataset, batch_size=256, shuffle=False, collate_fn=collate_images)
    codes = []
    for batch in loader:
        latents = vqvae.encode(batch["pixel_values"].to(device)).latents
        vectors = latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
        indices = nearest_codes(vectors, vqvae.quantize.embedding.weight)
        codes.append(indices.view(latents.shape[0], *latents.shape[2:]).cpu())
    return torch.cat(codes)


def autoencoder_loss(
    real, autoencoder, last_layer_weight, discriminator, perceptual, train_codebook: bool, args, outputs: list
):
    """The autoencoder phase's loss on one micro-batch of images `real`: L1, pyramid L1 and perceptual reconstruction
    terms, the commitment term (and the codebook term when the codebook learns by gradient), and, when the
    `discriminator` is given (from --discriminator_start on), its adversarial term scaled by the adaptive weight,
    measured at `last_layer_weight` (the decoder's output convolution). Appends the micro-batch's detached
    (reconstructions, latents, code indices) to `outputs`."""
    reconstructions, latents, quantized = autoencoder(real)
    logs = {"l1": F.l1_loss(reconstructions, real)}
    reconstruction_loss = logs["l1"]
    if args.pyramid_weight:
        logs["pyramid_l1"] = pyramid_l1(reconstructions, real)
        reconstruction_loss = reconstruction_loss + args.pyramid_weight * logs["pyramid_l1"]
    if perceptual is not None:
        logs["perceptual"] = perceptual(reconstructions, real)
        reconstruction_loss = reconstruction_loss + args.perceptual_weight * logs["perceptual"]
    logs["commitment"] = quantized.commitment_loss
    loss = reconstruction_loss + args.commitment_cost * quantized.commitment_loss
    if train_codebook:
        logs["codebook"] = quantized.codebook_loss
        loss = loss + quantized.codebook_loss
    if discriminator is not None:
        logs["g_adversarial"] = generator_loss(discriminator(reconstructions).logits.flatten(), args.gan_loss)
        logs["adaptive_weight"] = adaptive_adversarial_weight(
            reconstruction_loss, logs["g_adversarial"], last_layer_weight, args.max_adaptive_weight
        )
        loss = loss + args.adversarial_weight * logs["adaptive_weight"] * logs["g_adversarial"]
    outputs.append((reconstructions.detach(), latents.detach(), quantized.indices))
    return loss, {"loss": loss.detach(), **{name: value.detach() for name, value in logs.items()}}


def discriminator_step_loss(pair, discriminator, gan_loss: str):
    """The discriminator phase's loss on one micro-batch: real images against the autoencoder's reconstructions."""
    real, fake = pair
    loss = discriminator_loss(discriminator(real).logits.flatten(), discriminator(fake).logits.flatten(), gan_loss)
    return loss, {"d_loss": loss.detach()}


@torch.no_grad()
def log_validation(pipeline, data, fixed_test_images, args, accelerator, step):
    """On every process the reconstruction and codebook metrics (logged as `eval/<name>`); on the main process a grid
    of test images over their reconstructions, saved and sent to the trackers."""
    metrics = evaluate_reconstructions(pipeline, data.evaluation, data.eval, accelerator)
    accelerator.log({f"eval/{name}": value for name, value in metrics.items()}, step=step)
    logger.info(f"step {step}: " + ", ".join(f"{name} {value:.4g}" for name, value in metrics.items()))
    if accelerator.is_main_process:
        reconstructions = pipeline.reconstruct(fixed_test_images * 0.5 + 0.5).images  # pipelines take [0, 1]
        originals = pipeline.image_processor.postprocess(fixed_test_images, output_type="pil")
        folder = os.path.join(args.output_dir, "validation")
        save_grid(originals + reconstructions, folder, "reconstructions", accelerator, step, columns=len(originals))
    return metrics


def main(args):
    accelerator = make_accelerator(args)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)

    # 1. data: every image is decoded before anything else, so a broken file fails first (--dry_run included)
    data = load_run_data(args, accelerator, logger)
    channels = 1 if args.color_mode == "L" else 3

    # 2. models: built with the same seed everywhere, then each process gets its own stream of noise
    set_seed(args.seed)
    vqvae = build_vqvae(args)
    discriminator = build_discriminator(args, channels)
    prior = build_prior(args, vqvae) if args.prior_train_steps else None
    if args.dry_run:
        facts = {"vqvae_config": dict(vqvae.config), "discriminator_config": discriminator.config.to_dict()}
        if prior is not None:
            facts["prior_config"] = prior.config.to_dict()
        print_dry_run(args, accelerator, **facts, data={split: len(images) for split, images in data.dataset.items()})
        return None
    perceptual = None
    if args.perceptual_model is not None:
        perceptual = load_perceptual_loss(args.perceptual_model, device=accelerator.device)
    # EMA codebooks take no gradient: switched off before the data-parallel wrapper lists the parameters it syncs
    ema = EMACodebook(vqvae.quantize.embedding, args.codebook_ema_decay) if args.codebook_ema else None
    restarts = DeadCodeRestarts(vqvae.config.num_vq_embeddings, args.dead_code_steps) if args.dead_code_steps else None
    autoencoder = VQGANAutoencoder(vqvae)
    to_training_memory_format(args, autoencoder, discriminator)
    set_seed(args.seed, device_specific=True)
    train_dataloader = make_train_dataloader(data.train, args, collate_images)

    # 3. optimisation: Adam for the autoencoder, the discriminator and the prior
    betas = (args.adam_beta1, args.adam_beta2)
    autoencoder_optimizer = torch.optim.Adam(
        [p for p in autoencoder.parameters() if p.requires_grad], lr=args.learning_rate, betas=betas
    )
    discriminator_optimizer = torch.optim.Adam(
        discriminator.parameters(), lr=args.discriminator_learning_rate, betas=betas
    )
    batches_per_epoch = math.ceil(len(train_dataloader) / accelerator.num_processes)
    resolve_max_train_steps(args, batches_per_epoch, args.gradient_accumulation_steps, DEFAULT_TRAIN_STEPS)
    if args.discriminator_start is None:
        args.discriminator_start = args.max_train_steps // 2
    schedulers = make_lr_schedulers(args, accelerator, autoencoder_optimizer, discriminator_optimizer)
    autoencoder, discriminator, autoencoder_optimizer, discriminator_optimizer, train_dataloader = accelerator.prepare(
        autoencoder, discriminator, autoencoder_optimizer, discriminator_optimizer, train_dataloader
    )
    schedulers = [accelerator.prepare(scheduler) for scheduler in schedulers]
    if prior is not None:
        prior_optimizer = torch.optim.AdamW(prior.parameters(), lr=args.prior_learning_rate, weight_decay=0.01)
        prior_scheduler = get_scheduler(
            "cosine",
            prior_optimizer,
            num_warmup_steps=20 * accelerator.num_processes,
            num_training_steps=args.prior_train_steps * accelerator.num_processes,
        )
        prior, prior_optimizer, prior_scheduler = accelerator.prepare(prior, prior_optimizer, prior_scheduler)
    for state in (ema, restarts):
        if state is not None:
            accelerator.register_for_checkpointing(state)

    start_trackers(accelerator, args, "train_vqgan")

    # 4. resume
    global_step = resume_run(accelerator, args.output_dir, args.resume_from_checkpoint, logger)
    total_steps = args.max_train_steps + args.prior_train_steps
    logger.info(
        f"{len(data.train)} training images; {args.max_train_steps} autoencoder steps (discriminator from step "
        f"{args.discriminator_start}), then {args.prior_train_steps} prior steps; batch "
        f"{args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps} "
        f"({accelerator.num_processes} processes)"
    )
    progress = tqdm(
        range(total_steps), initial=global_step, desc="steps", disable=not accelerator.is_local_main_process
    )
    fixed_test_images = next(evaluation_batches(data.eval, min(8, len(data.eval))))["pixel_values"]
    unwrapped = accelerator.unwrap_model(autoencoder)
    pipeline = hfgen.VQGANPipeline(vqvae=unwrapped.vqvae, prior=None)
    pipeline.set_progress_bar_config(disable=True)

    def guard(loss, name):
        check_finite(loss, name, global_step, args.output_dir)

    # 5. the autoencoder's loop: its step (reconstruction, VQ and adversarial losses), the discriminator's, then the
    # codebook's update
    batches = endless_batches(accelerator, train_dataloader, global_step * args.gradient_accumulation_steps)
    while global_step < args.max_train_steps:
        micro_batches = []
        for _ in range(args.gradient_accumulation_steps):
            pixel_values = next(batches)["pixel_values"]
            micro_batches.append(random_flip(pixel_values) if args.random_flip else pixel_values)
        adversarial = args.adversarial_weight > 0 and global_step >= args.discriminator_start
        autoencoder.train()
        outputs = []  # each micro-batch's (reconstructions, latents, code indices), detached
        held = discriminator if adversarial else None
        logs = run_phase(
            Phase("autoencoder", autoencoder, autoencoder_optimizer, held=held),
            accelerator,
            micro_batches,
            functools.partial(
                autoencoder_loss,
                autoencoder=autoencoder,
                last_layer_weight=unwrapped.last_layer_weight,
                discriminator=discriminator if adversarial else None,
                perceptual=perceptual,
                train_codebook=ema is None,
                args=args,
                outputs=outputs,
            ),
            args.max_grad_norm,
            guard,
        )
        if adversarial:
            logs.update(
                run_phase(
                    Phase("discriminator", discriminator, discriminator_optimizer),
                    accelerator,
                    [(real, output[0]) for real, output in zip(micro_batches, outputs, strict=True)],
                    functools.partial(discriminator_step_loss, discriminator=discriminator, gan_loss=args.gan_loss),
                    args.max_grad_norm,
                    guard,
                )
            )
        # the discriminator's schedule (its warmup) starts with its first step
        for scheduler in schedulers if adversarial else schedulers[:1]:
            scheduler.step()
        # the same generator on every process, so restarts draw the same encoder outputs everywhere
        restart_generator = torch.Generator().manual_seed(args.seed * 1_000_003 + global_step)
        counts, logs["restarted_codes"] = update_codebook(
            unwrapped.vqvae,
            torch.cat([output[1] for output in outputs]),
            torch.cat([output[2] for output in outputs]),
            accelerator,
            ema,
            restarts,
            restart_generator,
        )
        logs["batch_perplexity"] = codebook_perplexity(counts)
        if restarts is not None:
            logs["dead_code_share"] = restarts.dead_share()
        logs["lr"] = schedulers[0].get_last_lr()[0]

        global_step += 1
        progress.update(1)
        progress.set_postfix(l1=f"{logs['l1']:.3f}", perplexity=f"{logs['batch_perplexity']:.1f}")
        accelerator.log(logs, step=global_step)
        if global_step % args.checkpointing_steps == 0:
            save_checkpoint(accelerator, args.output_dir, global_step, args.checkpoints_total_limit)
        if global_step % args.validation_steps == 0:
            log_validation(pipeline, data, fixed_test_images.to(accelerator.device), args, accelerator, global_step)

    # 6. the prior's loop: next-code prediction on the training images' codes (start token first)
    if prior is not None:
        codes = training_codes(unwrapped.vqvae, data.train, accelerator.device)
        sequences = code_sequences(codes, accelerator.unwrap_model(prior).config.bos_token_id)
        prior_dataloader = accelerator.prepare(make_train_dataloader(sequences, args, torch.stack))
        prior_batches = endless_batches(accelerator, prior_dataloader, global_step - args.max_train_steps)
        prior.train()
        while global_step < total_steps:
            input_ids = next(prior_batches).to(accelerator.device)
            # Dropout draws from a stream of its own for each step and process: a run resumed in the middle of this
            # phase then draws the masks the uninterrupted run drew (the global stream is not where it was there).
            cuda = [accelerator.device] if accelerator.device.type == "cuda" else []
            with torch.random.fork_rng(devices=cuda):
                torch.manual_seed(args.seed + 1_000_003 * (global_step + 1) + 7919 * accelerator.process_index)
                # labels are the inputs: the model shifts them, so position i predicts code i + 1
                loss = prior(input_ids=input_ids, labels=input_ids).loss
            check_finite(loss, "the prior's loss", global_step, args.output_dir)
            accelerator.backward(loss)
            if args.max_grad_norm is not None:
                accelerator.clip_grad_norm_(prior.parameters(), args.max_grad_norm)
            prior_optimizer.step()
            prior_scheduler.step()
            prior_optimizer.zero_grad(set_to_none=True)
            global_step += 1
            progress.update(1)
            progress.set_postfix(prior_loss=f"{loss.item():.3f}")
            accelerator.log(
                {"prior_loss": loss.item(), "prior_lr": prior_scheduler.get_last_lr()[0]}, step=global_step
            )
            if global_step % args.checkpointing_steps == 0:
                save_checkpoint(accelerator, args.output_dir, global_step, args.checkpoints_total_limit)
    progress.close()

    # 7. the end of the run: final metrics (all processes); then, on the main process, the Hub-ready folder (weights,
    # sample grid, record of the run, model card) and the upload
    run_facts = check_replicas(accelerator, autoencoder, global_step, logger)
    pipeline = hfgen.VQGANPipeline(
        vqvae=unwrapped.vqvae, prior=None if prior is None else accelerator.unwrap_model(prior).eval()
    )
    metrics = evaluate_vqgan(pipeline, data, args, accelerator)
    if accelerator.is_main_process:
        references = measure_references(data.evaluation, args)
        # the folder serves as a latent diffusion first stage (train_ldm.py --vae_name_or_path) with unit-variance
        # latents
        scaling_factor = latent_scaling_factor(unwrapped.vqvae, data.train, accelerator.device)
        unwrapped.vqvae.register_to_config(scaling_factor=scaling_factor)
        pipeline.save_pretrained(args.output_dir)
        accelerator.unwrap_model(discriminator).save_pretrained(os.path.join(args.output_dir, "discriminator"))
        save_card_grid(sample_grid_images(pipeline, fixed_test_images, args), args.output_dir, columns=8)
        record = write_run_record(
            args, metrics, references, run_facts, run_protocol(data.evaluation, args.num_eval_samples)
        )
        tags = ["vqgan", "vq-vae", "codebook-ema" if ema is not None else "codebook-gradient"]
        write_model_card(
            args,
            "vqgan",
            record,
            CARD_METRIC_NAMES,
            tags=tags,
            vqvae_config=dict(unwrapped.vqvae.config),
            has_prior=prior is not None,
        )
        print_run_summary(args.output_dir, data.evaluation, metrics)
        if args.push_to_hub:
            push_folder(args, "train_vqgan.py", logger)
    end_run(accelerator)
    return metrics


def sample_grid_images(pipeline, evaluation_images, args) -> list:
    """The images of `samples.png`, 8 to a row: with a prior, four rows of its samples; then up to eight evaluation
    images over their reconstructions."""
    samples = []
    if pipeline.prior is not None:
        samples = pipeline(
            batch_size=32,
            generator=torch.Generator(device="cpu").manual_seed(args.seed),
            temperature=args.sample_temperature,
            top_k=args.sample_top_k,
        ).images
    originals = evaluation_images[:8].to(pipeline.vqvae.device)
    reconstructions = pipeline.reconstruct(originals * 0.5 + 0.5).images  # pipelines take images in [0, 1]
    originals = pipeline.image_processor.postprocess(originals, output_type="pil")
    blank = [originals[0].copy().point(lambda _: 0)] * (8 - len(originals))  # a short evaluation split
    return samples + originals + blank + reconstructions + blank


if __name__ == "__main__":
    run_script(main, parse_args())
