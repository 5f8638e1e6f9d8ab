"""Measuring super-resolution and cascaded diffusion as train_super_resolution.py does, at the end of a run and on a
saved folder (`hfgen evaluate`).

The super-resolution stage alone: every held-out image is downsampled to the low resolution (as the training pairs
are made) and super-resolved (DDIM, the run's `--num_inference_steps` and `--sampling_noise_level`); PSNR and SSIM
against the original, and FID of the super-resolved set against the originals through the run's feature extractor
(when there is one for the data). Bicubic upsampling of the same low-resolution images is measured the same way
beside them: the baseline the model must beat.

The cascade (a `CascadedDiffusionPipeline` folder, or a run given `--base_model_name_or_path`): FID and its kin of
`--num_eval_samples` samples drawn through both stages (the base's images noised to `--cascade_noise_level`) against
the held-out images, beside those of the base model's
samples upsampled bicubically (what the super-resolution stage adds to the base).
"""

import argparse
import logging

import torch
from accelerate.utils import gather_object
from diffusers import DDIMScheduler

from ...metrics import GenerativeMetrics, psnr, ssim
from ...training.evaluation import (
    FolderEvaluation,
    evaluate_generator,
    evaluation_batches,
    load_run_data,
    run_protocol,
)
from ..ddpm.pipeline_ddpm import DDPMPipeline
from ..sampling import load_pipeline
from .pipeline_cascade import CASCADE_NOISE_LEVEL, CascadedDiffusionPipeline
from .pipeline_super_resolution import DEFAULT_NOISE_LEVEL, SuperResolutionPipeline
from .resampling import downsample, upsample

# DDIM's steps in validation and the metrics unless --num_inference_steps says otherwise: the low-resolution image
# fixes most of the result, so fewer steps than an unconditional model needs do (benchmarks/bench_cascade.py).
SUPER_RESOLUTION_SAMPLING_STEPS = 25

# The settings of a folder measured without its run's record (train_super_resolution.py's defaults).
EVALUATION_DEFAULTS = dict(
    num_inference_steps=SUPER_RESOLUTION_SAMPLING_STEPS,
    base_num_inference_steps=50,
    sampling_noise_level=DEFAULT_NOISE_LEVEL,
    cascade_noise_level=CASCADE_NOISE_LEVEL,
    low_resolution=None,
)

CARD_METRIC_NAMES = {
    "psnr": "PSNR (super-resolution, dB)",
    "ssim": "SSIM (super-resolution)",
    "fid": "FID (super-resolution)",
    "bicubic_psnr": "PSNR (bicubic upsampling, dB)",
    "bicubic_ssim": "SSIM (bicubic upsampling)",
    "bicubic_fid": "FID (bicubic upsampling)",
    "cascade_fid": "FID (cascade: base + super-resolution)",
    "base_upsampled_fid": "FID (base samples upsampled bicubically)",
}


