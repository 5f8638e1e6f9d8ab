#!/usr/bin/env python
"""Distil a text-to-image latent diffusion model into a latent consistency model (Luo et al. 2023) that samples in 1
to 8 steps with diffusers' `LCMScheduler`, its classifier-free guidance folded in: a full LCM, or LCM-LoRA adapters
(Luo et al. 2023b) on the teacher's UNet with --use_lora.

    accelerate launch training_scripts/diffusion/train_lcm_distill.py --pretrained_model_name_or_path ldm-digits
    accelerate launch training_scripts/diffusion/train_lcm_distill.py --pretrained_model_name_or_path ldm-digits \
        --use_lora

The teacher is a folder train_ldm.py wrote or a Stable-Diffusion-style folder (vae, text_encoder, tokenizer, unet,
scheduler). Latent consistency distillation: a latent of the data is noised to a timestep t_n of a skipping-step
schedule (`--num_ddim_timesteps` of the training timesteps, 50 by default: t_n = (n + 1) T / 50 - 1), the teacher takes
one guided DDIM step from it to t_{n-1}, and the student's consistency function at t_n is trained to match a target
network's at t_{n-1}. The consistency function is `c_skip(t) x_t + c_out(t) x0(x_t, t)`, with the boundary scalings and
the clean-latent estimate of the scheduler that samples it (`LCMScheduler.get_scalings_for_boundary_condition_discrete`
and the teacher's prediction type), so what is trained is what `LCMScheduler.step` samples.

- Full LCM: the student is the teacher's UNet with a guidance embedding (`time_cond_proj_dim`, its projection
  zero-initialised so it starts as the teacher); the teacher's guidance scale is drawn per sample in
  [--guidance_scale_min, --guidance_scale_max] and given to the student, so `guidance_scale` stays a sampling
  control; the target network is an exponential moving average of the student (--target_ema_decay). The folder is a
  `LatentDiffusionPipeline` with an `LCMScheduler`.
- LCM-LoRA: LoRA adapters on the UNet's attention projections; the adapters have no guidance input, so the guidance
  scale is drawn in the same range as the LCM-LoRA paper does, and the student learns the guidance it averages; it
  samples with guidance scale 1 (no unconditional branch). The target network is the student itself without
  gradients (the paper's choice for adapters). The folder holds `pytorch_lora_weights.safetensors`, which
  `pipeline.load_lora_weights(folder)` puts onto the teacher, and `scheduler/` (the LCMScheduler it samples with);
  its `training_args.json` names the teacher, so `hfgen sample / evaluate / demo` load it onto it.

At the end, FID and prompt accuracy of the student at --num_inference_steps LCM steps (and at --extra_steps) are
measured as train_ldm.py measures its models, beside the teacher's at its own DDIM sampling (25 steps, guidance 3),
with the images per second of both.
"""

import argparse
import copy
import logging
import math
import os
import time

import torch
import torch.nn.functional as F
from accelerate.logging import get_logger
from accelerate.utils import set_seed
from diffusers import LCMScheduler, UNet2DConditionModel
from tqdm.auto import tqdm

import hfgen
from hfgen.data import BUILTIN_DIGITS
from hfgen.data.captions import (
    IndexedImages,
    LabelCaptions,
    batch_captions,
    collate_indexed,
    dataset_captions,
    grid_prompts,
)
from hfgen.pipelines.latent_diffusion.evaluation import (
    GUIDANCE_SCALE,
    NUM_INFERENCE_STEPS,
    TEXT_TO_IMAGE_METRIC_NAMES,
    measure_text_to_image,
    text_to_image_protocol,
)
from hfgen.pipelines.latent_diffusion.folders import sampling_pipeline
from hfgen.pipelines.latent_diffusion.pipeline_latent_diffusion import guidance_embedding
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
    add_unet_lora,
    base_training_schedule,
    check_space_base,
    encode_latents,
    encode_text,
    fit_data_to_base,
    local_folder,
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
)

logger = get_logger(__name__)

