"""Measuring inpainting as train_inpainting.py does, at the end of a run and on a saved folder (`hfgen evaluate`).

The first `--num_eval_samples` held-out images each get a fixed mask (image `i`: a box for even `i`, strokes for odd
`i`, drawn from seed `--seed + i`; `hfgen.data.masks.evaluation_masks`) and the prompt of its class (the data's
caption column, or none); the masked region is repainted (DDIM, `--num_inference_steps`, `--guidance_scale`, noise
from seed `--seed + i`) and the input's pixels kept outside it. Measured:

- `fid`: FID of the inpainted images against the originals through the run's feature extractor: only the masked
  region differs, so it is the quality of the repainted regions in their context;
- `class_accuracy` (built-in digits): the digits classifier reads the inpainted digit as its true class;
- `unprompted_*`: the same with empty prompts, where only the context can keep the digit's class;
- `psnr_outside`: PSNR of the decoded latents against the original outside the mask, before the input's pixels are
  pasted back: how much of the context the model kept (its ceiling is the first stage's reconstruction).

The same for the baselines: `blending_*` (a plain latent diffusion model, the run's base, with latent blending:
`LatentBlendingInpaintPipeline`, same prompts, masks and noise) and `unfilled_*` (the masked input itself, its hole
left grey: what an inpainter must improve on).
"""

import argparse
import json
import logging
import os

import torch
from accelerate.utils import gather_object

from ...data.captions import LabelCaptions, dataset_captions
from ...data.masks import evaluation_masks
from ...metrics import GenerativeMetrics, load_digits_classifier, to_classifier_pixels
from ...training.evaluation import FolderEvaluation, evaluation_batches, load_run_data, run_protocol
from ..latent_diffusion.evaluation import GUIDANCE_SCALE, NUM_INFERENCE_STEPS
from ..sampling import load_pipeline
from .pipeline_latent_diffusion_inpaint import LatentBlendingInpaintPipeline, masked_images

# The settings of a folder measured without its run's record (train_inpainting.py's defaults).
EVALUATION_DEFAULTS = dict(
    caption_column=None,
    guidance_scale=GUIDANCE_SCALE,
    num_inference_steps=NUM_INFERENCE_STEPS,
    pretrained_model_name_or_path=None,
)

METRIC_NAMES = {
    "fid": "FID of the inpainted images",
    "class_accuracy": "class preservation (digits classifier reads the inpainted digit's class)",
    "psnr_outside": "PSNR outside the mask, before pasting back (dB)",
    "blending_fid": "FID, plain LDM with latent blending",
    "blending_class_accuracy": "class preservation, plain LDM with latent blending",
    "blending_psnr_outside": "PSNR outside the mask, plain LDM with latent blending (dB)",
    "unprompted_fid": "FID of the inpainted images, empty prompts",
    "unprompted_class_accuracy": "class preservation, empty prompts (the context alone tells the class)",
    "blending_unprompted_fid": "FID, plain LDM with latent blending, empty prompts",
    "blending_unprompted_class_accuracy": "class preservation, plain LDM with latent blending, empty prompts",
    "unfilled_fid": "FID of the masked inputs, unfilled",
    "unfilled_class_accuracy": "class preservation of the masked inputs, unfilled",
}


def evaluation_prompts(data, captions, args) -> list[str]:
    """The prompt of every evaluation image: its class's (`captions.prompt`), its caption, or none."""
    evaluation = data.evaluation.evaluation
    if isinstance(captions, LabelCaptions):
        return [captions.prompt(int(label)) for label in evaluation["label"]]
    if args.caption_column:
        return [str(text) for text in evaluation[args.caption_column]]
    return [""] * len(evaluation)


def evaluated_count(data, args) -> int:
    """How many held-out images are inpainted and measured: the first `--num_eval_samples` of them."""
    return min(args.num_eval_samples, len(data.eval))


def masked_psnr(outputs: torch.Tensor, originals: torch.Tensor, masks: torch.Tensor) -> float:
    """Mean over the images of the PSNR (dB, images in [-1, 1]) of the pixels outside each mask (mask 0)."""
    kept = (1 - masks).expand_as(originals)
    squared = ((outputs - originals) ** 2 * kept).flatten(1).sum(dim=1)
    mse = squared / kept.flatten(1).sum(dim=1).clamp_min(1)
    return (10 * torch.log10(4.0 / mse.clamp_min(1e-10))).mean().item()


