"""Measuring a ProGAN generator as train_progan.py does, at the end of a run and on a saved folder (`hfgen evaluate`):
the fully grown generator, sampled and measured as a GAN generator is (`hfgen.pipelines.gan.evaluation`).

A run's folder holds the pipeline; a LoRA run's (`--lora_rank`) holds the adapter alone, measured unmerged on the base
generator its `adapter_config.json` names, as the run measured it.
"""

import argparse

from ...models.progan import ProGANGenerator
from ...training.evaluation import FolderEvaluation
from ..gan.evaluation import gan_sampler, load_folder_generator, measure_generator

# Sampling takes no settings of its own: a folder without its run's record is measured with hfgen evaluate's defaults.
EVALUATION_DEFAULTS = {}


def evaluate_folder(folder: str, run: argparse.Namespace, accelerator) -> FolderEvaluation:
    """The ProGAN folder (or its LoRA adapter on the base) measured as train_progan.py measures it, on `run`'s data."""
    generator_model = load_folder_generator(folder, ProGANGenerator, "gan").to(accelerator.device).eval()
    config = generator_model.config
    return measure_generator(gan_sampler(generator_model), config.resolution, config, run, accelerator)
