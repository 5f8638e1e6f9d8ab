"""Measuring a StackGAN pipeline as train_stackgan.py does, at the end of a run and on a saved folder (`hfgen
evaluate`).

Samples are prompted with the data's captions (written from class labels, classes balanced; or drawn from its caption
column; or empty for data with neither) and measured at both stages: stage II's images against the held-out images
(FID and its kin, the diversity ratio), stage I's against the same images brought to stage I's resolution as training
brought them (`fid_stage1`, ...), and on the built-in digits the prompt accuracy of each stage: the share of samples
hfgen's digits classifier reads as the class their prompt named, beside chance (1 / number of classes) in the protocol.
"""

import argparse
import logging

import torch
import torch.nn.functional as F

from ...data import image_transform
from ...data.captions import ColumnCaptions, LabelCaptions, dataset_captions
from ...training.evaluation import (
    DISTRIBUTION_METRIC_NAMES,
    FolderEvaluation,
    evaluate_generator,
    load_run_data,
    run_protocol,
)
from ..sampling import load_pipeline

# Sampling takes no settings of its own; a folder without its run's record is read with train_stackgan.py's default
# captions (from the class labels).
EVALUATION_DEFAULTS = dict(caption_column=None)

STACKGAN_METRIC_NAMES = {
    **DISTRIBUTION_METRIC_NAMES,
    "class_accuracy": "prompt accuracy (digits classifier reads the prompted class)",
    "fid_stage1": "FID of stage I (real images at stage I's resolution)",
    "class_accuracy_stage1": "prompt accuracy of stage I",
}


def stackgan_metric_names(protocol: dict) -> dict:
    """The card titles of a run's metrics: stage I's FID names its extractor too, which the card adds only to the
    plain names of FID and its kin."""
    names = dict(STACKGAN_METRIC_NAMES)
    if protocol.get("extractor"):
        names["fid_stage1"] = f"FID of stage I ({protocol['extractor']}; real images at stage I's resolution)"
    return names


def to_stage1(pixel_values: torch.Tensor, size: int) -> torch.Tensor:
    """Images brought to stage I's resolution (area averaging): the real images stage I's discriminator sees, and
    that stage I's samples are measured against."""
    return F.interpolate(pixel_values, size=(size, size), mode="area")


def stage1_evaluation_images(evaluation_split, args: argparse.Namespace, stage1_resolution: int):
    """The evaluation images read at `--resolution`, as the run reads them, then brought to stage I's resolution."""
    transform = image_transform(args.resolution, args.color_mode)

    def at_stage1(examples):
        read = transform(examples)
        read["pixel_values"] = [to_stage1(image[None], stage1_resolution)[0] for image in read["pixel_values"]]
        return read

    return evaluation_split.with_transform(at_stage1)


def prompt_sampler(pipeline, captions, stage: int):
    """`sample(batch_size, labels, generator)` for `evaluate_generator`: prompts of the labels (class captions), or
    captions of the data drawn from the generator, or empty prompts; images of `stage` in [-1, 1]."""

    def sample(batch_size, labels, generator):
        if labels is not None:
            prompts = [captions.prompt(int(label)) for label in labels]
        elif isinstance(captions, ColumnCaptions):
            picks = torch.randint(0, len(captions.texts), (batch_size,), generator=generator).tolist()
            prompts = [captions.texts[pick] for pick in picks]
        else:
            prompts = [""] * batch_size
        images = pipeline(prompt=prompts, generator=generator, stage=stage, output_type="pt").images
        return images * 2 - 1

    return sample


@torch.no_grad()
def measure_stackgan(pipeline, captions, data, args: argparse.Namespace, accelerator, stages=(1, 2)) -> dict:
    """Metrics of `pipeline`'s samples at each of `stages`: stage II's under their plain names, stage I's with the
    suffix `_stage1`."""
    pipeline.set_progress_bar_config(disable=True)
    num_classes = len(captions.phrases) if isinstance(captions, LabelCaptions) else 0
    stage1_resolution = pipeline.gan.config.stage1_resolution
    metrics = {}
    for stage in stages:
        reals = data.eval
        if stage == 1:
            reals = stage1_evaluation_images(data.evaluation.evaluation, args, stage1_resolution)
        measured = evaluate_generator(
            prompt_sampler(pipeline, captions, stage),
            data.evaluation,
            reals,
            accelerator,
            args.num_eval_samples,
            args.seed,
            num_classes=num_classes,
        )
        suffix = "_stage1" if stage == 1 else ""
        metrics.update({f"{name}{suffix}": value for name, value in measured.items()})
    return metrics


def stackgan_protocol(data, captions, args: argparse.Namespace, stage1_resolution: int) -> dict:
    """How the numbers were measured, for metrics.json and the card."""
    protocol = {
        **run_protocol(data.evaluation, args.num_eval_samples),
        "stage1_real_images": f"the evaluation images area-averaged to {stage1_resolution} px (stage I's resolution)",
    }
    if isinstance(captions, LabelCaptions):
        count = len(data.evaluation.classes or captions.phrases)
        protocol["prompts"] = f"'{captions.templates[0]}' with the class names, classes balanced"
        if data.evaluation.reads_digit_classes:
            protocol["prompt_accuracy_chance"] = f"{1 / count:.4g} (1 of {count} classes)"
    elif isinstance(captions, ColumnCaptions):
        protocol["prompts"] = "captions of the training data, drawn at random"
    else:
        protocol["prompts"] = "empty (the data has neither labels nor a caption column)"
    return protocol


def evaluate_folder(folder: str, run: argparse.Namespace, accelerator) -> FolderEvaluation:
    """The StackGAN pipeline folder measured as train_stackgan.py measures it, on `run`'s data."""
    pipeline = load_pipeline(folder).to(accelerator.device)
    config = pipeline.gan.config
    # the real images are read at the generator's own size and colours, as the run read them
    run.resolution, run.color_mode = config.resolution, "L" if config.num_channels == 1 else "RGB"
    data = load_run_data(run, accelerator, logging.getLogger(__name__))
    captions = dataset_captions(data.evaluation.train, run.caption_column)
    metrics = measure_stackgan(pipeline, captions, data, run, accelerator)
    protocol = stackgan_protocol(data, captions, run, config.stage1_resolution)
    return FolderEvaluation(metrics, protocol, stackgan_metric_names(protocol), "text-to-image")
