"""The held-out images a training run measures its metrics on.

A dataset with its own evaluation split (`validation`, else `test`) is evaluated on it; a dataset with a `train`
split alone (e.g. an image folder) gets a held-out part of `train`, fixed by a seed and stratified by `label` when
there are labels. The result says which split was evaluated, so metrics and model cards can name it.
"""

import argparse
from dataclasses import dataclass

import numpy as np
from datasets import Dataset, DatasetDict

EVALUATION_SPLIT_NAMES = ("validation", "test")
"""A dataset's own evaluation splits, in order of preference. `validation` comes first: metrics measured during
training steer checkpoints and settings, which is what a validation split is for; a `test` split is used only when
it is the dataset's one held-out split (as for the built-in datasets)."""

DEFAULT_VALIDATION_FRACTION = 0.1
MIN_DEFAULT_VALIDATION_IMAGES = 4
"""The automatic held-out part is never smaller: precision / recall (k = 3) need more than 3 real images."""

MAX_DEFAULT_VALIDATION_IMAGES = 1000
"""The automatic held-out part is never larger: past this, FID and KID barely gain, and training loses images."""

MIN_IMAGES_PER_SIDE = 2
"""Fewest images either side of a split may hold: a covariance (FID) needs two samples, and so does training."""


@dataclass(frozen=True)
class EvaluationSplit:
    r"""
    Training images and the images the metrics are measured on.

    Attributes:
        train (`datasets.Dataset`):
            What the model trains on (the dataset's `train` split, less the held-out images if any were held out).
        evaluation (`datasets.Dataset`):
            The real images of the metrics.
        name (`str`):
            Which split `evaluation` is, for metric records and model cards: `"validation"`, `"test"`, or e.g.
            `"train[held-out 10 of 100 images, seed 0]"`.
    """

    train: Dataset
    evaluation: Dataset
    name: str

    def as_dataset_dict(self) -> DatasetDict:
        """`{"train": train, "evaluation": evaluation}` as a `datasets.DatasetDict`."""
        return DatasetDict({"train": self.train, "evaluation": self.evaluation})


def _is_count(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def held_out_count(num_images: int, validation_split: float | None) -> int:
    r"""
    How many of `num_images` training images `validation_split` holds out; raises a `ValueError` naming
    `--validation_split` when that is impossible.

    Args:
        num_images (`int`):
            Images in the `train` split.
        validation_split (`float`, `int` or `None`):
            A fraction `0 < f < 1` (rounded to the nearest count), a count `>= 1`, or `None`: 10% of the images,
            at least 4 and at most 1000.
    """
    if validation_split is None:
        count = round(DEFAULT_VALIDATION_FRACTION * num_images)
        count = min(max(count, MIN_DEFAULT_VALIDATION_IMAGES), MAX_DEFAULT_VALIDATION_IMAGES)
        if num_images - count < MIN_IMAGES_PER_SIDE:
            raise ValueError(
                f"the dataset has {num_images} training images, too few to hold out {count} for evaluation and keep "
                f"{MIN_IMAGES_PER_SIDE} to train on: add images, or give a dataset with its own 'validation' or "
                "'test' split"
            )
        return count
    if _is_count(validation_split):
        count = int(validation_split)
        if count < 1:
            raise ValueError(
                f"--validation_split must be a fraction between 0 and 1 or a count of images >= 1, got {count}"
            )
        what = f"--validation_split {count}"
    elif isinstance(validation_split, (float, np.floating)):
        if not 0.0 < validation_split < 1.0:
            raise ValueError(
                "--validation_split must be a fraction strictly between 0 and 1 or a count of images >= 1, got "
                f"{validation_split}"
            )
        count = round(float(validation_split) * num_images)
        what = f"--validation_split {validation_split} ({count} of {num_images} images)"
    else:
        raise ValueError(
            f"--validation_split must be a fraction between 0 and 1, a count of images, or None, got "
            f"{validation_split!r}"
        )
    if count >= num_images:
        raise ValueError(f"{what} holds out at least every one of the {num_images} training images: hold out fewer")
    if count < MIN_IMAGES_PER_SIDE or num_images - count < MIN_IMAGES_PER_SIDE:
        raise ValueError(
            f"{what} leaves {count} evaluation and {num_images - count} training images: each side needs at least "
            f"{MIN_IMAGES_PER_SIDE}, so choose another value"
        )
    return count


def parse_validation_split(value: str) -> float | int:
    """argparse `type=` of `--validation_split`: `"10"` is a count of images, `"0.1"` a fraction.

    Only the form is checked here; [`held_out_count`] checks the value against the dataset's size. Raises
    `argparse.ArgumentTypeError`, whose message argparse prints after the flag's name.
    """
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a fraction such as 0.1 or a count of images such as 50, got {value!r}"
        ) from None