def sampling_pipeline(
    unet, noise_scheduler, low_resolution: int, prediction_target: str, residual_scale: float
) -> SuperResolutionPipeline:
    """The pipeline validation and the metrics super-resolve with: DDIM (eta 0) on the training schedule."""
    pipeline = SuperResolutionPipeline(
        unet=unet,
        scheduler=DDIMScheduler.from_config(noise_scheduler.config),
        low_resolution=low_resolution,
        prediction_target=prediction_target,
        residual_scale=residual_scale,
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def cascade_pipeline(base: DDPMPipeline, super_resolution: SuperResolutionPipeline) -> CascadedDiffusionPipeline:
    """The two stages as one pipeline, both sampling with DDIM on their training schedules."""
    pipeline = CascadedDiffusionPipeline(
        base_unet=base.unet,
        base_scheduler=DDIMScheduler.from_config(base.scheduler.config),
        unet=super_resolution.unet,
        scheduler=DDIMScheduler.from_config(super_resolution.scheduler.config),
        low_resolution=super_resolution.config.low_resolution,
        prediction_target=super_resolution.config.prediction_target,
        residual_scale=super_resolution.config.residual_scale,
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@torch.no_grad()
def super_resolve_evaluation_images(pipeline: SuperResolutionPipeline, data, args, accelerator, batch_size=128):
    """`(originals, super-resolved, bicubic)` of all the held-out images, each `(count, channels, height, width)` in
    [-1, 1] on the CPU. Every process super-resolves its share; image `i` draws its noise from a generator seeded
    `seed + i`, so the result does not depend on the number of processes."""
    with accelerator.split_between_processes(list(range(len(data.eval)))) as local_indices:
        local_eval = data.eval.select(local_indices)
        first = local_indices[0] if local_indices else 0
    originals, outputs, bicubic = [], [], []
    offset = first
    for batch in evaluation_batches(local_eval, batch_size):
        images = batch["pixel_values"].to(accelerator.device)
        low_res = downsample(images, args.low_resolution)
        generators = [torch.Generator().manual_seed(args.seed + offset + i) for i in range(len(images))]
        offset += len(images)
        output = pipeline(
            image=low_res * 0.5 + 0.5,  # pipelines take images in [0, 1]
            generator=generators,
            num_inference_steps=args.num_inference_steps,
            noise_level=args.sampling_noise_level,
            output_type="pt",
        ).images
        originals.append(images.cpu())
        outputs.append((output * 2 - 1).cpu())
        bicubic.append(upsample(low_res, images.shape[-1]).cpu())
    # Lists of batches are gathered, then joined: a process's share may be empty.
    return tuple(torch.cat(gather_object(parts)) for parts in (originals, outputs, bicubic))


def paired_metrics(outputs: torch.Tensor, originals: torch.Tensor, extractor, prefix: str = "") -> dict:
    """PSNR and SSIM of `outputs` against their `originals`, and FID of the two sets when there is an extractor."""
    metrics = {f"{prefix}psnr": psnr(outputs, originals).item(), f"{prefix}ssim": ssim(outputs, originals).item()}
    if extractor is not None:
        device = next(extractor.parameters()).device
        # every process holds all the images (gathered), so no synchronisation is needed
        distribution = GenerativeMetrics(extractor, sync_on_compute=False).to(device)
        for start in range(0, len(originals), 128):
            distribution.update(originals[start : start + 128].to(device), real=True)
            distribution.update(outputs[start : start + 128].to(device), real=False)
        metrics[f"{prefix}fid"] = distribution.compute()["fid"]
    return metrics


def evaluate_super_resolution(pipeline: SuperResolutionPipeline, data, args, accelerator) -> dict:
    """PSNR, SSIM and FID of the super-resolved held-out images and of their bicubic upsampling (`bicubic_*`)."""
    originals, outputs, bicubic = super_resolve_evaluation_images(pipeline, data, args, accelerator)
    extractor = data.evaluation.feature_extractor
    return {
        **paired_metrics(outputs, originals, extractor),
        **paired_metrics(bicubic, originals, extractor, "bicubic_"),
    }


def evaluate_cascade(cascade: CascadedDiffusionPipeline, data, args, accelerator) -> dict:
    """FID and its kin of the cascade's samples (`cascade_*`) and of the base's samples upsampled bicubically
    (`base_upsampled_*`), against the held-out images; empty without a feature extractor."""
    if data.evaluation.feature_extractor is None:
        return {}
    base = DDPMPipeline(unet=cascade.base_unet, scheduler=cascade.base_scheduler)
    base.set_progress_bar_config(disable=True)
    resolution = cascade.unet.config.sample_size

    def cascade_sample(batch_size, labels, generator):
        images = cascade(
            batch_size=batch_size,
            generator=generator,
            num_inference_steps=args.num_inference_steps,
            base_num_inference_steps=args.base_num_inference_steps,
            noise_level=args.cascade_noise_level,
            output_type="pt",
        ).images
        return images * 2 - 1

    def base_sample(batch_size, labels, generator):
        images = base(
            batch_size=batch_size,
            generator=generator,
            num_inference_steps=args.base_num_inference_steps,
            output_type="pt",
        ).images
        return upsample(images * 2 - 1, resolution)

    metrics = {}
    for name, sample in (("cascade", cascade_sample), ("base_upsampled", base_sample)):
        measured = evaluate_generator(
            sample, data.evaluation, data.eval, accelerator, args.num_eval_samples, args.seed
        )
        metrics.update({f"{name}_{key}": value for key, value in measured.items()})
    return metrics


def super_resolution_protocol(evaluation, args, cascade: bool) -> dict:
    """How train_super_resolution.py's numbers were measured, for metrics.json and the card."""
    protocol = {
        **run_protocol(evaluation, args.num_eval_samples),
        "super_resolution": f"{args.low_resolution} px to {args.resolution} px: each of the "
        f"{len(evaluation.evaluation)} evaluation images downsampled (bicubic, antialiased), super-resolved and "
        "compared with itself (PSNR / SSIM per image, averaged; FID of the set against the originals); bicubic_* "
        "upsample the same low-resolution images",
        "sampler": f"DDIM (eta 0), {args.num_inference_steps} steps, conditioning noise level "
        f"{args.sampling_noise_level}",
    }
    if cascade:
        protocol["cascade"] = (
            f"{args.num_eval_samples} samples of the base model (DDIM, {args.base_num_inference_steps} steps) "
            f"super-resolved at conditioning noise level {args.cascade_noise_level} (cascade_*), or upsampled "
            "bicubically (base_upsampled_*)"
        )
    return protocol


def evaluate_folder(folder: str, run: argparse.Namespace, accelerator) -> FolderEvaluation:
    """A SuperResolutionPipeline or CascadedDiffusionPipeline folder measured as train_super_resolution.py measures
    it at the end of its run, on `run`'s data."""
    saved = load_pipeline(folder).to(accelerator.device)
    cascade = isinstance(saved, CascadedDiffusionPipeline)
    config = saved.config
    super_resolution = sampling_pipeline(
        saved.unet, saved.scheduler, config.low_resolution, config.prediction_target, config.residual_scale
    )
    # the UNet's own image size and colours decide how the real images are read, as the run read them
    run.resolution = saved.unet.config.sample_size
    run.color_mode = "L" if saved.unet.config.out_channels == 1 else "RGB"
    run.low_resolution = run.low_resolution or saved.config.low_resolution or run.resolution // 2
    data = load_run_data(run, accelerator, logging.getLogger(__name__))
    metrics = evaluate_super_resolution(super_resolution, data, run, accelerator)
    if cascade:
        metrics.update(evaluate_cascade(cascade_pipeline(saved.stages()[0], super_resolution), data, run, accelerator))
    protocol = super_resolution_protocol(data.evaluation, run, cascade)
    task = "unconditional-image-generation" if cascade else "image-to-image"
    return FolderEvaluation(metrics, protocol, CARD_METRIC_NAMES, task)
