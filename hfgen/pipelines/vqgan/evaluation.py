"""Measuring a VQ-GAN as train_vqgan.py does, during and at the end of a run and on a saved folder (`hfgen evaluate`).

Reconstructions of the held-out images (encoded, quantised, decoded): PSNR, SSIM, rFID (the FID of the
reconstructions against those same images, through the run's feature extractor when there is one for the data), and
how the codebook is used on those images: the perplexity of their codes and the share of codes none of them uses.
Then, with a prior, `--num_eval_samples` samples against the same images: FID and its kin and the diversity ratio.
"""

import argparse
import logging

import torch
from accelerate.utils import gather_object

from ...metrics import GenerativeMetrics, psnr, ssim
from ...models.vqgan.codebook import code_counts, codebook_perplexity, unused_code_share
from ...training.evaluation import (
    DISTRIBUTION_METRIC_NAMES,
    FolderEvaluation,
    evaluate_generator,
    evaluation_batches,
    load_run_data,
    run_protocol,
)
from .pipeline_vqgan import VQGANPipeline

# How the prior is sampled when a folder is measured without its run's record (the run records its own).
EVALUATION_DEFAULTS = {"sample_temperature": 1.0, "sample_top_k": None}

RECONSTRUCTION_METRIC_NAMES = {
    "psnr": "PSNR (reconstruction, dB)",
    "ssim": "SSIM (reconstruction)",
    "rfid": "rFID (reconstructions against the originals)",
    "codebook_perplexity": "codebook perplexity (codes of the evaluation images)",
    "unused_code_share": "share of codes unused by the evaluation images",
}
CARD_METRIC_NAMES = {**RECONSTRUCTION_METRIC_NAMES, **DISTRIBUTION_METRIC_NAMES}


@torch.no_grad()
def evaluate_reconstructions(pipeline: VQGANPipeline, evaluation, eval_dataset, accelerator) -> dict:
    """Reconstruction and codebook metrics of `pipeline.vqvae` on `eval_dataset` (the run's evaluation images with
    the training transform); every process works on its share and the results are gathered. `evaluation` (a
    `RunEvaluation`) gives the feature extractor of the rFID, which is left out without one."""
    vqvae = pipeline.vqvae.eval()
    device = accelerator.device
    with accelerator.split_between_processes(list(range(len(eval_dataset)))) as local_indices:
        local_eval = eval_dataset.select(local_indices)
    distribution = None
    if evaluation.feature_extractor is not None:
        distribution = GenerativeMetrics(evaluation.feature_extractor).to(device)
    originals, reconstructions, codes = [], [], []
    for batch in evaluation_batches(local_eval, 128):
        pixel_values = batch["pixel_values"].to(device=device, dtype=vqvae.dtype)
        quantized, batch_codes = pipeline.quantize(vqvae.encode(pixel_values).latents)
        decoded = vqvae.decode(quantized, force_not_quantize=True).sample.clamp(-1, 1)
        if distribution is not None:
            distribution.update(pixel_values, real=True)
            distribution.update(decoded, real=False)
        originals.append(pixel_values.cpu())
        reconstructions.append(decoded.cpu())
        codes.append(batch_codes.cpu())
    # Lists of batches are gathered, then joined: a process's share may be empty.
    originals = torch.cat(gather_object(originals)).float()
    reconstructions = torch.cat(gather_object(reconstructions)).float()
    counts = code_counts(torch.cat(gather_object(codes)), pipeline.num_codes)
    metrics = {
        "psnr": psnr(reconstructions, originals).item(),
        "ssim": ssim(reconstructions, originals).item(),
        "reconstruction_l1": torch.mean((reconstructions - originals).abs()).item(),
        "codebook_perplexity": codebook_perplexity(counts),
        "unused_code_share": unused_code_share(counts),
    }
    if distribution is not None:
        metrics["rfid"] = distribution.compute()["fid"]
    return metrics


def prior_sampler(pipeline: VQGANPipeline, temperature: float, top_k: int | None):
    """`sample(batch_size, labels, generator)` for `evaluate_generator`: codes drawn from the prior, decoded, in
    [-1, 1]."""

    def sample(batch_size, labels, generator):
        images = pipeline(
            batch_size=batch_size, generator=generator, temperature=temperature, top_k=top_k, output_type="pt"
        ).images
        return images * 2 - 1

    return sample


@torch.no_grad()
def evaluate_vqgan(pipeline: VQGANPipeline, data, args, accelerator) -> dict:
    """Every metric of a VQ-GAN run on its evaluation images: the reconstructions' and codebook's
    ([`evaluate_reconstructions`]), then, when the pipeline has a prior, those of its samples (FID and its kin,
    diversity) drawn with `args.sample_temperature` / `args.sample_top_k`."""
    pipeline.set_progress_bar_config(disable=True)
    metrics = evaluate_reconstructions(pipeline, data.evaluation, data.eval, accelerator)
    if pipeline.prior is not None:
        pipeline.prior.eval()
        sample = prior_sampler(pipeline, args.sample_temperature, args.sample_top_k)
        metrics.update(
            evaluate_generator(sample, data.evaluation, data.eval, accelerator, args.num_eval_samples, args.seed)
        )
    return metrics


def evaluate_folder(folder: str, run: argparse.Namespace, accelerator) -> FolderEvaluation:
    """The VQ-GAN folder (or a VQModel folder alone) measured as train_vqgan.py measures it, on `run`'s data."""
    from ...families import load_folder_pipeline

    pipeline = load_folder_pipeline(folder).to(accelerator.device)
    config = pipeline.vqvae.config
    # the model's own image size and colours decide how the real images are read, as the run read them
    run.resolution, run.color_mode = config.sample_size, "L" if config.in_channels == 1 else "RGB"
    data = load_run_data(run, accelerator, logging.getLogger(__name__))
    metrics = evaluate_vqgan(pipeline, data, run, accelerator)
    protocol = run_protocol(data.evaluation, run.num_eval_samples)
    return FolderEvaluation(metrics, protocol, CARD_METRIC_NAMES, "unconditional-image-generation")
