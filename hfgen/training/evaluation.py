"""Measuring a model inside an accelerate run, on whatever data the run trains on.

`prepare_evaluation` decides once per run what the metrics are measured on (the dataset's own validation / test
split, or a held-out part of the user's images) and with what (hfgen's digits classifier for the built-in digits,
`--metrics_model` for anything else, or nothing, said in one line). `evaluate_generator` then measures a generator
against those images, `measure_references` what real data and a trivial baseline read the same way, and
`run_protocol` describes it all for `metrics.json` and the model card. Every process works on its share of the
samples; the results are gathered, so every process returns the numbers of the whole set.

`load_run_data` is the first step of every image script (data, evaluation split, transforms), and
`validate_generator` what a generator's script does at every `--validation_steps` and at the end (a sample grid and
the metrics, logged).
"""

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
from accelerate.utils import gather_object
from datasets import DatasetDict

from ..data import (
    collate_images,
    decoded_if_small,
    filter_classes,
    image_transform,
    images_as_tensor,
    load_image_dataset,
    split_for_evaluation,
)
from ..metrics import (
    DigitsFeatureExtractor,
    GenerativeMetrics,
    load_digits_classifier,
    metric_protocol,
    reference_metrics,
    resolve_feature_extractor,
    sample_diversity_ratio,
    to_classifier_pixels,
)

# Titles of the distribution metrics on model cards; the protocol beside them names the data, split and extractor.
DISTRIBUTION_METRIC_NAMES = {
    "fid": "FID",
    "kid_mean": "KID",
    "inception_score_mean": "Inception Score",
    "precision": "precision (k=3)",
    "recall": "recall (k=3)",
    "diversity_ratio": "sample diversity ratio (1: as varied as the data, 0: collapse)",
}

# Training images the references draw from at most: bounds memory on large datasets.
MAX_REFERENCE_TRAIN_IMAGES = 5000


@dataclass
class FolderEvaluation:
    """What a family measured on a saved folder (`hfgen evaluate`): the metrics, how they were measured (`protocol`:
    data, split, ...), the card titles of those that go into the model-index (`metric_names`), the card's task, and,
    when the family measures them, what chance or trivial baselines score on the same protocol."""

    metrics: dict
    protocol: dict
    metric_names: dict
    task: str
    baselines: dict | None = None


@dataclass
class RunEvaluation:
    r"""
    What a run measures its metrics on and with.

    Attributes:
        dataset (`str`): the data's name as the user gave it (`--train_data_dir` or `--dataset_name`).
        split (`str`): which images were evaluated, e.g. `"test"` or `"train[held-out 10 of 100 images, seed 0]"`.
        train, evaluation (`datasets.Dataset`): the training images and the evaluated ones, untransformed.
        feature_extractor (`torch.nn.Module` or `None`): the extractor of FID / KID / precision / recall; None when
            there is none for this data (then `note` says so and only the other metrics are measured).
        note (`str`): one line on which extractor is used, or why there is none.
        metrics_model (`str` or `None`): `--metrics_model`, the backbone's name or folder.
        classes (`list[int]` or `None`): `--class_filter`: the only labels trained, and so the only ones sampled for
            the metrics (the evaluation images are filtered the same way); None for all.
    """

    dataset: str
    split: str
    train: object
    evaluation: object
    feature_extractor: torch.nn.Module | None
    note: str
    metrics_model: str | None = None
    classes: list[int] | None = None

    @property
    def reads_digit_classes(self) -> bool:
        """Class accuracy needs hfgen's digits classifier to read the samples: only on the built-in digits."""
        return isinstance(self.feature_extractor, DigitsFeatureExtractor)


def add_evaluation_arguments(parser: argparse.ArgumentParser) -> None:
    from ..data import parse_validation_split

    parser.add_argument(
        "--validation_split",
        type=parse_validation_split,
        default=None,
        help="Images of the training data held out for the metrics: a fraction (0.1) or a count (50). "
        "By default the dataset's own validation / test split, else 10%% of the images (at "
        "least 4), fixed by --seed and stratified by label.",
    )
    parser.add_argument(
        "--metrics_model",
        type=str,
        default=None,
        help="A transformers vision backbone (folder or Hub id) whose features give FID / KID / "
        "precision / recall on your data; facebook/dinov2-small is recommended (FD-DINOv2). "
        "The built-in digits use hfgen's digits classifier.",
    )