DEFAULT_TRAIN_STEPS = 600
# Width of the guidance embedding a full LCM's UNet takes (`time_cond_proj_dim`), as in the LCM paper's models.
GUIDANCE_EMBEDDING_DIM = 256
# diffusers' LCMScheduler default: c_skip and c_out are those of the timestep scaled by 10, so that only t = 0 is
# (nearly) the boundary c_skip = 1, c_out = 0.
TIMESTEP_SCALING = 10.0


def parse_args(input_args=None):
    parser = make_parser("Distil a latent diffusion model into a latent consistency model (or LCM-LoRA adapters).")
    add_data_arguments(parser, BUILTIN_DIGITS)
    parser.add_argument(
        "--pretrained_model_name_or_path",
        type=str,
        required=True,
        help="The teacher: a folder train_ldm.py wrote, or a Stable-Diffusion-style folder or Hub id (vae, "
        "text_encoder, tokenizer, unet, scheduler).",
    )
    parser.add_argument(
        "--caption_column",
        type=str,
        default=None,
        help="The dataset column holding each image's caption; without it, captions are written from the class "
        "labels, as train_ldm.py does.",
    )
    parser.add_argument(
        "--use_lora",
        action="store_true",
        help="Train LCM-LoRA adapters on the teacher UNet's attention projections instead of a full LCM.",
    )
    parser.add_argument("--lora_rank", type=int, default=16)
    parser.add_argument(
        "--lora_alpha", type=float, default=None, help="LoRA scaling numerator (scale alpha / rank); default rank."
    )
    # distillation
    parser.add_argument(
        "--num_ddim_timesteps",
        type=int,
        default=50,
        help="Timesteps of the skipping-step schedule the teacher's DDIM solver steps over; also the saved "
        "LCMScheduler's original_inference_steps, from which its 1 to 8 sampling steps are taken.",
    )
    parser.add_argument(
        "--guidance_scale_min",
        type=float,
        default=2.0,
        help="The teacher's classifier-free guidance scale is drawn uniformly per sample in [min, max].",
    )
    parser.add_argument("--guidance_scale_max", type=float, default=4.0)
    parser.add_argument(
        "--target_ema_decay",
        type=float,
        default=0.95,
        help="Decay of the full LCM's target network, an exponential moving average of the student (the paper's).",
    )
    parser.add_argument(
        "--loss_type",
        type=str,
        default="huber",
        choices=("huber", "l2"),
        help="Distance between the student's and the target's consistency functions: the pseudo-Huber loss "
        "sqrt(d^2 + c^2) - c (Song & Dhariwal 2023) or the mean squared error.",
    )
    parser.add_argument("--huber_c", type=float, default=0.001, help="The pseudo-Huber loss's c.")
    # sampling and measurement
    parser.add_argument(
        "--guidance_scale",
        type=float,
        default=None,
        help="Guidance of the samples and metrics: the scale given to a full LCM's guidance embedding (default "
        f"{GUIDANCE_SCALE}, train_ldm.py's), or classifier-free guidance on top of LCM-LoRA adapters (default 1: "
        "none, the teacher's is folded in).",
    )
    parser.add_argument(
        "--num_inference_steps", type=int, default=4, help="LCM steps of the validation grids and the metrics."
    )
    parser.add_argument(
        "--extra_steps",
        type=int,
        nargs="*",
        default=[1, 2, 8],
        help="Further LCM step counts measured at the end (FID and prompt accuracy).",
    )
    parser.add_argument(
        "--teacher_num_inference_steps",
        type=int,
        default=NUM_INFERENCE_STEPS,
        help=f"DDIM steps of the teacher's measurement (guidance {GUIDANCE_SCALE}, as train_ldm.py measures it).",
    )
    parser.add_argument(
        "--skip_teacher_metrics", action="store_true", help="Leave out the teacher's metrics and sampling speed."
    )
    # optimisation
    parser.add_argument("--learning_rate", type=float, default=None, help="Default 1e-4, or 1e-3 with --use_lora.")
    parser.add_argument("--adam_beta1", type=float, default=0.9)
    parser.add_argument("--adam_beta2", type=float, default=0.999)
    parser.add_argument("--adam_weight_decay", type=float, default=0.0)
    add_run_arguments(parser, family="lcm")
    parser.set_defaults(
        train_batch_size=32,
        lr_scheduler="constant_with_warmup",
        lr_warmup_steps=50,
        max_grad_norm=1.0,
        checkpointing_steps=500,
        validation_steps=200,
        resolution=None,
        color_mode=None,
    )
    args = parser.parse_args(input_args)
    check_run_arguments(parser, args)
    check_flag_ranges(
        parser,
        args,
        {
            "lora_rank": (1, None, "closed"),
            "lora_alpha": (0, None, "open"),
            "num_ddim_timesteps": (1, None, "closed"),
            "guidance_scale_min": (1, None, "closed"),
            "guidance_scale_max": (1, None, "closed"),
            "target_ema_decay": (0, 1, "high_open"),
            "huber_c": (0, None, "open"),
            "guidance_scale": (0, None, "closed"),
            "num_inference_steps": (1, None, "closed"),
            "teacher_num_inference_steps": (1, None, "closed"),
            "learning_rate": (0, None, "open"),
        },
    )
    if args.guidance_scale_min > args.guidance_scale_max:
        parser.error(
            f"--guidance_scale_min {args.guidance_scale_min} is above --guidance_scale_max {args.guidance_scale_max}"
        )
    for steps in (args.num_inference_steps, *args.extra_steps):
        if not 1 <= steps <= args.num_ddim_timesteps:
            parser.error(
                f"LCM sampling steps {steps} (--num_inference_steps / --extra_steps) must be between 1 and "
                f"--num_ddim_timesteps {args.num_ddim_timesteps}, the schedule they are taken from"
            )
    if args.use_lora:
        check_space_base(parser, args)
    if args.guidance_scale is None:
        args.guidance_scale = 1.0 if args.use_lora else GUIDANCE_SCALE
    if args.learning_rate is None:
        args.learning_rate = 1e-3 if args.use_lora else 1e-4
    return args