@torch.no_grad()
def inpaint_evaluation_images(pipeline, data, prompts: list[str], args, accelerator, batch_size: int = 64):
    """`(originals, masks, decoded, labels)` of the first `--num_eval_samples` evaluation images, gathered on every
    process (`decoded`: the pipeline's output before the input's pixels are pasted back; `labels` None for unlabelled
    data). Image `i`'s noise comes from seed `--seed + i`, so the result does not depend on the number of
    processes."""
    with accelerator.split_between_processes(list(range(evaluated_count(data, args)))) as local_indices:
        local_eval = data.eval.select(local_indices)
        first = local_indices[0] if local_indices else 0
    originals, masks, decoded, labels = [], [], [], []
    offset = first
    for batch in evaluation_batches(local_eval, batch_size):
        images = batch["pixel_values"].to(accelerator.device)
        indices = list(range(offset, offset + len(images)))
        offset += len(images)
        mask = evaluation_masks(indices, images.shape[-1], args.seed).to(accelerator.device)
        texts = [prompts[index] for index in indices]
        output = pipeline(
            prompt=texts,
            image=images * 0.5 + 0.5,  # pipelines take images in [0, 1]
            mask_image=mask,
            guidance_scale=args.guidance_scale if any(texts) else 1.0,
            num_inference_steps=args.num_inference_steps,
            generator=[torch.Generator().manual_seed(args.seed + index) for index in indices],
            preserve_unmasked=False,
            output_type="pt",
        ).images
        originals.append(images.cpu())
        masks.append(mask.cpu())
        decoded.append((output * 2 - 1).cpu())
        if "labels" in batch:
            labels.append(batch["labels"].cpu())
    # Lists of batches are gathered, then joined: a process's share may be empty.
    gathered = [torch.cat(gather_object(parts)) for parts in (originals, masks, decoded)]
    joined_labels = gather_object(labels)
    return (*gathered, torch.cat(joined_labels) if joined_labels else None)


def inpainting_metrics(originals, masks, filled, evaluation, labels=None, decoded=None, prefix: str = "") -> dict:
    """FID of `filled` (the inpainted images, or the unfilled inputs) against `originals` when the run has a feature
    extractor, class accuracy when the digits classifier reads them, and PSNR outside the masks of `decoded`."""
    metrics = {}
    device = torch.device("cpu")
    if evaluation.feature_extractor is not None:
        device = next(evaluation.feature_extractor.parameters()).device
        # every process holds all the images (gathered), so no synchronisation is needed
        distribution = GenerativeMetrics(evaluation.feature_extractor, sync_on_compute=False).to(device)
        for start in range(0, len(originals), 128):
            distribution.update(originals[start : start + 128].to(device), real=True)
            distribution.update(filled[start : start + 128].to(device), real=False)
        metrics[f"{prefix}fid"] = distribution.compute()["fid"]
    if labels is not None and evaluation.reads_digit_classes:
        classifier = load_digits_classifier(device)
        pixel_values = to_classifier_pixels(filled.to(device), classifier.config.image_size)
        predicted = classifier(pixel_values).logits.argmax(dim=1).cpu()
        metrics[f"{prefix}class_accuracy"] = (predicted == labels).float().mean().item()
    if decoded is not None:
        metrics[f"{prefix}psnr_outside"] = masked_psnr(decoded, originals, masks)
    return metrics