# Fewest real images the distribution metrics can use: precision / recall need more than k = 3 neighbours.
MIN_EVALUATION_IMAGES = 4


def prepare_evaluation(
    args: argparse.Namespace, dataset: DatasetDict, accelerator, measures_distributions: bool = True
) -> RunEvaluation:
    """Split off the evaluation images and pick the feature extractor for this run's data (none for a model that is
    not a generator: `measures_distributions=False`); a split too small for the metrics (or for every process to get a
    share) is a one-line error before training, not a crash after it."""
    splits = split_for_evaluation(dataset, args.validation_split, seed=args.seed)
    needed = max(MIN_EVALUATION_IMAGES, accelerator.num_processes)
    if len(splits.evaluation) < needed:
        raise ValueError(
            f"the evaluation split ({splits.name}) holds {len(splits.evaluation)} images; the metrics of "
            f"{accelerator.num_processes} process(es) need at least {needed}: raise --validation_split or add images"
        )
    if measures_distributions and args.num_eval_samples < accelerator.num_processes:
        raise ValueError(
            f"--num_eval_samples {args.num_eval_samples} leaves some of the {accelerator.num_processes} processes "
            "without samples to measure: raise it"
        )
    if measures_distributions:
        extractor, note = resolve_feature_extractor(
            args.metrics_model, args.dataset_name, args.train_data_dir, accelerator.device
        )
    else:
        extractor, note = None, "no distribution metrics (FID and its kin measure generators)"
    return RunEvaluation(
        dataset=args.train_data_dir or args.dataset_name,
        split=splits.name,
        train=splits.train,
        evaluation=splits.evaluation,
        feature_extractor=extractor,
        note=note,
        metrics_model=args.metrics_model,
        classes=getattr(args, "class_filter", None),
    )


def run_protocol(evaluation: RunEvaluation, num_samples: int) -> dict:
    """How the run's numbers were measured: data, split, extractor, sample counts (for metrics.json and the card)."""
    space = "in pixels" if evaluation.feature_extractor is None else "in the feature extractor's features"
    diversity = f"mean pairwise Euclidean distance of the samples over that of the evaluation images, {space}"
    if evaluation.feature_extractor is None:
        return {
            "dataset": evaluation.dataset,
            "split": evaluation.split,
            "num_real_samples": len(evaluation.evaluation),
            "num_fake_samples": num_samples,
            "distribution_metrics": evaluation.note,
            "diversity_ratio": diversity,
        }
    protocol = metric_protocol(
        num_samples,
        len(evaluation.evaluation),
        GenerativeMetrics(evaluation.feature_extractor),
        dataset=evaluation.dataset,
        split=evaluation.split,
    )
    extractor = "digits classifier" if evaluation.reads_digit_classes else evaluation.metrics_model
    return {**protocol, "extractor": extractor, "diversity_ratio": diversity}


def measure_references(evaluation: RunEvaluation, args: argparse.Namespace) -> dict | None:
    """Real training images against the evaluation images, and the training mean plus noise, read with the run's
    extractor and sample count; None without an extractor. Main process only (a few seconds on a CPU)."""
    num_train = min(len(evaluation.train), MAX_REFERENCE_TRAIN_IMAGES)
    if evaluation.feature_extractor is None or num_train < MIN_EVALUATION_IMAGES:
        return None
    train_images = images_as_tensor(
        evaluation.train, args.resolution, args.color_mode, num_images=num_train, seed=args.seed
    )
    eval_images = images_as_tensor(evaluation.evaluation, args.resolution, args.color_mode)
    device = next(evaluation.feature_extractor.parameters()).device
    # A reference drawn from fewer training images than the model's samples reads worse for that alone (FID and KID
    # depend on the sample count): each entry records its count.
    num_samples = min(args.num_eval_samples, num_train)
    references = reference_metrics(
        train_images.to(device), eval_images.to(device), evaluation.feature_extractor, num_samples=num_samples, seed=0
    )
    return {name: {**values, "num_fake_samples": num_samples} for name, values in references.items()}