# --- models ---


def lcm_scheduler(noise_scheduler, args) -> LCMScheduler:
    """The scheduler the student samples with: the teacher's noise schedule and prediction type, its sampling steps
    taken from the distillation's skipping-step schedule (`original_inference_steps`)."""
    return LCMScheduler.from_config(
        noise_scheduler.config,
        original_inference_steps=args.num_ddim_timesteps,
        timestep_scaling=TIMESTEP_SCALING,
        clip_sample=False,
        set_alpha_to_one=True,
    )


def full_lcm_student(teacher_unet: UNet2DConditionModel) -> UNet2DConditionModel:
    """The teacher's UNet with a guidance embedding (`time_cond_proj_dim`) whose projection is zero, so the student
    starts as the teacher's conditional prediction whatever the guidance scale."""
    if teacher_unet.config.time_cond_proj_dim is not None:
        return copy.deepcopy(teacher_unet)  # the teacher is itself an LCM: distil it further as it is
    student = UNet2DConditionModel.from_config(teacher_unet.config, time_cond_proj_dim=GUIDANCE_EMBEDDING_DIM)
    student.load_state_dict(teacher_unet.state_dict(), strict=False)  # all but the new projection
    torch.nn.init.zeros_(student.time_embedding.cond_proj.weight)
    return student


# --- the consistency distillation step ---


def clean_and_noise(prediction, sample, alpha_bar, prediction_type: str):
    """The clean-latent and noise estimates of a network's `prediction` at x_t = `sample` (`alpha_bar`: a_t per
    image, broadcast), as the schedulers derive them from each prediction type."""
    if prediction_type == "epsilon":
        clean = (sample - (1 - alpha_bar).sqrt() * prediction) / alpha_bar.sqrt()
        return clean, prediction
    if prediction_type == "sample":
        return prediction, (sample - alpha_bar.sqrt() * prediction) / (1 - alpha_bar).sqrt()
    # v-prediction
    return alpha_bar.sqrt() * sample - (1 - alpha_bar).sqrt() * prediction, (
        alpha_bar.sqrt() * prediction + (1 - alpha_bar).sqrt() * sample
    )


