#!/usr/bin/env python
"""Train a pixel-space diffusion model on images: DDPM (Ho et al. 2020) or, with `--objective score_ve`, a
noise-conditional score network (Song & Ermon 2019; Song et al. 2021), both on diffusers' `UNet2DModel`.

    accelerate launch training_scripts/diffusion/train_ddpm.py                       # DDPM on the built-in digits
    accelerate launch training_scripts/diffusion/train_ddpm.py --objective score_ve  # score-based, VE SDE
    accelerate launch training_scripts/diffusion/train_ddpm.py --train_data_dir my_images/ --resolution 64

A DDPM folder is diffusers' own format: `diffusers.DDPMPipeline.from_pretrained(dir)`,
`diffusers.DDIMPipeline.from_pretrained(dir)` and `hfgen.DDPMPipeline.from_pretrained(dir)` all load it. A score
folder loads with `hfgen.ScoreSdePipeline.from_pretrained(dir)`. Both hold the model card (README.md) with the
metrics measured at the end of training, `samples.png`, `metrics.json` and `training_args.json`.
"""

import logging
import math

import torch
from accelerate.logging import get_logger
from accelerate.utils import set_seed
from diffusers import DDPMScheduler, ScoreSdeVeScheduler, UNet2DModel
from tqdm.auto import tqdm

import hfgen
from hfgen.data import BUILTIN_DIGITS, collate_images, images_as_tensor
from hfgen.losses import denoising_score_matching_loss, diffusion_loss, diffusion_target, min_snr_loss_weights
from hfgen.pipelines.ddpm.evaluation import (
    CARD_METRIC_NAMES,
    DDIM_SAMPLING_STEPS,
    diffusion_protocol,
    diffusion_sampler,
    sampling_pipeline,
)
from hfgen.pipelines.score_sde.evaluation import SCORE_SAMPLING_STEPS
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
    sample_noise_levels,
    sample_timesteps,
    training_noise,
)
from hfgen.training.evaluation import load_run_data, measure_references, validate_generator
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
    start_trackers,
    to_training_memory_format,
)

logger = get_logger(__name__)

DEFAULT_TRAIN_STEPS = 1500

# The UNet of a new model when no --model_config_name_or_path is given: three levels (the image, a half and a quarter
# of its side) with self-attention at the middle one: 1.1 M parameters, 0.55 s per step of 32 images at 32 px on 2 CPU
# cores, so the default run (1500 steps, 33 passes over the digits) trains in about 14 minutes there. The
# resolution must be a multiple of 4.
DEFAULT_UNET = dict(
    block_out_channels=(32, 64, 64),
    layers_per_block=1,
    down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    norm_num_groups=8,
    attention_head_dim=8,
)
UNET_DOWNSAMPLING = 4

# Song & Ermon's smallest noise level for images in [-1, 1]; the largest is measured on the data (see
# `largest_pairwise_distance`) unless --sigma_max is given.
SIGMA_MIN = 0.01
# The corrector's signal-to-noise ratio: Song et al. 2021's value for the VE SDE.
CORRECTOR_SNR = 0.16


