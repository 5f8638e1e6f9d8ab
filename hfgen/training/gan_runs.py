"""What train_gan.py and train_stylegan.py share around their (different) loops: the adversarial-training flags,
loading a generator / discriminator pair, checking it fits the data, augmentation set-up, and the Hub-ready folder
(pipeline, generator, optional discriminator, sample grid, arguments, metrics and the model card)."""

import argparse
import os

import torch
from diffusers.utils import make_image_grid

from ..model_card import card_metrics, render_model_card
from .augment import AdaptiveAugmentation
from .cli import check_flag_ranges
from .evaluation import DISTRIBUTION_METRIC_NAMES, RunEvaluation, run_protocol
from .redaction import recordable_arguments
from .runs import write_run_record

# Below this many training images, --augment auto turns ADA on: Karras et al. (2020, "Training generative adversarial
# networks with limited data") see discriminator overfitting well below 10k images; the built-in digits (1,437) train
# well without it, the built-in faces (80) collapse without it.
SMALL_DATASET_IMAGES = 1000

GAN_CARD_METRIC_NAMES = {
    **DISTRIBUTION_METRIC_NAMES,
    "class_accuracy": "class accuracy of conditional samples (digits classifier)",
}


def add_gan_arguments(parser: argparse.ArgumentParser, learning_rate: float, betas: tuple[float, float]) -> None:
    """Flags of both GAN scripts: conditioning, starting weights, LoRA, optimizers, EMA, augmentation, safety."""
    parser.add_argument(
        "--unconditional",
        action="store_true",
        help="Ignore the dataset's labels (by default a labelled dataset trains a conditional model).",
    )
    parser.add_argument(
        "--pretrained_model_name_or_path",
        type=str,
        default=None,
        help="A folder or Hub id written by this script: the generator, and its discriminator/ if kept.",
    )
    parser.add_argument("--model_config_name_or_path", type=str, default=None, help="A model config for a new model.")
    parser.add_argument(
        "--lora_rank",
        type=int,
        default=0,
        help="Fine-tune the pretrained generator with PEFT LoRA of this rank and save only the adapter.",
    )
    parser.add_argument("--generator_learning_rate", type=float, default=learning_rate)
    parser.add_argument("--discriminator_learning_rate", type=float, default=learning_rate)
    parser.add_argument("--adam_beta1", type=float, default=betas[0])
    parser.add_argument("--adam_beta2", type=float, default=betas[1])
    parser.add_argument("--r1_interval", type=int, default=16, help="Lazy regularisation: R1 every this many D steps.")
    parser.add_argument("--ema_decay", type=float, default=0.999, help="EMA of the generator's weights (0: off).")
    parser.add_argument(
        "--augment",
        type=str,
        default="auto",
        choices=["auto", "none", "diffaugment", "ada"],
        help="Differentiable augmentation of what D sees: fixed probability, or adapted (ADA); auto: "
        f"ADA below {SMALL_DATASET_IMAGES} training images, where D would otherwise memorise "
        "them and G collapse, none above.",
    )
    parser.add_argument("--augment_policy", type=str, default="color,translation,cutout")
    parser.add_argument(
        "--augment_probability",
        type=float,
        default=None,
        help="Start (ada) or fixed (diffaugment) probability; defaults to 0 for ada and 1 for diffaugment.",
    )
    parser.add_argument("--ada_target", type=float, default=0.6)
    parser.add_argument(
        "--loss_limit",
        type=float,
        default=1e5,
        help="A loss beyond this magnitude (or NaN) stops the run, keeping the last checkpoint.",
    )
    parser.add_argument(
        "--save_discriminator",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Keep the discriminator in the Hub folder (discriminator/), for later fine-tuning.",
    )


GAN_FLAG_RANGES = {
    "r1_interval": (1, None, "closed"),
    "r1_gamma": (0, None, "closed"),
    "lora_rank": (0, None, "closed"),
    "generator_learning_rate": (0, None, "open"),
    "discriminator_learning_rate": (0, None, "open"),
    "ema_decay": (0, 1, "high_open"),
    "augment_probability": (0, 1, "closed"),
    "ada_target": (0, 1, "open"),
    "loss_limit": (0, None, "open"),
}


def check_gan_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    check_flag_ranges(parser, args, GAN_FLAG_RANGES)
    if args.lora_rank and args.pretrained_model_name_or_path is None:
        parser.error("--lora_rank fine-tunes a trained generator: give --pretrained_model_name_or_path")


def load_pretrained_pair(generator_class, discriminator_class, path: str, logger):
    """A trained generator and, when its folder kept one in `discriminator/`, its discriminator (else a new one)."""
    generator = generator_class.from_pretrained(path)
    discriminator_dir = os.path.join(path, "discriminator")
    if os.path.isdir(discriminator_dir):
        return generator, discriminator_class.from_pretrained(discriminator_dir)
    logger.info("no discriminator/ next to the generator: starting a new discriminator")
    return generator, discriminator_class(generator.config)


