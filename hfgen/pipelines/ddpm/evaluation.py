"""Measuring a pixel-space diffusion model as train_ddpm.py does, at the end of a run and on a saved folder
(`hfgen evaluate`): a DDPMPipeline folder, and the ScoreSdePipeline folder of `--objective score_ve` (whose family
module, `hfgen.pipelines.score_sde.evaluation`, measures it with the code here).

`--num_eval_samples` samples of the folder's UNet (the run's averaged weights, which is what the folder holds) against
the held-out images: FID and its kin through the run's feature extractor (when there is one for the data) and the
diversity ratio. A DDPM is sampled with DDIM (eta 0) on the training schedule, a score network with the
predictor-corrector sampler on its noise ladder, in the run's `--num_inference_steps` steps.
"""

import argparse
import logging

from diffusers import DDIMScheduler, ScoreSdeVeScheduler

from ...training.evaluation import (
    DISTRIBUTION_METRIC_NAMES,
    FolderEvaluation,
    evaluate_generator,
    load_run_data,
    run_protocol,
)
from ..denoising import unet_sample_shape
from ..sampling import load_pipeline
from ..score_sde.pipeline_score_sde import ScoreSdePipeline
from .pipeline_ddpm import DDPMPipeline

# DDIM's steps in validation and the metrics unless --num_inference_steps says otherwise: it gets close to the full
# DDPM chain in 50 (benchmarks/bench_diffusion.py).
DDIM_SAMPLING_STEPS = 50

# The settings of a DDPM folder measured without its run's record (train_ddpm.py's defaults).
EVALUATION_DEFAULTS = dict(num_inference_steps=DDIM_SAMPLING_STEPS)

CARD_METRIC_NAMES = dict(DISTRIBUTION_METRIC_NAMES)


def sampling_pipeline(unet, noise_scheduler):
    """The pipeline validation and the metrics sample with: predictor-corrector on a score network's noise ladder
    (a `ScoreSdeVeScheduler`), otherwise DDIM from the training scheduler's config (the same noise schedule and
    prediction type)."""
    if isinstance(noise_scheduler, ScoreSdeVeScheduler):
        pipeline = ScoreSdePipeline(unet=unet, scheduler=noise_scheduler)
    else:
        pipeline = DDPMPipeline(unet=unet, scheduler=DDIMScheduler.from_config(noise_scheduler.config))
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def diffusion_sampler(pipeline, num_inference_steps: int):
    """`sample(batch_size, labels, generator)` of `hfgen.training.evaluation.evaluate_generator`: images in [-1, 1]
    drawn in `num_inference_steps` steps, every draw from the generator."""

    def sample(batch_size, labels, generator):
        images = pipeline(
            batch_size=batch_size, generator=generator, num_inference_steps=num_inference_steps, output_type="pt"
        ).images
        return images * 2 - 1

    return sample


def sampler_description(pipeline, num_inference_steps: int) -> str:
    """The sampler of `sampling_pipeline`, for the protocol; the corrector's settings are the scheduler's own."""
    if isinstance(pipeline, ScoreSdePipeline):
        config = pipeline.scheduler.config
        steps = "step" if config.correct_steps == 1 else "steps"
        return (
            f"predictor-corrector (reverse diffusion + {config.correct_steps} Langevin {steps}, snr {config.snr}), "
            f"{num_inference_steps} noise levels"
        )
    return f"DDIM (eta 0), {num_inference_steps} steps"


def diffusion_protocol(evaluation, pipeline, args) -> dict:
    """How train_ddpm.py's numbers were measured (`evaluation`: the run's `RunEvaluation`), for metrics.json and the
    card."""
    return {
        **run_protocol(evaluation, args.num_eval_samples),
        "sampler": sampler_description(pipeline, args.num_inference_steps),
    }


def evaluate_folder(folder: str, run: argparse.Namespace, accelerator) -> FolderEvaluation:
    """The DDPMPipeline or ScoreSdePipeline folder measured as train_ddpm.py measures it at the end of its run, on
    `run`'s data."""
    saved = load_pipeline(folder)
    pipeline = sampling_pipeline(saved.unet, saved.scheduler).to(accelerator.device)
    # the UNet's own image size and colours decide how the real images are read, as the run read them
    channels, resolution, _ = unet_sample_shape(pipeline.unet)
    run.resolution, run.color_mode = resolution, "L" if channels == 1 else "RGB"
    data = load_run_data(run, accelerator, logging.getLogger(__name__))
    sample = diffusion_sampler(pipeline, run.num_inference_steps)
    metrics = evaluate_generator(sample, data.evaluation, data.eval, accelerator, run.num_eval_samples, run.seed)
    protocol = diffusion_protocol(data.evaluation, pipeline, run)
    return FolderEvaluation(metrics, protocol, CARD_METRIC_NAMES, "unconditional-image-generation")