def parse_args(input_args=None):
    parser = make_parser("Train a DDPM or a score-based (VE SDE) diffusion model on diffusers' UNet2DModel.")
    add_data_arguments(parser, BUILTIN_DIGITS)
    # model
    parser.add_argument(
        "--objective",
        type=str,
        default="ddpm",
        choices=["ddpm", "score_ve"],
        help="ddpm: regress the noise (or --prediction_type) of the discrete-time process of Ho et al.; score_ve: "
        "denoising score matching over a geometric ladder of noise levels (NCSN / VE SDE).",
    )
    parser.add_argument(
        "--pretrained_model_name_or_path",
        type=str,
        default=None,
        help="Continue from a folder this script wrote (or a diffusers DDPM folder / Hub id): its UNet and scheduler.",
    )
    parser.add_argument(
        "--model_config_name_or_path",
        type=str,
        default=None,
        help="A UNet2DModel config (folder or config.json) for a new model; by default one is built for the data.",
    )
    parser.add_argument(
        "--sigma_min",
        type=float,
        default=SIGMA_MIN,
        help="score_ve: the smallest noise level of a new model (images in [-1, 1]).",
    )
    parser.add_argument(
        "--sigma_max",
        type=float,
        default=None,
        help="score_ve: the largest noise level; by default the largest distance between two training images "
        "(Song & Ermon 2020, technique 1).",
    )
    parser.add_argument("--gradient_checkpointing", action="store_true")
    # optimisation
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--adam_beta1", type=float, default=0.9)
    parser.add_argument("--adam_beta2", type=float, default=0.999)
    parser.add_argument("--adam_weight_decay", type=float, default=0.0)
    add_diffusion_arguments(parser, num_inference_steps=None)
    parser.set_defaults(prediction_type=None)  # a pretrained model keeps its own unless the flag is given
    add_run_arguments(parser, family="ddpm")
    parser.set_defaults(
        train_batch_size=32,
        lr_scheduler="cosine",
        lr_warmup_steps=50,
        max_grad_norm=1.0,
        checkpointing_steps=500,
        validation_steps=500,
    )
    args = parser.parse_args(input_args)
    if args.num_inference_steps is None:
        args.num_inference_steps = SCORE_SAMPLING_STEPS if args.objective == "score_ve" else DDIM_SAMPLING_STEPS
    if args.objective == "score_ve":
        args.output_dir_prefix = "score_sde"
    check_run_arguments(parser, args)
    check_flag_ranges(parser, args, {**DIFFUSION_FLAG_RANGES, "sigma_min": (0, None, "open")})
    if args.sigma_max is not None and not args.sigma_max > args.sigma_min:
        parser.error(f"--sigma_max must be larger than --sigma_min ({args.sigma_min}), got {args.sigma_max}")
    if args.objective == "score_ve":
        if args.prediction_type or args.snr_gamma or args.noise_offset:
            parser.error(
                "--prediction_type, --snr_gamma and --noise_offset are DDPM flags: leave them out with score_ve"
            )
        args.beta_schedule = args.num_train_timesteps = None  # no discrete schedule: the record says so
    elif args.num_inference_steps > args.num_train_timesteps:
        parser.error(
            f"--num_inference_steps {args.num_inference_steps} is more than the schedule's --num_train_timesteps "
            f"{args.num_train_timesteps}"
        )
    building_from_flags = args.pretrained_model_name_or_path is None and args.model_config_name_or_path is None
    if building_from_flags and args.resolution % UNET_DOWNSAMPLING:
        parser.error(
            f"--resolution must be a multiple of {UNET_DOWNSAMPLING} for the default UNet, got {args.resolution}"
        )
    return args


def build_unet(args) -> UNet2DModel:
    """The denoiser: from --pretrained_model_name_or_path, a config, or the default architecture; checked against the
    data and the objective."""
    channels = 1 if args.color_mode == "L" else 3
    if args.pretrained_model_name_or_path is not None:
        unet = UNet2DModel.from_pretrained(args.pretrained_model_name_or_path, subfolder="unet")
    elif args.model_config_name_or_path is not None:
        unet = UNet2DModel.from_config(UNet2DModel.load_config(args.model_config_name_or_path))
    else:
        time_embedding = "fourier" if args.objective == "score_ve" else "positional"
        unet = UNet2DModel(
            sample_size=args.resolution,
            in_channels=channels,
            out_channels=channels,
            time_embedding_type=time_embedding,
            **DEFAULT_UNET,
        )
    if unet.config.in_channels != channels or unet.config.out_channels != channels:
        raise ValueError(
            f"the UNet takes {unet.config.in_channels}-channel images but --color_mode {args.color_mode} gives "
            f"{channels}"
        )
    if unet.config.sample_size != args.resolution:
        raise ValueError(
            f"the UNet makes {unet.config.sample_size}px images but --resolution is {args.resolution}: pass "
            f"--resolution {unet.config.sample_size}"
        )
    fourier = unet.config.time_embedding_type == "fourier"
    if fourier != (args.objective == "score_ve"):
        raise ValueError(
            f"the UNet's time_embedding_type is {unet.config.time_embedding_type!r}, but --objective {args.objective} "
            f"needs {'fourier (it is fed noise levels)' if args.objective == 'score_ve' else 'positional'}"
        )
    return unet