def evaluate_inpainting(pipeline, data, captions, args, accelerator, baseline=None, unprompted=False) -> dict:
    """The metrics of `pipeline` (an inpainting pipeline), of the masked inputs unfilled (`unfilled_*`), and of
    `baseline` (a `LatentBlendingInpaintPipeline` of the plain model, `blending_*`) when given; with `unprompted`,
    also of both with empty prompts (`unprompted_*`, `blending_unprompted_*`): only the context tells the class."""
    prompts = evaluation_prompts(data, captions, args)
    runs = [("", pipeline, prompts), ("blending_", baseline, prompts)]
    if unprompted and any(prompts):
        empty = [""] * len(prompts)
        runs += [("unprompted_", pipeline, empty), ("blending_unprompted_", baseline, empty)]
    metrics = {}
    for prefix, inpainter, texts in runs:
        if inpainter is None:
            continue
        originals, masks, decoded, labels = inpaint_evaluation_images(inpainter, data, texts, args, accelerator)
        filled = originals * (1 - masks) + decoded * masks
        metrics.update(inpainting_metrics(originals, masks, filled, data.evaluation, labels, decoded, prefix))
    unfilled = masked_images(originals, masks)
    metrics.update(inpainting_metrics(originals, masks, unfilled, data.evaluation, labels, prefix="unfilled_"))
    return metrics


def inpainting_protocol(data, captions, args, baseline: str | None) -> dict:
    """How train_inpainting.py's numbers were measured, for metrics.json and the card."""
    protocol = {
        **run_protocol(data.evaluation, evaluated_count(data, args)),
        # the real images of the FID are the inpainted ones unmasked
        "num_real_samples": evaluated_count(data, args),
        "masks": f"one per evaluation image i, drawn from seed {args.seed} + i: a box (sides 30-70% of the image) for "
        "even i, free-form strokes (10-40% of the image) for odd i",
        "sampler": f"DDIM (eta 0), {args.num_inference_steps} steps, guidance scale {args.guidance_scale}, noise of "
        f"image i from seed {args.seed} + i; the input's pixels pasted back outside the mask",
        "fid": "inpainted images against the same images unmasked",
        "psnr_outside": "the decoded latents against the original outside the mask (before pasting back), [-1, 1] "
        "range, averaged over the images",
        "unfilled": "the masked input, its hole grey (0 in [-1, 1]), as the inpainting UNet sees it",
        "unprompted": "the same with empty prompts (guidance scale 1): the class must come from the context",
    }
    if isinstance(captions, LabelCaptions):
        protocol["prompts"] = f"'{captions.templates[0]}' with each image's own class"
    if baseline is not None:
        protocol["blending"] = (
            f"the plain latent diffusion model {baseline} with latent blending, same masks and noise"
        )
    return protocol


def plain_base(run: argparse.Namespace) -> str | None:
    """The plain latent diffusion folder the run started from, when its record names one that is still there."""
    base = getattr(run, "pretrained_model_name_or_path", None)
    if base is None or not os.path.isfile(os.path.join(base, "unet", "config.json")):
        return None
    with open(os.path.join(base, "unet", "config.json"), encoding="utf-8") as file:
        config = json.load(file)
    return base if config["in_channels"] == config["out_channels"] else None


def evaluate_folder(folder: str, run: argparse.Namespace, accelerator) -> FolderEvaluation:
    """An inpainting folder measured as train_inpainting.py measures it at the end of its run, on `run`'s data (with
    the latent blending baseline when the run's plain base model is still where its record says)."""
    pipeline = load_pipeline(folder).to(accelerator.device)
    pipeline.set_progress_bar_config(disable=True)
    # the pipeline's own image size and colours decide how the real images are read, as the run read them
    run.resolution = pipeline.image_size[0]
    run.color_mode = "L" if pipeline.vae.config.in_channels == 1 else "RGB"
    data = load_run_data(run, accelerator, logging.getLogger(__name__))
    captions = dataset_captions(data.evaluation.train, run.caption_column)
    base = plain_base(run)
    baseline = None
    if base is not None:
        baseline = LatentBlendingInpaintPipeline.from_pretrained(base).to(accelerator.device)
        # the sampler the run measured it with: the inpainting folder's own (DDIM on the base's training schedule)
        baseline.scheduler = type(pipeline.scheduler).from_config(pipeline.scheduler.config)
        baseline.set_progress_bar_config(disable=True)
    metrics = evaluate_inpainting(pipeline, data, captions, run, accelerator, baseline, unprompted=True)
    return FolderEvaluation(metrics, inpainting_protocol(data, captions, run, base), METRIC_NAMES, "image-to-image")
