"""Measuring a StyleGAN generator as train_stylegan.py does, at the end of a run and on a saved folder
(`hfgen evaluate`).

Samples drawn from z and random per-pixel noise of the evaluation's seeded generator (labels balanced over the classes
of a conditional generator, those of the run's `--class_filter` only) against the held-out images: FID, KID, the
Inception Score and precision / recall with a feature extractor, the diversity ratio always, and the class accuracy of
conditional samples on the built-in digits (`hfgen.training.evaluation.evaluate_generator`).

A run's folder holds the pipeline; a LoRA run's (`--lora_rank`) holds the adapter alone, measured unmerged on the base
generator its `adapter_config.json` names, as the run measured it. The references of the run's `metrics.json` (real
training images, the training mean plus noise) do not depend on the model: a saved folder is measured without them.
"""

import argparse

import torch

from ...models.stylegan import StyleGANGenerator
from ...training.evaluation import FolderEvaluation
from ..gan.evaluation import load_folder_generator, measure_generator

# Sampling takes no settings of its own (the metrics' noise is random, without truncation): a folder without its
# run's record is measured with hfgen evaluate's defaults.
EVALUATION_DEFAULTS = {}


def without_peft_wrapper(generator_model):
    """A `StyleGANGenerator` for pipelines: for a LoRA-adapted generator, its base model, whose adapter layers stay
    attached (unmerged; a merged copy gives the same images)."""
    return generator_model.get_base_model() if hasattr(generator_model, "get_base_model") else generator_model


def stylegan_sampler(generator_model):
    """`sample(batch_size, labels, generator)` for `evaluate_generator`: z and random per-pixel noise from the seeded
    generator, as NVIDIA's metrics sample (constant noise would take the stochastic variation out of the samples and
    understate their variety), through `generator_model` (a `StyleGANGenerator`, or a LoRA-adapted one); images in
    [-1, 1]."""
    base = without_peft_wrapper(generator_model)

    def sample(batch_size, labels, torch_generator):
        z = torch.randn(batch_size, base.config.latent_dim, generator=torch_generator).to(base.device)
        return base(z, labels=labels, noise_mode="random", generator=torch_generator).sample

    return sample


def evaluate_folder(folder: str, run: argparse.Namespace, accelerator) -> FolderEvaluation:
    """The StyleGAN folder (or its LoRA adapter on the base) measured as train_stylegan.py measures it, on `run`'s
    data."""
    generator_model = load_folder_generator(folder, StyleGANGenerator, "stylegan").to(accelerator.device).eval()
    config = without_peft_wrapper(generator_model).config
    return measure_generator(stylegan_sampler(generator_model), config.resolution, config, run, accelerator)
