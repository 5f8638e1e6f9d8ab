import argparse

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from hfgen.data import (
    BUILTIN_FACES,
    EvaluationSplit,
    held_out_count,
    load_image_dataset,
    parse_validation_split,
    split_for_evaluation,
)


def indexed(num_images: int, labels: list | None = None) -> Dataset:
    """A split whose rows carry their own index (`id`), optionally with labels: enough to check which rows go where
    without decoding images."""
    columns = {"id": list(range(num_images))}
    features = {"id": Value("int64")}
    if labels is not None:
        columns["label"] = labels
        features["label"] = ClassLabel(num_classes=max(labels) + 1)
    return Dataset.from_dict(columns, features=Features(features))


def ids(dataset: Dataset) -> list:
    return list(dataset["id"])


# --- the dataset's own evaluation split ---


def test_validation_is_preferred_to_test():
    dataset = DatasetDict(train=indexed(10), validation=indexed(4), test=indexed(6))
    splits = split_for_evaluation(dataset)
    assert splits.name == "validation" and len(splits.evaluation) == 4 and len(splits.train) == 10


def test_a_test_split_is_used_when_there_is_no_validation_split():
    splits = split_for_evaluation(load_image_dataset(BUILTIN_FACES, resolution=16))
    assert isinstance(splits, EvaluationSplit)
    assert splits.name == "test" and len(splits.train) == 80 and len(splits.evaluation) == 20
    assert set(splits.as_dataset_dict()) == {"train", "evaluation"}


def test_an_explicit_validation_split_conflicts_with_the_dataset_own_split():
    with pytest.raises(
        ValueError, match=r"--validation_split 0.1 was given, but the dataset has its own 'test' split"
    ):
        split_for_evaluation(DatasetDict(train=indexed(10), test=indexed(4)), validation_split=0.1)


def test_a_one_image_evaluation_split_is_refused():
    with pytest.raises(ValueError, match=r"'test' split holds 1 image\(s\); metrics need at least 2"):
        split_for_evaluation(DatasetDict(train=indexed(10), test=indexed(1)))


# --- holding out part of train ---


def test_a_fraction_of_a_100_image_folder_is_held_out_without_overlap():
    splits = split_for_evaluation(DatasetDict(train=indexed(100)), validation_split=0.1, seed=0)
    assert splits.name == "train[held-out 10 of 100 images, seed 0]"
    assert len(splits.evaluation) == 10 and len(splits.train) == 90
    assert sorted(ids(splits.train) + ids(splits.evaluation)) == list(range(100))
    # Both parts keep the order of train.
    assert ids(splits.train) == sorted(ids(splits.train)) and ids(splits.evaluation) == sorted(ids(splits.evaluation))


def test_the_default_holds_out_ten_percent_within_bounds():
    assert split_for_evaluation(DatasetDict(train=indexed(100))).name == "train[held-out 10 of 100 images, seed 0]"
    assert held_out_count(100, None) == 10
    assert held_out_count(20, None) == 4  # at least 4: precision / recall (k = 3) need more than 3 real images
    assert held_out_count(6, None) == 4
    assert held_out_count(50_000, None) == 1000
    with pytest.raises(ValueError, match="5 training images, too few to hold out 4 for evaluation"):
        held_out_count(5, None)


def test_a_count_is_held_out_exactly():
    splits = split_for_evaluation(DatasetDict(train=indexed(30)), validation_split=7, seed=0)
    assert len(splits.evaluation) == 7 and splits.name == "train[held-out 7 of 30 images, seed 0]"
    assert held_out_count(30, np.int64(7)) == 7


def test_the_seed_fixes_the_held_out_images():
    dataset = DatasetDict(train=indexed(100))
    first = ids(split_for_evaluation(dataset, 0.2, seed=0).evaluation)
    assert ids(split_for_evaluation(dataset, 0.2, seed=0).evaluation) == first
    assert ids(split_for_evaluation(dataset, 0.2, seed=1).evaluation) != first


def test_labels_are_stratified():
    labels = [0] * 60 + [1] * 30 + [2] * 10
    splits = split_for_evaluation(DatasetDict(train=indexed(100, labels)), validation_split=0.2, seed=0)
    assert splits.name == "train[held-out 20 of 100 images, stratified by label, seed 0]"
    assert np.bincount(splits.evaluation["label"]).tolist() == [12, 6, 2]
    assert np.bincount(splits.train["label"]).tolist() == [48, 24, 8]


def test_labels_too_rare_to_stratify_give_a_plain_random_split():
    labels = [0] * 19 + [1]  # a class with a single image cannot be on both sides
    splits = split_for_evaluation(DatasetDict(train=indexed(20, labels)), validation_split=5, seed=0)
    assert splits.name == "train[held-out 5 of 20 images, seed 0]"
    assert sorted(ids(splits.train) + ids(splits.evaluation)) == list(range(20))


@pytest.mark.parametrize(
    "value, message",
    [
        (0, "must be a fraction between 0 and 1 or a count of images >= 1, got 0"),
        (-3, "must be a fraction between 0 and 1 or a count of images >= 1, got -3"),
        (0.0, "strictly between 0 and 1 or a count of images >= 1, got 0.0"),
        (-0.5, "strictly between 0 and 1 or a count of images >= 1, got -0.5"),
        (1.0, "strictly between 0 and 1 or a count of images >= 1, got 1.0"),
        (20, "--validation_split 20 holds out at least every one of the 20 training images"),
        (25, "--validation_split 25 holds out at least every one of the 20 training images"),
        (19, "leaves 19 evaluation and 1 training images: each side needs at least 2"),
        (1, "leaves 1 evaluation and 19 training images: each side needs at least 2"),
        (0.01, r"--validation_split 0.01 \(0 of 20 images\) leaves 0 evaluation and 20 training images"),
        (0.97, r"\(19 of 20 images\) leaves 19 evaluation and 1 training images"),
        (True, "--validation_split must be a fraction between 0 and 1, a count of images, or None, got True"),
        ("0.1", "--validation_split must be a fraction between 0 and 1, a count of images, or None, got '0.1'"),
    ],
)
def test_impossible_validation_splits_name_the_flag(value, message):
    with pytest.raises(ValueError, match=message) as error:
        split_for_evaluation(DatasetDict(train=indexed(20)), validation_split=value)
    assert "--validation_split" in str(error.value)


def test_parse_validation_split_tells_counts_from_fractions():
    assert parse_validation_split("10") == 10 and isinstance(parse_validation_split("10"), int)
    assert parse_validation_split("0.1") == 0.1
    parser = argparse.ArgumentParser(prog="train.py", exit_on_error=False)
    parser.add_argument("--validation_split", type=parse_validation_split, default=None)
    assert parser.parse_args(["--validation_split", "50"]).validation_split == 50
    with pytest.raises(argparse.ArgumentError, match="--validation_split: must be a fraction such as 0.1 or a count"):
        parser.parse_args(["--validation_split", "ten"])


def test_a_dataset_without_train_is_refused():
    with pytest.raises(ValueError, match=r"no 'train' split to train on \(splits: \['test'\]\)"):
        split_for_evaluation(DatasetDict(test=indexed(5)))
