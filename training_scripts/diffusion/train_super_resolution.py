#!/usr/bin/env python
"""Train a super-resolution diffusion model (Saharia et al. 2021, SR3), the second stage of cascaded diffusion (Ho et
al. 2021; Imagen), on diffusers' `UNet2DModel`: it denoises a high-resolution image given the low-resolution one,
upsampled and concatenated to its input, with noise conditioning augmentation.

    accelerate launch training_scripts/diffusion/train_super_resolution.py        # digits 16 -> 32 px, ~5 min, 2 cores
    accelerate launch training_scripts/diffusion/train_super_resolution.py --base_model_name_or_path ddpm-16/
    accelerate launch training_scripts/diffusion/train_super_resolution.py --train_data_dir my_images/ \\
        --resolution 64 --low_resolution 16

The training pairs are made on the fly from the data: each image at `--resolution`, downsampled to
`--low_resolution`. The low-resolution image, upsampled back, is noised to a random level of the diffusion schedule
(up to `--max_noise_level`) and that level is the UNet's second timestep, so that the model learns not to trust every
pixel of it: at sampling time a little noise hides the flaws of a base model's samples. By default the model generates
the residual over the upsampled image (`--prediction_target residual`, SRDiff, Li et al. 2022), scaled to unit
variance on the training images; the pipeline adds the upsampled image back, so an untrained model already gives
bicubic upsampling and training only adds the detail it misses. `--prediction_target image` generates the image itself
(SR3).

The folder loads with `hfgen.SuperResolutionPipeline.from_pretrained(dir)`. With `--base_model_name_or_path` (a
train_ddpm.py folder at `--low_resolution`) it is a `hfgen.CascadedDiffusionPipeline` folder: the base model, then
this one, sampled as one pipeline (and still loaded by `SuperResolutionPipeline` for the second stage alone). Both
hold the model card (README.md) with the metrics measured at the end of training: PSNR, SSIM and FID of the
super-resolved held-out images beside bicubic upsampling, and the FID of the cascade beside the base's samples
upsampled.
"""

import logging
import math
import os

import torch
from accelerate.logging import get_logger
from accelerate.utils import set_seed
from diffusers import DDPMScheduler, UNet2DModel
from PIL import Image
from tqdm.auto import tqdm

import hfgen
from hfgen.data import BUILTIN_DIGITS, collate_images, images_as_tensor
from hfgen.losses import diffusion_loss, diffusion_target, min_snr_loss_weights
from hfgen.pipelines.cascade.evaluation import (
    CARD_METRIC_NAMES,
    SUPER_RESOLUTION_SAMPLING_STEPS,
    cascade_pipeline,
    evaluate_cascade,
    evaluate_super_resolution,
    sampling_pipeline,
    super_resolution_protocol,
)
from hfgen.pipelines.cascade.pipeline_cascade import CASCADE_NOISE_LEVEL
from hfgen.pipelines.cascade.pipeline_super_resolution import (
    DEFAULT_NOISE_LEVEL,
    PREDICTION_TARGETS,
    SuperResolutionPipeline,
    check_super_resolution_unet,
)
from hfgen.pipelines.cascade.resampling import augment_conditioning, downsample, residual_std, to_residual, upsample
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
    sample_timesteps,
    training_noise,
)
from hfgen.training.evaluation import evaluation_batches, load_run_data, measure_references
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

DEFAULT_TRAIN_STEPS = 600

