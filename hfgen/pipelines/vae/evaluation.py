"""Measuring a VAE as train_vae.py does, at the end of a run and on a saved folder (`hfgen evaluate`).

Reconstruction quality on the held-out images, each encoded to its posterior mean and decoded: PSNR, SSIM, the mean
squared error and the KL term of the posterior per image. Then `--num_eval_samples` samples of the prior, decoded,
against the same images: FID and its kin through the run's feature extractor (when there is one for the data) and
the diversity ratio.
"""

import argparse
import logging

import torch
from accelerate.utils import gather_object

from ...metrics import psnr, ssim
from ...training.evaluation import (
    DISTRIBUTION_METRIC_NAMES,
    FolderEvaluation,
    evaluate_generator,
    evaluation_batches,
    load_run_data,
    run_protocol,
)
from ..sampling import load_pipeline
from .pipeline_vae import VAEPipeline

# train_vae.py measures with the flags every run has (data, split, seed, sample count, extractor): none of its own.
EVALUATION_DEFAULTS = {}

CARD_METRIC_NAMES = {"psnr": "PSNR (reconstruction, dB)", "ssim": "SSIM (reconstruction)", **DISTRIBUTION_METRIC_NAMES}


@torch.no_grad()
def evaluate_vae(vae, data, args, accelerator) -> dict:
    """Metrics of `vae` (unwrapped, in eval mode afterwards) on the run's evaluation images; every process works on
    its share and the results are gathered.

    Reconstruction quality (PSNR, SSIM, the loss terms) uses the posterior mean of each evaluation image. Distribution
    metrics compare `--num_eval_samples` prior samples with the evaluation images through the run's feature extractor
    (when there is one for this data), and the diversity ratio tells how varied the samples are.
    """
    vae.eval()
    with accelerator.split_between_processes(list(range(len(data.eval)))) as local_indices:
        local_eval = data.eval.select(local_indices)
    originals, reconstructions, kl_terms = [], [], []
    for batch in evaluation_batches(local_eval, 128):
        pixel_values = batch["pixel_values"].to(accelerator.device)
        output = vae(pixel_values, sample_posterior=False)
        originals.append(pixel_values)
        reconstructions.append(output.sample.clamp(-1, 1))
        kl_terms.append(output.latent_dist.kl())
    # Lists of batches are gathered, then joined: a process's share may be empty.
    originals = torch.cat(gather_object([batch.cpu() for batch in originals]))
    reconstructions = torch.cat(gather_object([batch.cpu() for batch in reconstructions]))
    kl_terms = torch.cat(gather_object([batch.cpu() for batch in kl_terms]))
    metrics = {
        "psnr": psnr(reconstructions, originals).item(),
        "ssim": ssim(reconstructions, originals).item(),
        "reconstruction_mse": torch.mean((reconstructions - originals) ** 2).item(),
        "kl_per_image": kl_terms.mean().item(),
    }
    pipeline = VAEPipeline(vae=vae)
    pipeline.set_progress_bar_config(disable=True)

    def sample(batch_size, labels, generator):
        return pipeline(batch_size=batch_size, generator=generator, output_type="pt").images * 2 - 1

    metrics.update(
        evaluate_generator(sample, data.evaluation, data.eval, accelerator, args.num_eval_samples, args.seed)
    )
    return metrics


def evaluate_folder(folder: str, run: argparse.Namespace, accelerator) -> FolderEvaluation:
    """The VAEPipeline folder measured as train_vae.py measures it at the end of its run, on `run`'s data."""
    vae = load_pipeline(folder).vae.to(accelerator.device)
    # the model's own image size and colours decide how the real images are read, as the run read them
    run.resolution, run.color_mode = vae.config.sample_size, "L" if vae.config.in_channels == 1 else "RGB"
    data = load_run_data(run, accelerator, logging.getLogger(__name__))
    metrics = evaluate_vae(vae, data, run, accelerator)
    protocol = run_protocol(data.evaluation, run.num_eval_samples)
    return FolderEvaluation(metrics, protocol, CARD_METRIC_NAMES, "unconditional-image-generation")