def _stratified_indices(labels: np.ndarray, count: int, seed: int) -> np.ndarray | None:
    """`count` indices drawn so that every class keeps its share on both sides, or None when the classes are too
    small for that (a class with one image, or fewer held-out images than classes)."""
    from sklearn.model_selection import train_test_split

    classes, class_sizes = np.unique(labels, return_counts=True)
    if class_sizes.min() < 2 or count < len(classes) or len(labels) - count < len(classes):
        return None
    _, held_out = train_test_split(np.arange(len(labels)), test_size=count, stratify=labels, random_state=seed)
    return held_out


def split_for_evaluation(
    dataset: DatasetDict, validation_split: float | None = None, seed: int = 0
) -> EvaluationSplit:
    r"""
    Choose the images the metrics are measured on: the dataset's own evaluation split, or a held-out part of `train`.

    - The dataset has a `validation` split: it is evaluated (preferred, see `EVALUATION_SPLIT_NAMES`); else a `test`
      split. `train` is left whole, and `validation_split` must be `None`: a second held-out set would be ambiguous.
    - Otherwise `validation_split` images of `train` are held out (see [`held_out_count`]), drawn with `seed`. When
      the split has a `label` column the draw is stratified by label (each class keeps its share on both sides),
      unless some class is too small for that, in which case it is a plain random draw. Both parts keep the order of
      `train`.

    Args:
        dataset (`datasets.DatasetDict`):
            What [`load_image_dataset`] returns; it needs a `train` split.
        validation_split (`float`, `int` or `None`, *optional*):
            `--validation_split`: a fraction `0 < f < 1`, a count `>= 1`, or `None` (automatic).
        seed (`int`, *optional*, defaults to 0):
            Fixes which images are held out (its own RNG; the global RNG is not touched).

    Returns:
        [`EvaluationSplit`] with `train`, `evaluation` and the evaluated split's `name`.

    Example:

    ```python
    >>> splits = split_for_evaluation(load_image_dataset(train_data_dir="my_images"), validation_split=0.1, seed=0)
    >>> splits.name
    'train[held-out 10 of 100 images, seed 0]'
    ```
    """
    if "train" not in dataset:
        raise ValueError(f"the dataset has no 'train' split to train on (splits: {list(dataset)})")
    for name in EVALUATION_SPLIT_NAMES:
        if name in dataset:
            if validation_split is not None:
                raise ValueError(
                    f"--validation_split {validation_split} was given, but the dataset has its own {name!r} split, "
                    "which is the one evaluated: drop --validation_split"
                )
            if len(dataset[name]) < MIN_IMAGES_PER_SIDE:
                raise ValueError(
                    f"the dataset's {name!r} split holds {len(dataset[name])} image(s); metrics need at least "
                    f"{MIN_IMAGES_PER_SIDE}"
                )
            return EvaluationSplit(train=dataset["train"], evaluation=dataset[name], name=name)

    train = dataset["train"]
    count = held_out_count(len(train), validation_split)
    held_out = None
    if "label" in train.column_names:
        held_out = _stratified_indices(np.asarray(train["label"]), count, seed)
    stratified = held_out is not None
    if held_out is None:
        held_out = np.random.default_rng(seed).choice(len(train), size=count, replace=False)
    is_held_out = np.zeros(len(train), dtype=bool)
    is_held_out[held_out] = True
    name = (
        f"train[held-out {count} of {len(train)} images{', stratified by label' if stratified else ''}, seed {seed}]"
    )
    return EvaluationSplit(
        train=train.select(np.flatnonzero(~is_held_out).tolist()),
        evaluation=train.select(np.flatnonzero(is_held_out).tolist()),
        name=name,
    )


__all__ = [
    "EVALUATION_SPLIT_NAMES",
    "EvaluationSplit",
    "held_out_count",
    "parse_validation_split",
    "split_for_evaluation",
]


def filter_classes(dataset, classes: list[int] | None):
    """Keep the examples of `classes` in every split of a labelled `DatasetDict` (all of them when None)."""
    if classes is None:
        return dataset
    if "label" not in dataset["train"].column_names:
        raise ValueError("--class_filter needs labelled data (a `label` column, or class subfolders)")
    kept = set(classes)
    filtered = dataset.filter(lambda label: label in kept, input_columns="label")
    if len(filtered["train"]) == 0:
        raise ValueError(f"--class_filter {classes}: no training image has these labels")
    return filtered
