"""Measuring a CycleGAN or pix2pix folder as train_cyclegan.py and train_pix2pix.py do, at the end of a run and on a
saved folder (`hfgen evaluate`).

The held-out images of each domain are translated by the generators in eval mode (dropout off, batch norm's running
statistics) and measured by `hfgen.training.translation.evaluate_translations`: PSNR and SSIM against the true
counterparts when the held-out images are paired (pix2pix always, CycleGAN on the built-in pairs), the cycle
reconstruction PSNR of A -> B -> A and B -> A -> B for CycleGAN, FID / KID against the real images of the target
domain with a feature extractor, and class preservation on the digit pair. The identity mapping (and the digits
classifier on the real held-out digits) is measured beside them, the baselines a translation must beat.

A folder is measured on its run's data and held-out split (`training_args.json`), or on a dataset named by
`--dataset_name`: a built-in pair, or a `datasets` name whose rows hold one image of each domain (in the run's
`--image_a_column` / `--image_b_column`). Two image folders of one's own (`--domain_a` / `--domain_b`) are measured
as the run recorded them.
"""

import argparse
import logging

from ...training.evaluation import FolderEvaluation
from ...training.translation import (
    TRANSLATION_CARD_METRIC_NAMES,
    add_translation_data_arguments,
    evaluate_translations,
    load_translation_data,
    translation_references,
)
from ..sampling import load_pipeline
from .pipeline_cyclegan import Pix2PixPipeline


def cyclegan_translators(generator_ab, generator_ba) -> dict:
    """A CycleGAN's translations both ways: functions from a batch of one domain in [-1, 1] to its translation."""
    return {
        "a_to_b": lambda images: generator_ab(images).sample,
        "b_to_a": lambda images: generator_ba(images).sample,
    }


def pix2pix_translators(generator) -> dict:
    """A pix2pix generator's translation of condition images (A) to targets (B), as [`cyclegan_translators`]."""
    return {"a_to_b": lambda images: generator(images).sample}


def script_data_defaults() -> dict:
    """The defaults of the data flags both translation scripts record (beyond those every run records)."""
    parser = argparse.ArgumentParser()
    add_translation_data_arguments(parser, paired=False)
    flags = ("domain_a", "domain_b", "image_a_column", "image_b_column", "resolution")
    return {flag: parser.get_default(flag) for flag in flags}


# The settings of a folder measured without its run's record (the scripts' defaults).
EVALUATION_DEFAULTS = script_data_defaults()


def check_run_data(run: argparse.Namespace) -> None:
    """The data `run` names, as `load_translation_data` takes it: a dataset given on the command line replaces the
    run's two domain folders; a single image folder is a one-line error (a translation needs two domains)."""
    if run.train_data_dir is not None:
        raise ValueError(
            f"--train_data_dir {run.train_data_dir}: a translation is measured on two domains; give --dataset_name "
            "(a built-in pair, or a dataset with an image of each domain per row), or no data flag for the run's own"
        )
    # The scripts refuse --dataset_name beside --domain_a / --domain_b, so a record never holds both: the dataset
    # came from the command line and replaces the run's folders.
    if run.dataset_name is not None and run.domain_a is not None:
        run.domain_a = run.domain_b = None


def evaluate_folder(folder: str, run: argparse.Namespace, accelerator) -> FolderEvaluation:
    """The CycleGAN or pix2pix folder measured as its training script measures it, on `run`'s data."""
    check_run_data(run)
    # from_pretrained leaves the generators in eval mode, as the scripts measure them
    pipeline = load_pipeline(folder).to(accelerator.device)
    if isinstance(pipeline, Pix2PixPipeline):
        generator, translators, paired = pipeline.generator, pix2pix_translators(pipeline.generator), True
    else:  # the package's other pipeline, CycleGANPipeline
        generator, paired = pipeline.generator_ab, False
        translators = cyclegan_translators(pipeline.generator_ab, pipeline.generator_ba)
    # both domains are read in the generator's colours
    run.color_mode = "L" if generator.config.in_channels == 1 else "RGB"
    data = load_translation_data(run, accelerator, paired, logging.getLogger(__name__))
    metrics = evaluate_translations(translators, data, accelerator, seed=run.seed)
    baselines = translation_references(data, tuple(translators))
    return FolderEvaluation(metrics, data.protocol, TRANSLATION_CARD_METRIC_NAMES, "image-to-image", baselines)