def check_fits_data(
    args: argparse.Namespace, channels: int, resolution: int, num_classes: int, data_num_classes: int
) -> None:
    """Raise a clear error when a (pretrained or configured) model does not fit the data and flags."""
    data_channels = 1 if args.color_mode == "L" else 3
    problems = []
    if channels != data_channels:
        problems.append(f"it takes {channels}-channel images but --color_mode {args.color_mode} gives {data_channels}")
    if resolution != args.resolution:
        problems.append(f"it makes {resolution}px images but --resolution is {args.resolution}")
    if num_classes != data_num_classes:
        problems.append(
            f"it is conditional on {num_classes} classes (0: unconditional) but the data gives "
            f"{data_num_classes} (use --unconditional to ignore labels)"
        )
    if problems:
        raise ValueError("the model does not fit the data: " + "; ".join(problems))


def make_augmentation(args: argparse.Namespace, accelerator, num_train_images: int) -> AdaptiveAugmentation | None:
    """The run's augmentation (None for `--augment none`), registered so checkpoints keep its probability.

    Resolves `--augment auto` for the data (ADA on small datasets) and the default starting probability (0 for ADA,
    which raises it as D overfits; 1 for fixed DiffAugment), and records both in `args`.
    """
    if args.augment == "auto":
        args.augment = "ada" if num_train_images < SMALL_DATASET_IMAGES else "none"
    if args.augment_probability is None:
        args.augment_probability = 1.0 if args.augment == "diffaugment" else 0.0
    if args.augment == "none":
        return None
    augment = AdaptiveAugmentation(
        args.augment_policy, args.augment_probability, adaptive=args.augment == "ada", target=args.ada_target
    )
    accelerator.register_for_checkpointing(augment)
    return augment


def adapt_augmentation(augment: AdaptiveAugmentation | None, accelerator, sign_sum: torch.Tensor, count: int) -> None:
    """Feed ADA the sign statistic of D on real images, summed over all processes so p stays the same on each."""
    if augment is None:
        return
    totals = accelerator.reduce(
        torch.stack([sign_sum, torch.tensor(float(count), device=sign_sum.device)]), reduction="sum"
    )
    augment.accumulate(totals[0].item(), int(totals[1].item()))


def published(ema_generator, generator_model):
    """The generator that is validated and saved: the EMA copy when there is one."""
    return ema_generator if ema_generator is not None else generator_model


def save_gan_folder(
    output_dir: str,
    pipeline,
    generator,
    discriminator,
    args,
    metrics: dict,
    references: dict | None,
    run: dict,
    family: str,
    tags: list[str],
    sample_kwargs: dict,
    evaluation: RunEvaluation,
    save_pipeline: bool = True,
    grid_columns: int = 8,
) -> None:
    r"""
    Write what users load: the pipeline folder (`model_index.json` + component folder), the generator's
    `config.json` + `model.safetensors` at the top (for `from_pretrained(folder)` / `AutoModel`), the discriminator
    in `discriminator/` when given (for fine-tuning), `samples.png`, `training_args.json`, `metrics.json` (metrics,
    protocol, references, run facts) and the model card `README.md`.

    `sample_kwargs` go to the pipeline for the sample grid of 8 rows and `grid_columns` columns (e.g. class labels
    for `8 * grid_columns` images, truncation). A LoRA run passes
    its PEFT model as `generator` and `save_pipeline=False`: the folder then holds the adapter only
    (`adapter_model.safetensors` + `adapter_config.json`), with `pipeline` (a merged copy) drawing the samples.
    """
    pipeline.set_progress_bar_config(disable=True)
    if save_pipeline:
        pipeline.save_pretrained(output_dir)
    generator.save_pretrained(output_dir)
    if discriminator is not None:
        discriminator.save_pretrained(os.path.join(output_dir, "discriminator"))
    samples = pipeline(
        batch_size=8 * grid_columns, generator=torch.Generator(device="cpu").manual_seed(args.seed), **sample_kwargs
    ).images
    size = max(64, samples[0].width)  # small images are enlarged (nearest) so the card shows them legibly
    grid = make_image_grid(samples, rows=8, cols=grid_columns)
    grid.resize((grid_columns * size, 8 * size), 0).save(os.path.join(output_dir, "samples.png"))
    recorded = recordable_arguments(args)  # every value the card shows comes from the redacted record
    record = write_run_record(
        output_dir, args, metrics, references, run, run_protocol(evaluation, args.num_eval_samples)
    )
    dataset = evaluation.dataset
    card = render_model_card(
        family=family,
        model_name=recorded["hub_model_id"] or os.path.basename(os.path.abspath(recorded["output_dir"])),
        metrics=card_metrics(metrics, references, record["protocol"], GAN_CARD_METRIC_NAMES),
        pipeline_tag="unconditional-image-generation",
        datasets=[dataset] if not os.path.exists(dataset) else [],  # Hub ids only, not local paths
        tags=tags,
        template_values={
            "repo_id_or_path": recorded["hub_model_id"] or recorded["output_dir"],
            "protocol": record["protocol"],
            "references": references,
            "training_args": recorded,
            "samples_image": "samples.png",
            "base_model": recorded["pretrained_model_name_or_path"],
            "dataset": dataset,
            "global_step": run["step"],
            "config": pipeline.components[next(iter(pipeline.components))].config,
            "lora": not save_pipeline,
            "has_discriminator": discriminator is not None,
            "sample_kwargs": sample_kwargs,
        },
    )
    card.save(os.path.join(output_dir, "README.md"))