def largest_pairwise_distance(data, args) -> float:
    """The largest Euclidean distance between two of (up to 1000) training images, in [-1, 1] pixels: the noise level
    at which any two images become indistinguishable, Song & Ermon's choice of sigma_max."""
    train = data.evaluation.train
    images = images_as_tensor(
        train, args.resolution, args.color_mode, num_images=min(len(train), 1000), seed=args.seed
    )
    flat = images.flatten(1).double()
    return torch.cdist(flat, flat).max().item()


def build_scheduler(args, data):
    """The noise process: a DDPMScheduler (from the pretrained folder, or from the flags) or the VE SDE's noise
    ladder. Resolves --prediction_type and --sigma_max into `args` so the record holds what was trained."""
    if args.objective == "score_ve":
        if args.pretrained_model_name_or_path is not None:
            scheduler = ScoreSdeVeScheduler.from_pretrained(args.pretrained_model_name_or_path, subfolder="scheduler")
            # the pretrained model's noise ladder is kept unless --sigma_max is given
            args.sigma_min = scheduler.config.sigma_min
            args.sigma_max = args.sigma_max or scheduler.config.sigma_max
        args.sigma_max = args.sigma_max or round(largest_pairwise_distance(data, args), 2)
        if args.sigma_max <= args.sigma_min:
            raise ValueError(
                f"the training images lie within {args.sigma_max} of each other, under --sigma_min {args.sigma_min}: "
                "pass a larger --sigma_max"
            )
        return ScoreSdeVeScheduler(
            num_train_timesteps=args.num_inference_steps,
            sigma_min=args.sigma_min,
            sigma_max=args.sigma_max,
            snr=CORRECTOR_SNR,
        )
    if args.pretrained_model_name_or_path is not None:
        scheduler = DDPMScheduler.from_pretrained(args.pretrained_model_name_or_path, subfolder="scheduler")
        # the pretrained model's schedule is kept: the record shows it, not the flags' defaults
        args.prediction_type = args.prediction_type or scheduler.config.prediction_type
        args.beta_schedule = scheduler.config.beta_schedule
        args.num_train_timesteps = scheduler.config.num_train_timesteps
        if args.num_inference_steps > args.num_train_timesteps:
            raise ValueError(
                f"--num_inference_steps {args.num_inference_steps} is more than the {args.num_train_timesteps} "
                f"timesteps of the schedule of {args.pretrained_model_name_or_path}"
            )
        return DDPMScheduler.from_config(scheduler.config, prediction_type=args.prediction_type)
    args.prediction_type = args.prediction_type or "epsilon"
    return DDPMScheduler(
        num_train_timesteps=args.num_train_timesteps,
        beta_schedule=args.beta_schedule,
        prediction_type=args.prediction_type,
    )


def ddpm_loss(unet, noise_scheduler, pixel_values, args):
    """Algorithm 1 of Ho et al.: a uniform timestep per image, x_t from the closed form of q(x_t | x_0), and the
    squared error of the network's prediction of the --prediction_type target (min-SNR weighted with --snr_gamma)."""
    noise = training_noise(pixel_values, args.noise_offset)
    timesteps = sample_timesteps(
        pixel_values.shape[0], noise_scheduler.config.num_train_timesteps, pixel_values.device
    )
    noisy = noise_scheduler.add_noise(pixel_values, noise, timesteps)
    prediction = unet(noisy, timesteps).sample
    alphas_cumprod = noise_scheduler.alphas_cumprod
    target = diffusion_target(args.prediction_type, pixel_values, noise, timesteps, alphas_cumprod)
    weights = None
    if args.snr_gamma is not None:
        weights = min_snr_loss_weights(timesteps, alphas_cumprod, args.snr_gamma, args.prediction_type)
    return diffusion_loss(prediction, target, weights)


def score_matching_loss(unet, pixel_values, args):
    """Denoising score matching: x + sigma z at a log-uniform sigma per image; the network's score times sigma should
    be -z."""
    sigmas = sample_noise_levels(pixel_values.shape[0], args.sigma_min, args.sigma_max, pixel_values.device)
    noise = torch.randn_like(pixel_values)
    per_image = sigmas.reshape(-1, 1, 1, 1)
    score = unet(pixel_values + per_image * noise, sigmas).sample
    return denoising_score_matching_loss(score * per_image, noise)