def consistency_function(unet, sample, timesteps, text, guidance, scheduler, alphas_cumprod, prediction_type):
    """f(x_t, t) = c_skip(t) x_t + c_out(t) x0(x_t, t): the denoised latent `LCMScheduler.step` takes from the UNet's
    prediction at each sampling step."""
    prediction = unet(sample, timesteps, encoder_hidden_states=text, timestep_cond=guidance).sample
    alpha_bar = alphas_cumprod[timesteps].view(-1, 1, 1, 1)
    clean, _ = clean_and_noise(prediction, sample, alpha_bar, prediction_type)
    c_skip, c_out = scheduler.get_scalings_for_boundary_condition_discrete(timesteps.float())
    return c_skip.view(-1, 1, 1, 1) * sample + c_out.view(-1, 1, 1, 1) * clean


def distillation_loss(models, latents, texts, args):
    """One step of latent consistency distillation (Algorithm 1 of Luo et al.) on a batch of clean `latents`."""
    teacher, student, target, text_encoder, tokenizer, scheduler = models
    alphas_cumprod = scheduler.alphas_cumprod.to(latents.device)
    batch, device = latents.shape[0], latents.device
    step_ratio = scheduler.config.num_train_timesteps // args.num_ddim_timesteps
    # t_n of the skipping-step schedule, and the teacher's DDIM step's destination t_{n-1} (0 below the first)
    index = torch.randint(0, args.num_ddim_timesteps, (batch,), device=device)
    timesteps = (index + 1) * step_ratio - 1
    previous = (timesteps - step_ratio).clamp(min=0)
    noise = torch.randn_like(latents)
    noisy = scheduler.add_noise(latents, noise, timesteps)
    scales = args.guidance_scale_min + (args.guidance_scale_max - args.guidance_scale_min) * torch.rand(batch)
    scales = scales.to(device)
    guidance = None
    if not args.use_lora:
        guidance = guidance_embedding(scales, GUIDANCE_EMBEDDING_DIM).to(device=device, dtype=latents.dtype)
    with torch.no_grad():
        conditional = encode_text(text_encoder, tokenizer, texts, device)
        unconditional = encode_text(text_encoder, tokenizer, [""] * batch, device)

    prediction = consistency_function(
        student, noisy, timesteps, conditional, guidance, scheduler, alphas_cumprod, args.prediction_type
    )
    with torch.no_grad():
        # the teacher's guided DDIM step from t_n to t_{n-1}, on both its clean-latent and noise estimates
        both = teacher(
            torch.cat([noisy, noisy]),
            torch.cat([timesteps, timesteps]),
            encoder_hidden_states=torch.cat([unconditional, conditional]),
        ).sample
        alpha_bar = alphas_cumprod[timesteps].view(-1, 1, 1, 1)
        clean, eps = clean_and_noise(
            both, torch.cat([noisy, noisy]), alpha_bar.repeat(2, 1, 1, 1), args.prediction_type
        )
        weight = scales.view(-1, 1, 1, 1)
        (clean_u, clean_c), (eps_u, eps_c) = clean.chunk(2), eps.chunk(2)
        clean = clean_u + weight * (clean_c - clean_u)
        eps = eps_u + weight * (eps_c - eps_u)
        alpha_bar_previous = alphas_cumprod[previous].view(-1, 1, 1, 1)
        solved = alpha_bar_previous.sqrt() * clean + (1 - alpha_bar_previous).sqrt() * eps
        target_prediction = consistency_function(
            target, solved, previous, conditional, guidance, scheduler, alphas_cumprod, args.prediction_type
        )
    if args.loss_type == "l2":
        return F.mse_loss(prediction.float(), target_prediction.float())
    squared = (prediction.float() - target_prediction.float()) ** 2
    return (torch.sqrt(squared + args.huber_c**2) - args.huber_c).mean()


@torch.no_grad()
def update_target(target, student, decay: float) -> None:
    """theta^- <- decay theta^- + (1 - decay) theta (the full LCM's target network)."""
    target_parameters = list(target.parameters())
    torch._foreach_lerp_(target_parameters, [p.detach() for p in student.parameters()], 1 - decay)


# --- evaluation ---


