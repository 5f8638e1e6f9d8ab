"""Measuring a GAN generator as train_gan.py does, at the end of a run and on a saved folder (`hfgen evaluate`).

Samples drawn from z of the evaluation's seeded generator (labels balanced over the classes of a conditional
generator, those of the run's `--class_filter` only) against the held-out images: FID, KID, the Inception Score and
precision / recall with a feature extractor, the diversity ratio always, and the class accuracy of conditional
samples on the built-in digits (`hfgen.training.evaluation.evaluate_generator`).

A run's folder holds the pipeline; a LoRA run's (`--lora_rank`) holds the adapter alone, measured unmerged on the base
generator its `adapter_config.json` names, as the run measured it. The references of the run's `metrics.json` (real
training images, the training mean plus noise) do not depend on the model: a saved folder is measured without them.
"""

import argparse
import json
import logging

import torch

from ...models.gan import GANGenerator
from ...models.modeling_utils import folder_file
from ...training.adversarial import GAN_CARD_METRIC_NAMES
from ...training.evaluation import FolderEvaluation, evaluate_generator, load_run_data, run_protocol
from ..sampling import load_pipeline

# Sampling a GAN takes no settings of its own: a folder without its run's record is measured with hfgen evaluate's
# defaults.
EVALUATION_DEFAULTS = {}


def gan_sampler(generator_model):
    """`sample(batch_size, labels, generator)` for `evaluate_generator`: z drawn from the seeded generator, then one
    forward of `generator_model` (a `GANGenerator`, or a LoRA-adapted one), images in [-1, 1]."""

    def sample(batch_size, labels, torch_generator):
        z = torch.randn(batch_size, generator_model.config.latent_dim, generator=torch_generator)
        return generator_model(z.to(generator_model.device), labels=labels).sample

    return sample


def load_folder_generator(folder: str, generator_class: type, component: str):
    """The generator a GAN script's folder holds: the pipeline's `component`; for a LoRA run's folder (its adapter
    alone), the PEFT model of the adapter on the base generator that `adapter_config.json` names, unmerged (the run
    sampled it so); or a generator saved alone."""
    if folder_file(folder, "model_index.json") is not None:
        return getattr(load_pipeline(folder), component)
    adapter_config = folder_file(folder, "adapter_config.json")
    if adapter_config is None:  # the generator saved alone
        return generator_class.from_pretrained(folder)
    from peft import PeftModel

    with open(adapter_config, encoding="utf-8") as file:
        base = json.load(file).get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{folder}: adapter_config.json names no base_model_name_or_path to load the adapter onto")
    return PeftModel.from_pretrained(generator_class.from_pretrained(base), folder)


def measure_generator(sample, resolution: int, config, run: argparse.Namespace, accelerator) -> FolderEvaluation:
    """The metrics of `sample` (a generator of `resolution` px whose `config` gives its channels and classes) on
    `run`'s held-out images, read at the generator's own size and colours as the run read them, and their protocol,
    as both GAN scripts record them."""
    run.resolution, run.color_mode = resolution, "L" if config.num_channels == 1 else "RGB"
    data = load_run_data(run, accelerator, logging.getLogger(__name__))
    metrics = evaluate_generator(
        sample, data.evaluation, data.eval, accelerator, run.num_eval_samples, run.seed, config.num_classes
    )
    protocol = run_protocol(data.evaluation, run.num_eval_samples)
    return FolderEvaluation(metrics, protocol, GAN_CARD_METRIC_NAMES, "unconditional-image-generation")


def evaluate_folder(folder: str, run: argparse.Namespace, accelerator) -> FolderEvaluation:
    """The GAN folder (or its LoRA adapter on the base) measured as train_gan.py measures it, on `run`'s data."""
    generator_model = load_folder_generator(folder, GANGenerator, "gan").to(accelerator.device).eval()
    config = generator_model.config
    return measure_generator(gan_sampler(generator_model), config.image_size, config, run, accelerator)