def evaluation_batches(dataset, batch_size: int):
    """`pixel_values` (and `labels` when the dataset has them) of `dataset` in order, `batch_size` at a time."""
    for start in range(0, len(dataset), batch_size):
        yield collate_images([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])


def balanced_labels(count: int, num_classes: int, offset: int = 0, classes: list[int] | None = None) -> torch.Tensor:
    """Labels 0, 1, ..., num_classes - 1, 0, 1, ... (starting at `offset`): every class equally often; only those of
    `classes` when given (a run trained on some classes is measured on them)."""
    pool = torch.tensor(sorted(classes)) if classes else torch.arange(num_classes)
    return pool[(torch.arange(count) + offset) % len(pool)]


@torch.no_grad()
def evaluate_generator(
    sample: Callable[[int, torch.Tensor | None, torch.Generator], torch.Tensor],
    evaluation: RunEvaluation,
    eval_dataset,
    accelerator,
    num_samples: int,
    seed: int,
    num_classes: int = 0,
    batch_size: int = 128,
) -> dict[str, float]:
    r"""
    Metrics of a generator against the run's evaluation images.

    Args:
        sample (`Callable`):
            `sample(batch_size, labels, generator)` returns images `(batch, channels, height, width)` in [-1, 1];
            `labels` is None for an unconditional generator.
        evaluation (`RunEvaluation`):
            From [`prepare_evaluation`]: the extractor (or None) and whether class accuracy can be read.
        eval_dataset (`datasets.Dataset`):
            `evaluation.evaluation` with the training transform applied.
        num_samples (`int`):
            Generated images in all (split across processes).
        seed (`int`):
            Seeds each process's `torch.Generator`, so the same run draws the same samples.
        num_classes (`int`):
            0 for unconditional; otherwise labels are balanced over the classes (those of `evaluation.classes`).

    Returns:
        `dict` with `diversity_ratio` (mean pairwise distance of the samples over that of the evaluation images: 1
        is as varied as the data, 0 is mode collapse; in the extractor's feature space, else in pixels); with an
        extractor `fid`, `kid_mean`, `kid_std`, `precision`, `recall` (and `inception_score_mean` / `_std` when it
        gives class logits); and `class_accuracy` for conditional models on the built-in digits.
    """
    device = accelerator.device
    extractor = evaluation.feature_extractor
    with accelerator.split_between_processes(list(range(num_samples))) as local_indices:
        local_start, local_count = (local_indices[0] if local_indices else 0), len(local_indices)
    generator = torch.Generator(device="cpu").manual_seed(seed + 1000 * (accelerator.process_index + 1))
    distribution = None
    if extractor is not None:
        distribution = GenerativeMetrics(extractor).to(device)
        with accelerator.split_between_processes(list(range(len(eval_dataset)))) as local_real:
            local_dataset = eval_dataset.select(local_real)
        for batch in evaluation_batches(local_dataset, batch_size):
            distribution.update(batch["pixel_values"].to(device), real=True)
    classifier = load_digits_classifier(device) if num_classes and evaluation.reads_digit_classes else None
    correct = torch.zeros((), device=device)
    local_samples = []
    for start in range(0, local_count, batch_size):
        count = min(batch_size, local_count - start)
        labels = None
        if num_classes:
            labels = balanced_labels(count, num_classes, local_start + start, evaluation.classes).to(device)
        images = sample(count, labels, generator).clamp(-1, 1)
        local_samples.append(images.cpu())
        if distribution is not None:
            distribution.update(images, real=False)
        if classifier is not None:
            pixel_values = to_classifier_pixels(images, classifier.config.image_size)
            correct += (classifier(pixel_values).logits.argmax(dim=1) == labels).sum()
    metrics = distribution.compute() if distribution is not None else {}
    if classifier is not None:
        metrics["class_accuracy"] = accelerator.reduce(correct, reduction="sum").item() / num_samples
    all_samples = torch.cat(gather_object(local_samples))
    reals = torch.cat([batch["pixel_values"] for batch in evaluation_batches(eval_dataset, batch_size)])
    extractor_on_cpu = None if extractor is None else extractor.to("cpu")
    metrics["diversity_ratio"] = sample_diversity_ratio(all_samples, reals, extractor_on_cpu)["diversity_ratio"]
    if extractor is not None:
        extractor.to(device)
    return metrics