def with_steps(args, steps: int, guidance_scale: float | None = None) -> argparse.Namespace:
    """`args` with other sampling settings, for measurements at other step counts."""
    return argparse.Namespace(
        **{**vars(args), "num_inference_steps": steps, "guidance_scale": guidance_scale or args.guidance_scale}
    )


@torch.no_grad()
def images_per_second(pipeline, prompts: list[str], steps: int, guidance_scale: float) -> float:
    """Images per second of `pipeline` on `prompts` in one batch (after a warm-up call), decoding included."""

    def draw():
        pipeline(
            prompt=prompts,
            guidance_scale=guidance_scale,
            num_inference_steps=steps,
            generator=torch.Generator(device="cpu").manual_seed(0),
            output_type="pt",
        )

    draw()
    start = time.perf_counter()
    draw()
    return len(prompts) / (time.perf_counter() - start)


def student_pipeline(vae, text_encoder, tokenizer, unet, noise_scheduler, args):
    pipeline = hfgen.LatentDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=lcm_scheduler(noise_scheduler, args),
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@torch.no_grad()
def validate(pipeline, captions, data, args, accelerator, step) -> dict:
    """A grid of prompted LCM samples (main process) and the metrics at --num_inference_steps (all processes)."""
    pipeline.unet.eval()
    if accelerator.is_main_process:
        prompts = grid_prompts(captions, args.num_validation_images)
        images = pipeline(
            prompt=prompts,
            guidance_scale=args.guidance_scale,
            num_inference_steps=args.num_inference_steps,
            generator=torch.Generator(device="cpu").manual_seed(args.seed),
        ).images
        columns = len(captions.phrases) if isinstance(captions, LabelCaptions) else None
        save_grid(images, os.path.join(args.output_dir, "validation"), "samples", accelerator, step, columns)
    metrics = measure_text_to_image(pipeline, captions, data, args, accelerator, args.guidance_scale)
    pipeline.unet.train()
    accelerator.log({f"eval/{name}": value for name, value in metrics.items()}, step=step)
    logger.info(f"step {step}: " + ", ".join(f"{name} {value:.4g}" for name, value in metrics.items()))
    return metrics


def end_metrics(pipeline, teacher_pipeline, captions, data, args, accelerator) -> dict:
    """The student's metrics at --num_inference_steps (already measured by the last validation) and at each of
    --extra_steps, the teacher's at its DDIM sampling, and both samplers' images per second."""
    metrics = {}
    for steps in args.extra_steps:
        if steps != args.num_inference_steps:
            measured = measure_text_to_image(
                pipeline, captions, data, with_steps(args, steps), accelerator, args.guidance_scale
            )
            metrics.update(
                {f"{name}_{steps}_steps": measured[name] for name in ("fid", "class_accuracy") if name in measured}
            )
    if args.skip_teacher_metrics:
        return metrics
    teacher_args = with_steps(args, args.teacher_num_inference_steps, GUIDANCE_SCALE)
    measured = measure_text_to_image(teacher_pipeline, captions, data, teacher_args, accelerator, GUIDANCE_SCALE)
    metrics.update({f"teacher_{name}": measured[name] for name in ("fid", "class_accuracy") if name in measured})
    if accelerator.is_main_process:
        prompts = grid_prompts(captions, 64)
        student_speed = images_per_second(pipeline, prompts, args.num_inference_steps, args.guidance_scale)
        teacher_speed = images_per_second(teacher_pipeline, prompts, args.teacher_num_inference_steps, GUIDANCE_SCALE)
        metrics.update(
            images_per_second=student_speed,
            teacher_images_per_second=teacher_speed,
            sampling_speedup=student_speed / teacher_speed,
        )
    return metrics


def lcm_metric_names(args) -> dict:
    names = {
        **TEXT_TO_IMAGE_METRIC_NAMES,
        "fid": f"FID, {args.num_inference_steps} LCM steps",
        "class_accuracy": f"prompt accuracy, {args.num_inference_steps} LCM steps",
        "teacher_fid": f"teacher FID, {args.teacher_num_inference_steps} DDIM steps",
        "teacher_class_accuracy": f"teacher prompt accuracy, {args.teacher_num_inference_steps} DDIM steps",
        "images_per_second": f"images per second, {args.num_inference_steps} LCM steps",
        "teacher_images_per_second": f"teacher images per second, {args.teacher_num_inference_steps} DDIM steps",
        "sampling_speedup": "sampling-time ratio (teacher time / student time)",
    }
    for steps in args.extra_steps:
        names[f"fid_{steps}_steps"] = f"FID, {steps} LCM steps"
        names[f"class_accuracy_{steps}_steps"] = f"prompt accuracy, {steps} LCM steps"
    return names