@torch.no_grad()
def evaluate(unet, ema, noise_scheduler, data, args, accelerator, step) -> dict:
    """Validation grid (main process) and metrics (every process) of the averaged weights."""
    model = accelerator.unwrap_model(unet)
    with averaged_weights(ema, list(model.parameters())):
        model.eval()
        pipeline = sampling_pipeline(model, noise_scheduler)
        sample = diffusion_sampler(pipeline, args.num_inference_steps)
        metrics = validate_generator(
            pipeline, sample, data, args, accelerator, step, logger, num_inference_steps=args.num_inference_steps
        )
    model.train()
    return metrics


def main(args):
    accelerator = make_accelerator(args)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)

    # 1. data: every image is decoded before anything else, so a broken file fails first (--dry_run included)
    data = load_run_data(args, accelerator, logger)

    # 2. model and noise process: built with the same seed everywhere, then each process gets its own stream of noise
    set_seed(args.seed)
    unet = build_unet(args)
    noise_scheduler = build_scheduler(args, data)
    if args.dry_run:
        data = {split: len(images) for split, images in data.dataset.items()}
        print_dry_run(
            args, accelerator, unet_config=dict(unet.config), scheduler_config=dict(noise_scheduler.config), data=data
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

    start_trackers(accelerator, args, "train_ddpm")

    # 4. resume
    global_step = resume_run(accelerator, args.output_dir, args.resume_from_checkpoint, logger)
    batches = endless_batches(accelerator, train_dataloader, global_step * args.gradient_accumulation_steps)

    total_batch = args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    logger.info(
        f"{args.objective}: {len(data.train)} training images, {args.max_train_steps} steps, batch {total_batch} "
        f"({accelerator.num_processes} processes)"
    )
    progress = tqdm(
        range(args.max_train_steps), initial=global_step, desc="steps", disable=not accelerator.is_local_main_process
    )

    # 5. the loop: one optimizer step per --gradient_accumulation_steps micro-batches, their mean loss
    unet.train()
    micro_batches = args.gradient_accumulation_steps
    while global_step < args.max_train_steps:
        for index in range(micro_batches):
            pixel_values = next(batches)["pixel_values"]
            if args.random_flip:
                pixel_values = random_flip(pixel_values)
            with gradient_sync(accelerator, unet, index, micro_batches):
                if args.objective == "score_ve":
                    loss = score_matching_loss(unet, pixel_values, args)
                else:
                    loss = ddpm_loss(unet, noise_scheduler, pixel_values, args)
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
            evaluate(unet, ema, noise_scheduler, data, args, accelerator, global_step)
    progress.close()

    # 6. the end of the run: final metrics of the averaged weights (all processes); then, on the main process, the
    # Hub-ready folder (pipeline, sample grid, record of the run, model card) and the upload
    run_facts = check_replicas(accelerator, unet, global_step, logger)
    metrics = evaluate(unet, ema, noise_scheduler, data, args, accelerator, global_step)
    if accelerator.is_main_process:
        references = measure_references(data.evaluation, args)
        model = accelerator.unwrap_model(unet)
        if ema is not None:
            ema.copy_to(model.parameters())  # the run is over: the saved model is the average
        model.eval()
        if args.objective == "score_ve":
            saved = hfgen.ScoreSdePipeline(unet=model, scheduler=noise_scheduler)
        else:
            saved = hfgen.DDPMPipeline(unet=model, scheduler=noise_scheduler)
        saved.save_pretrained(args.output_dir)
        grid = sampling_pipeline(model, noise_scheduler)
        samples = grid(
            batch_size=64,
            generator=torch.Generator(device="cpu").manual_seed(args.seed),
            num_inference_steps=args.num_inference_steps,
        ).images
        save_card_grid(samples, args.output_dir, columns=8)
        protocol = diffusion_protocol(data.evaluation, grid, args)
        record = write_run_record(args, metrics, references, run_facts, protocol)
        family = "score_sde" if args.objective == "score_ve" else "ddpm"
        tags = ["diffusion", "score-sde", "ncsn"] if family == "score_sde" else ["diffusion", "ddpm", "ddim"]
        write_model_card(args, family, record, CARD_METRIC_NAMES, tags=tags, unet_config=dict(model.config))
        print_run_summary(args.output_dir, data.evaluation, metrics)
        if args.push_to_hub:
            push_folder(args, "train_ddpm.py", logger)
    end_run(accelerator)
    return metrics


if __name__ == "__main__":
    run_script(main, parse_args())