@dataclass
class RunData:
    """The images of a run, from [`load_run_data`].

    Args:
        dataset (`datasets.DatasetDict`): every split as loaded (and filtered by `--class_filter`), untransformed.
        evaluation (`RunEvaluation`): what the metrics are measured on and with.
        train, eval: the training images (decoded once into memory when they fit, `hfgen.data.DecodedImages`) and the
            evaluation images (a `datasets.Dataset`), with the training transform applied: `pixel_values` in
            [-1, 1], and `label` when the data has labels.
    """

    dataset: DatasetDict
    evaluation: RunEvaluation
    train: object
    eval: object


def load_run_data(args: argparse.Namespace, accelerator, logger, measures_distributions: bool = True) -> RunData:
    """Step 1 of an image script: load `--dataset_name` / `--train_data_dir` (every image is decoded first, so a
    broken file fails before anything else), keep `--class_filter`'s classes, hold out the evaluation images and
    choose the extractor (`prepare_evaluation`), and resize to `--resolution` in `--color_mode` (by default that of
    the data; resolved into `args`). A script whose model is not a generator passes `measures_distributions=False`:
    no feature extractor is loaded for it."""
    from .arguments import resolve_color_mode

    dataset = load_image_dataset(
        args.dataset_name, args.train_data_dir, args.resolution, args.dataset_config_name, args.cache_dir
    )
    dataset = filter_classes(dataset, args.class_filter)
    evaluation = prepare_evaluation(args, dataset, accelerator, measures_distributions)
    transform = image_transform(args.resolution, resolve_color_mode(args, dataset))
    logger.info(f"metrics on {evaluation.dataset} ({evaluation.split}): {evaluation.note}")
    # The training images are decoded once when they fit in memory: an epoch then costs no decoding.
    channels = 1 if args.color_mode == "L" else 3
    return RunData(
        dataset=dataset,
        evaluation=evaluation,
        train=decoded_if_small(evaluation.train, transform, args.resolution, channels),
        eval=evaluation.evaluation.with_transform(transform),
    )


@torch.no_grad()
def validate_generator(
    pipeline,
    sample: Callable,
    data: RunData,
    args: argparse.Namespace,
    accelerator,
    step: int,
    logger,
    num_classes: int = 0,
    **pipeline_kwargs,
) -> dict[str, float]:
    """A generator's validation: on the main process a grid of `--num_validation_images` samples of `pipeline` (one
    column per class; `pipeline_kwargs` go to its call) saved under `validation/` and sent to the trackers; on every
    process the metrics of `sample` ([`evaluate_generator`]), logged as `eval/<name>`. Returns the metrics."""
    from .runs import save_grid

    if accelerator.is_main_process:
        pipeline.set_progress_bar_config(disable=True)
        count = args.num_validation_images
        if num_classes:
            pipeline_kwargs["class_labels"] = [i % num_classes for i in range(count)]
        seeded = torch.Generator(device="cpu").manual_seed(args.seed)
        images = pipeline(batch_size=count, generator=seeded, **pipeline_kwargs).images
        folder = os.path.join(args.output_dir, "validation")
        save_grid(images, folder, "samples", accelerator, step, columns=num_classes or None)
    metrics = evaluate_generator(
        sample, data.evaluation, data.eval, accelerator, args.num_eval_samples, args.seed, num_classes
    )
    accelerator.log({f"eval/{name}": value for name, value in metrics.items()}, step=step)
    logger.info(f"step {step}: " + ", ".join(f"{name} {value:.4g}" for name, value in metrics.items()))
    return metrics