def main(args):
    accelerator = make_accelerator(args)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)

    # 1. the teacher fixes the resolution, colours and noise schedule; the data is decoded first
    set_seed(args.seed)
    teacher_pipeline = hfgen.LatentDiffusionPipeline.from_pretrained(local_folder(args.pretrained_model_name_or_path))
    fit_data_to_base(args, teacher_pipeline.image_size, teacher_pipeline.vae.config.in_channels)
    noise_scheduler = base_training_schedule(teacher_pipeline.scheduler.config, args)
    if args.num_ddim_timesteps > noise_scheduler.config.num_train_timesteps:
        raise ValueError(
            f"--num_ddim_timesteps {args.num_ddim_timesteps} is more than the teacher's "
            f"{noise_scheduler.config.num_train_timesteps} training timesteps"
        )
    data = load_run_data(args, accelerator, logger)
    captions = dataset_captions(data.evaluation.train, args.caption_column)
    vae, text_encoder, tokenizer = teacher_pipeline.vae, teacher_pipeline.text_encoder, teacher_pipeline.tokenizer
    teacher = teacher_pipeline.unet
    if args.use_lora:
        student = copy.deepcopy(teacher)
        add_unet_lora(student, args.lora_rank, args.lora_alpha)
    else:
        student = full_lcm_student(teacher)
    if args.dry_run:
        print_dry_run(
            args,
            accelerator,
            student_unet_config=dict(student.config),
            lcm_scheduler=dict(lcm_scheduler(noise_scheduler, args).config),
            data={split: len(images) for split, images in data.dataset.items()},
        )
        return None
    for model in (vae, text_encoder, teacher):
        model.requires_grad_(False).eval().to(accelerator.device)
    teacher_pipeline = sampling_pipeline(vae, text_encoder, tokenizer, teacher, noise_scheduler)
    # the full LCM's target network is an average of the student; the adapters' is the student itself
    target = None
    if not args.use_lora:
        target = copy.deepcopy(student).requires_grad_(False).eval().to(accelerator.device)
    trained_parameters = [p for p in student.parameters() if p.requires_grad]
    set_seed(args.seed, device_specific=True)
    train_dataloader = make_train_dataloader(IndexedImages(data.train), args, collate_indexed)

    # 2. optimisation
    optimizer = torch.optim.AdamW(
        trained_parameters,
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        weight_decay=args.adam_weight_decay,
    )
    updates_per_epoch = math.ceil(len(train_dataloader) / accelerator.num_processes / args.gradient_accumulation_steps)
    resolve_max_train_steps(args, updates_per_epoch, 1, DEFAULT_TRAIN_STEPS)
    (lr_scheduler,) = make_lr_schedulers(args, accelerator, optimizer)
    student, optimizer, train_dataloader, lr_scheduler = accelerator.prepare(
        student, optimizer, train_dataloader, lr_scheduler
    )
    if target is not None:
        accelerator.register_for_checkpointing(target)
    start_trackers(accelerator, args, "train_lcm_distill")

    # 3. resume
    global_step = resume_run(accelerator, args.output_dir, args.resume_from_checkpoint, logger)
    batches = endless_batches(accelerator, train_dataloader, global_step * args.gradient_accumulation_steps)
    logger.info(
        f"{len(data.train)} training images, {args.max_train_steps} steps; distilling "
        f"{'LCM-LoRA adapters' if args.use_lora else 'a full LCM'} over {args.num_ddim_timesteps} teacher timesteps"
    )
    progress = tqdm(
        range(args.max_train_steps), initial=global_step, desc="steps", disable=not accelerator.is_local_main_process
    )

    # 4. the loop
    student.train()
    student_model = accelerator.unwrap_model(student)
    # the adapters' target network is the student itself, run without gradients
    scheduler = lcm_scheduler(noise_scheduler, args)
    models = (teacher, student, target if target is not None else student_model, text_encoder, tokenizer, scheduler)
    pipeline = student_pipeline(vae, text_encoder, tokenizer, student_model, noise_scheduler, args)
    micro_batches = args.gradient_accumulation_steps
    while global_step < args.max_train_steps:
        for index in range(micro_batches):
            batch = next(batches)
            pixel_values = batch["pixel_values"]
            if args.random_flip:
                pixel_values = random_flip(pixel_values)
            texts = batch_captions(batch, captions)
            latents = encode_latents(vae, pixel_values)
            with gradient_sync(accelerator, [student], index, micro_batches):
                loss = distillation_loss(models, latents, texts, args)
                check_finite(loss, "the loss", global_step, args.output_dir)
                accelerator.backward(loss / micro_batches)
        if args.max_grad_norm is not None:
            accelerator.clip_grad_norm_(trained_parameters, args.max_grad_norm)
        optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if target is not None:
            update_target(target, student_model, args.target_ema_decay)
        global_step += 1
        progress.update(1)
        logs = {"loss": loss.item(), "lr": lr_scheduler.get_last_lr()[0]}
        progress.set_postfix(loss=f"{logs['loss']:.4g}")
        accelerator.log(logs, step=global_step)

        if global_step % args.checkpointing_steps == 0:
            save_checkpoint(accelerator, args.output_dir, global_step, args.checkpoints_total_limit)
        if global_step % args.validation_steps == 0 and global_step < args.max_train_steps:
            validate(pipeline, captions, data, args, accelerator, global_step)
    progress.close()

    # 5. the end: the student's metrics at its step counts beside the teacher's (all processes); then, on the main
    # process, the folder (pipeline with its LCMScheduler, or the LoRA file and its scheduler), grid, record and card
    run_facts = check_replicas(accelerator, student, global_step, logger)
    metrics = validate(pipeline, captions, data, args, accelerator, global_step)
    student_model.eval()
    metrics.update(end_metrics(pipeline, teacher_pipeline, captions, data, args, accelerator))
    if accelerator.is_main_process:
        references = measure_references(data.evaluation, args)
        if args.use_lora:
            save_lora(args.output_dir, student_model)
            pipeline.scheduler.save_pretrained(os.path.join(args.output_dir, "scheduler"))
        else:
            pipeline.save_pretrained(args.output_dir)
        prompts = grid_prompts(captions, 64)
        samples = pipeline(
            prompt=prompts,
            guidance_scale=args.guidance_scale,
            num_inference_steps=args.num_inference_steps,
            generator=torch.Generator(device="cpu").manual_seed(args.seed),
        ).images
        columns = len(captions.phrases) if isinstance(captions, LabelCaptions) else 8
        save_card_grid(samples, args.output_dir, columns=columns)
        protocol = text_to_image_protocol(data, captions, args)
        protocol["sampler"] = (
            f"LCMScheduler, {args.num_inference_steps} steps (also {', '.join(map(str, args.extra_steps))}), guidance "
            f"scale {args.guidance_scale}; teacher: DDIM (eta 0), {args.teacher_num_inference_steps} steps, guidance "
            f"scale {GUIDANCE_SCALE}; images per second on one batch of 64 prompts, decoding included"
        )
        record = write_run_record(args, metrics, references, run_facts, protocol)
        write_model_card(
            args,
            "lcm",
            record,
            lcm_metric_names(args),
            tags=["diffusion", "latent-diffusion", "latent-consistency-model", "text-to-image"]
            + (["lora", "lcm-lora"] if args.use_lora else []),
            pipeline_tag="text-to-image",
            example_prompt=prompts[min(7, len(prompts) - 1)] or "",
        )
        print_run_summary(args.output_dir, data.evaluation, metrics)
        if args.push_to_hub:
            push_folder(args, "train_lcm_distill.py", logger)
    end_run(accelerator)
    return metrics


if __name__ == "__main__":
    run_script(main, parse_args())