# The UNet of a new model when no --model_config_name_or_path is given: three levels (the image, a half and a quarter
# of its side) without self-attention, which super-resolution, a mostly local task, does without (SR3 keeps it at the
# lowest resolutions only): 1.1 M parameters. A step of 32 images at 32 px took 0.65 s on 2 CPU cores shared with
# other jobs, so the default run (600 steps) trains in under 8 minutes there, and each evaluation of the 360 held-out
# digits takes about 80 s (benchmarks/bench_cascade.py). The resolution must be a multiple of 4.
DEFAULT_UNET = dict(
    block_out_channels=(32, 64, 64),
    layers_per_block=1,
    down_block_types=("DownBlock2D", "DownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "UpBlock2D", "UpBlock2D"),
    norm_num_groups=8,
)
UNET_DOWNSAMPLING = 4

# The largest noise conditioning augmentation of training, a timestep of the default 1000-step linear schedule: the
# conditioning keeps some of its signal up to there (sqrt(alpha_bar) = 0.72), and the levels a sampler uses (0 to
# 100, benchmarks/bench_cascade.py) are all seen often.
MAX_NOISE_LEVEL = 250


def parse_args(input_args=None):
    parser = make_parser("Train a super-resolution diffusion model (the second stage of a cascade) on UNet2DModel.")
    add_data_arguments(parser, BUILTIN_DIGITS)
    parser.add_argument(
        "--low_resolution",
        type=int,
        default=None,
        help="Side of the low-resolution images the model super-resolves (each training image downsampled to it); "
        "default: half of --resolution.",
    )
    # model
    parser.add_argument(
        "--pretrained_model_name_or_path",
        type=str,
        default=None,
        help="Continue from a folder this script wrote: its super-resolution UNet and schedule.",
    )
    parser.add_argument(
        "--model_config_name_or_path",
        type=str,
        default=None,
        help="A UNet2DModel config (folder or config.json) for a new model: in_channels twice out_channels, "
        "class_embed_type 'timestep'. By default one is built for the data.",
    )
    parser.add_argument(
        "--base_model_name_or_path",
        type=str,
        default=None,
        help="A train_ddpm.py folder (a DDPM at --low_resolution): the output folder is then a "
        "CascadedDiffusionPipeline of it and this model, and the cascade's FID is measured.",
    )
    parser.add_argument(
        "--prediction_target",
        choices=PREDICTION_TARGETS,
        default=None,
        help="What the UNet generates: 'residual' (default for a new model), the image minus its bicubic upsampling "
        "from --low_resolution, scaled to unit variance on the training images (SRDiff); or 'image', the image "
        "itself (SR3). A --pretrained_model_name_or_path keeps its own.",
    )
    parser.add_argument(
        "--max_noise_level",
        type=int,
        default=MAX_NOISE_LEVEL,
        help="Noise conditioning augmentation: each training pair's low-resolution image is noised to a timestep "
        "drawn uniformly from [0, this] (0: no augmentation).",
    )
    parser.add_argument(
        "--sampling_noise_level",
        type=int,
        default=DEFAULT_NOISE_LEVEL,
        help="The augmentation level the stage alone is validated and measured with, on downsampled real images "
        "(SuperResolutionPipeline's default).",
    )
    parser.add_argument(
        "--cascade_noise_level",
        type=int,
        default=CASCADE_NOISE_LEVEL,
        help="The augmentation level of the base's samples in the cascade's metrics and samples "
        "(CascadedDiffusionPipeline's default).",
    )
    parser.add_argument(
        "--base_num_inference_steps",
        type=int,
        default=50,
        help="DDIM steps of the base model in the cascade's metrics.",
    )
    parser.add_argument("--gradient_checkpointing", action="store_true")
    # optimisation
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--adam_beta1", type=float, default=0.9)
    parser.add_argument("--adam_beta2", type=float, default=0.999)
    parser.add_argument("--adam_weight_decay", type=float, default=0.0)
    add_diffusion_arguments(parser, num_inference_steps=SUPER_RESOLUTION_SAMPLING_STEPS)
    parser.set_defaults(prediction_type=None)  # a pretrained model keeps its own unless the flag is given
    add_run_arguments(parser, family="super_resolution")
    parser.set_defaults(
        train_batch_size=32,
        lr_scheduler="cosine",
        lr_warmup_steps=50,
        max_grad_norm=1.0,
        checkpointing_steps=300,
        validation_steps=300,
    )
    args = parser.parse_args(input_args)
    check_run_arguments(parser, args)
    levels = {name: (0, None, "closed") for name in ("max_noise_level", "sampling_noise_level", "cascade_noise_level")}
    steps = {"base_num_inference_steps": (1, None, "closed"), "low_resolution": (1, None, "closed")}
    check_flag_ranges(parser, args, {**DIFFUSION_FLAG_RANGES, **levels, **steps})
    args.low_resolution = args.low_resolution or args.resolution // 2
    if args.low_resolution >= args.resolution:
        parser.error(f"--low_resolution {args.low_resolution} must be smaller than --resolution {args.resolution}")
    for flag in ("max_noise_level", "sampling_noise_level", "cascade_noise_level", "num_inference_steps"):
        if getattr(args, flag) >= args.num_train_timesteps + (flag == "num_inference_steps"):
            parser.error(
                f"--{flag} {getattr(args, flag)} is beyond the schedule's --num_train_timesteps "
                f"{args.num_train_timesteps}"
            )
    building_from_flags = args.pretrained_model_name_or_path is None and args.model_config_name_or_path is None
    if building_from_flags and args.resolution % UNET_DOWNSAMPLING:
        parser.error(
            f"--resolution must be a multiple of {UNET_DOWNSAMPLING} for the default UNet, got {args.resolution}"
        )
    return args


def build_unet(args) -> UNet2DModel:
    """The super-resolution denoiser: from --pretrained_model_name_or_path, a config, or the default architecture;
    checked against the data."""
    channels = 1 if args.color_mode == "L" else 3
    if args.pretrained_model_name_or_path is not None:
        unet = UNet2DModel.from_pretrained(args.pretrained_model_name_or_path, subfolder="unet")
    elif args.model_config_name_or_path is not None:
        unet = UNet2DModel.from_config(UNet2DModel.load_config(args.model_config_name_or_path))
    else:
        unet = UNet2DModel(
            sample_size=args.resolution,
            in_channels=2 * channels,  # the noisy image, then the upsampled low-resolution one
            out_channels=channels,
            class_embed_type="timestep",  # the conditioning's noise level, embedded as a second timestep
            **DEFAULT_UNET,
        )
    check_super_resolution_unet(unet)
    if unet.config.out_channels != channels:
        raise ValueError(
            f"the UNet makes {unet.config.out_channels}-channel images but --color_mode {args.color_mode} gives "
            f"{channels}"
        )
    if unet.config.sample_size != args.resolution:
        raise ValueError(
            f"the UNet makes {unet.config.sample_size}px images but --resolution is {args.resolution}: pass "
            f"--resolution {unet.config.sample_size}"
        )
    return unet


# How many training images the residuals' scale is measured on: enough for a stable standard deviation, few enough to
# take a moment on a large dataset.
RESIDUAL_SCALE_IMAGES = 1000


def resolve_prediction_target(args, data) -> float | None:
    """The scale of a residual model's residuals, None for an image model; resolves --prediction_target into `args`
    so the record holds what was trained. A pretrained folder keeps its own target and scale (one saved before
    residual models existed holds an image model); a new residual model's scale gives the residuals of (up to 1000)
    training images unit variance, measured the same way on every process and on resume."""
    if args.pretrained_model_name_or_path is not None:
        config = SuperResolutionPipeline.load_config(args.pretrained_model_name_or_path)
        saved = config.get("prediction_target", "image")
        if args.prediction_target not in (None, saved):
            raise ValueError(
                f"--pretrained_model_name_or_path {args.pretrained_model_name_or_path} holds a model that predicts "
                f"the {saved}, so it cannot continue as --prediction_target {args.prediction_target}: leave the flag "
                "out"
            )
        args.prediction_target = saved
        return config.get("residual_scale", 1.0) if saved == "residual" else None
    args.prediction_target = args.prediction_target or "residual"
    if args.prediction_target == "image":
        return None
    train = data.evaluation.train
    count = min(len(train), RESIDUAL_SCALE_IMAGES)
    images = images_as_tensor(train, args.resolution, args.color_mode, num_images=count, seed=args.seed)
    spread = residual_std(images, args.low_resolution)
    if not spread > 0:
        raise ValueError(
            f"the training images are exactly their bicubic upsampling from --low_resolution {args.low_resolution}, "
            "so there is no residual to learn: pass --prediction_target image or a smaller --low_resolution"
        )
    return 1.0 / spread


def build_scheduler(args) -> DDPMScheduler:
    """The noise process (that of the denoiser and of the augmentation): from the pretrained folder, or from the
    flags. Resolves --prediction_type into `args` so the record holds what was trained. A new residual model's
    sampler does not clip its estimate of the clean sample to [-1, 1]: residuals at unit variance go past it, and the
    image they are added to is clamped at the end."""
    if args.pretrained_model_name_or_path is not None:
        scheduler = DDPMScheduler.from_pretrained(args.pretrained_model_name_or_path, subfolder="scheduler")
        # the pretrained model's schedule is kept: the record shows it, not the flags' defaults
        args.prediction_type = args.prediction_type or scheduler.config.prediction_type
        args.beta_schedule = scheduler.config.beta_schedule
        args.num_train_timesteps = scheduler.config.num_train_timesteps
        return DDPMScheduler.from_config(scheduler.config, prediction_type=args.prediction_type)
    args.prediction_type = args.prediction_type or "epsilon"
    return DDPMScheduler(
        num_train_timesteps=args.num_train_timesteps,
        beta_schedule=args.beta_schedule,
        prediction_type=args.prediction_type,
        clip_sample=args.prediction_target == "image",
    )


def load_base(args) -> hfgen.DDPMPipeline | None:
    """The base DDPM of --base_model_name_or_path, checked to make what this model super-resolves; None without it."""
    if args.base_model_name_or_path is None:
        return None
    # a folder of another kind (this script's own, say) is refused here in one line naming it and its class
    base = hfgen.DDPMPipeline.from_pretrained(args.base_model_name_or_path)
    config = base.unet.config
    if config.sample_size != args.low_resolution or config.out_channels != (1 if args.color_mode == "L" else 3):
        raise ValueError(
            f"--base_model_name_or_path {args.base_model_name_or_path} makes {config.sample_size}px "
            f"{config.out_channels}-channel images, but this model super-resolves {args.low_resolution}px "
            f"{args.color_mode} ones: pass --low_resolution {config.sample_size} (and the base's --color_mode)"
        )
    base.set_progress_bar_config(disable=True)
    return base


def super_resolution_loss(unet, noise_scheduler, pixel_values, args, residual_scale: float | None):
    """Algorithm 1 of Ho et al. on a pair made here: the image downsampled then upsampled is the conditioning, noised
    to a uniform level in [0, --max_noise_level] (given to the UNet as its class embedding); the clean sample is the
    image, or its scaled residual over the clean upsampled image when `residual_scale` is given; the squared error of
    the prediction of the --prediction_type target of the noisy sample (min-SNR weighted with --snr_gamma)."""
    batch_size = pixel_values.shape[0]
    upsampled = upsample(downsample(pixel_values, args.low_resolution), pixel_values.shape[-1])
    levels = torch.randint(0, args.max_noise_level + 1, (batch_size,), device=pixel_values.device)
    alphas_cumprod = noise_scheduler.alphas_cumprod
    conditioning = augment_conditioning(upsampled, levels, alphas_cumprod, torch.randn_like(upsampled))
    clean = pixel_values if residual_scale is None else to_residual(pixel_values, upsampled, residual_scale)
    noise = training_noise(clean, args.noise_offset)
    timesteps = sample_timesteps(batch_size, noise_scheduler.config.num_train_timesteps, pixel_values.device)
    noisy = noise_scheduler.add_noise(clean, noise, timesteps)
    prediction = unet(torch.cat([noisy, conditioning], dim=1), timesteps, class_labels=levels).sample
    target = diffusion_target(args.prediction_type, clean, noise, timesteps, alphas_cumprod)
    weights = None
    if args.snr_gamma is not None:
        weights = min_snr_loss_weights(timesteps, alphas_cumprod, args.snr_gamma, args.prediction_type)
    return diffusion_loss(prediction, target, weights)


def comparison_images(pipeline, originals: torch.Tensor, args) -> list:
    """Rows of PIL images for a grid: the low-resolution inputs (enlarged, nearest), their bicubic upsampling, the
    model's super-resolution and the originals, `len(originals)` to a row."""
    low_res = downsample(originals, args.low_resolution)
    generators = [torch.Generator().manual_seed(args.seed + i) for i in range(len(originals))]
    outputs = pipeline(
        image=low_res * 0.5 + 0.5,
        generator=generators,
        num_inference_steps=args.num_inference_steps,
        noise_level=args.sampling_noise_level,
        output_type="pt",
    ).images
    side = originals.shape[-1]
    rows = [
        torch.nn.functional.interpolate(low_res, size=(side, side), mode="nearest"),
        upsample(low_res, side),
        outputs * 2 - 1,
        originals,
    ]
    return pipeline.image_processor.postprocess(torch.cat(rows), output_type="pil")


def stage_pipeline(unet, noise_scheduler, residual_scale: float | None, args) -> SuperResolutionPipeline:
    """The super-resolution pipeline of the run's model, as its folder will load it."""
    scale = 1.0 if residual_scale is None else residual_scale
    return sampling_pipeline(unet, noise_scheduler, args.low_resolution, args.prediction_target, scale)


@torch.no_grad()
def evaluate(unet, ema, noise_scheduler, residual_scale, fixed_images, data, args, accelerator, step) -> dict:
    """Validation grid (main process) and the super-resolution metrics (every process) of the averaged weights."""
    model = accelerator.unwrap_model(unet)
    with averaged_weights(ema, list(model.parameters())):
        model.eval()
        pipeline = stage_pipeline(model, noise_scheduler, residual_scale, args)
        if accelerator.is_main_process:
            images = comparison_images(pipeline, fixed_images, args)
            folder = os.path.join(args.output_dir, "validation")
            save_grid(images, folder, "super_resolution", accelerator, step, columns=len(fixed_images))
        metrics = evaluate_super_resolution(pipeline, data, args, accelerator)
    model.train()
    accelerator.log({f"eval/{name}": value for name, value in metrics.items()}, step=step)
    logger.info(f"step {step}: " + ", ".join(f"{name} {value:.4g}" for name, value in metrics.items()))
    return metrics


def main(args):
    accelerator = make_accelerator(args)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)

    # 1. data: every image is decoded before anything else, so a broken file fails first (--dry_run included)
    data = load_run_data(args, accelerator, logger)

    # 2. models and noise process: built with the same seed everywhere, then each process gets its own stream of noise;
    # the base is checked before any training, so a mismatch does not cost the run
    set_seed(args.seed)
    unet = build_unet(args)
    residual_scale = resolve_prediction_target(args, data)
    noise_scheduler = build_scheduler(args)
    base = load_base(args)
    if args.dry_run:
        data = {split: len(images) for split, images in data.dataset.items()}
        print_dry_run(
            args,
            accelerator,
            unet_config=dict(unet.config),
            scheduler_config=dict(noise_scheduler.config),
            residual_scale=residual_scale,
            data=data,
        )
        return None
    to_training_memory_format(args, unet)
    if args.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    ema = create_ema(list(unet.parameters()), args) if args.use_ema else None
    set_seed(args.seed, device_specific=True)
    train_dataloader = make_train_dataloader(data.train, args, collate_images)

    # 3. optimisation (fused: one kernel for all the parameters instead of a loop over them)
    optimizer = torch.optim.AdamW(
        unet.parameters(),
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        weight_decay=args.adam_weight_decay,
        fused=True,
    )
    updates_per_epoch = math.ceil(len(train_dataloader) / accelerator.num_processes / args.gradient_accumulation_steps)
    resolve_max_train_steps(args, updates_per_epoch, 1, DEFAULT_TRAIN_STEPS)
    (lr_scheduler,) = make_lr_schedulers(args, accelerator, optimizer)
    unet, optimizer, train_dataloader, lr_scheduler = accelerator.prepare(
        unet, optimizer, train_dataloader, lr_scheduler
    )
    if ema is not None:
        ema.to(accelerator.device)
        accelerator.register_for_checkpointing(ema)

    start_trackers(accelerator, args, "train_super_resolution")

    # 4. resume
    global_step = resume_run(accelerator, args.output_dir, args.resume_from_checkpoint, logger)
    batches = endless_batches(accelerator, train_dataloader, global_step * args.gradient_accumulation_steps)

    total_batch = args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    logger.info(
        f"super-resolution {args.low_resolution} -> {args.resolution} px: {len(data.train)} training images, "
        f"{args.max_train_steps} steps, batch {total_batch} ({accelerator.num_processes} processes)"
    )
    progress = tqdm(
        range(args.max_train_steps), initial=global_step, desc="steps", disable=not accelerator.is_local_main_process
    )
    fixed_images = next(evaluation_batches(data.eval, min(8, len(data.eval))))["pixel_values"].to(accelerator.device)

    # 5. the loop: one optimizer step per --gradient_accumulation_steps micro-batches, their mean loss
    unet.train()
    micro_batches = args.gradient_accumulation_steps
    while global_step < args.max_train_steps:
        for index in range(micro_batches):
            pixel_values = next(batches)["pixel_values"]
            if args.random_flip:
                pixel_values = random_flip(pixel_values)  # before the pair is made: both halves flip together
            with gradient_sync(accelerator, unet, index, micro_batches):
                loss = super_resolution_loss(unet, noise_scheduler, pixel_values, args, residual_scale)
                check_finite(loss, "the loss", global_step, args.output_dir)
                accelerator.backward(loss / micro_batches)
        if args.max_grad_norm is not None:
            accelerator.clip_grad_norm_(unet.parameters(), args.max_grad_norm)
        optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.step(unet.parameters())
        global_step += 1
        progress.update(1)
        logs = {"loss": loss.item(), "lr": lr_scheduler.get_last_lr()[0]}
        if ema is not None:
            logs["ema_decay"] = ema.cur_decay_value
        progress.set_postfix(loss=f"{logs['loss']:.4f}")
        accelerator.log(logs, step=global_step)

        if global_step % args.checkpointing_steps == 0:
            save_checkpoint(accelerator, args.output_dir, global_step, args.checkpoints_total_limit)
        if global_step % args.validation_steps == 0 and global_step < args.max_train_steps:
            evaluate(unet, ema, noise_scheduler, residual_scale, fixed_images, data, args, accelerator, global_step)
    progress.close()

    # 6. the end of the run: final metrics of the averaged weights (all processes), the cascade's when there is a
    # base; then, on the main process, the Hub-ready folder (pipeline, grid, record, card) and the upload
    run_facts = check_replicas(accelerator, unet, global_step, logger)
    metrics = evaluate(unet, ema, noise_scheduler, residual_scale, fixed_images, data, args, accelerator, global_step)
    model = accelerator.unwrap_model(unet)
    if ema is not None:
        ema.copy_to(model.parameters())  # the run is over: the saved model is the average
    model.eval()
    super_resolution = stage_pipeline(model, noise_scheduler, residual_scale, args)
    cascade = None
    if base is not None:
        cascade = cascade_pipeline(base.to(accelerator.device), super_resolution)
        metrics.update(evaluate_cascade(cascade, data, args, accelerator))
    if accelerator.is_main_process:
        references = measure_references(data.evaluation, args)
        (cascade or super_resolution).save_pretrained(args.output_dir)
        grid = comparison_images(super_resolution, fixed_images, args)
        if cascade is not None:
            samples = cascade(
                batch_size=len(fixed_images),
                generator=torch.Generator().manual_seed(args.seed),
                num_inference_steps=args.num_inference_steps,
                base_num_inference_steps=args.base_num_inference_steps,
                noise_level=args.cascade_noise_level,
            )
            side = args.resolution
            grid += [image.resize((side, side), Image.NEAREST) for image in samples.low_res_images] + samples.images
        save_card_grid(grid, args.output_dir, columns=len(fixed_images))
        protocol = super_resolution_protocol(data.evaluation, args, cascade is not None)
        record = write_run_record(args, metrics, references, run_facts, protocol)
        tags = ["diffusion", "super-resolution", "sr3"] + (["cascaded-diffusion"] if cascade is not None else [])
        write_model_card(
            args,
            "super_resolution",
            record,
            CARD_METRIC_NAMES,
            tags=tags,
            pipeline_tag="unconditional-image-generation" if cascade is not None else "image-to-image",
            unet_config=dict(model.config),
            residual_scale=residual_scale,
            cascade=cascade is not None,
            base_unet_config=dict(base.unet.config) if base is not None else None,
        )
        print_run_summary(args.output_dir, data.evaluation, metrics)
        if args.push_to_hub:
            push_folder(args, "train_super_resolution.py", logger)
    end_run(accelerator)
    return metrics


if __name__ == "__main__":
    run_script(main, parse_args())
