"""Measuring a digits classifier as train_digits_classifier.py does, once at the end of its run and on a saved folder
(`hfgen evaluate`).

The accuracy on the test split of the built-in digits, the run's only data (the split it never saw while training or
choosing its settings), each image read greyscale at the classifier's size in [-1, 1]. On other data
(`--dataset_name` / `--train_data_dir`, images labelled with their digit: a class subfolder per digit, or a `label`
column), the accuracy on their evaluation split: their own validation / test split, else a held-out part of their
training images (`--validation_split`, `--seed`).
"""

import argparse

import torch
from datasets import ClassLabel

from ...data import BUILTIN_DIGITS, collate_images, image_transform, load_image_dataset, split_for_evaluation
from ...training.evaluation import FolderEvaluation
from .modeling_digits_classifier import DigitsClassifier

# The script trains on the built-in digits alone, so its record does not name them: a folder is measured on them.
EVALUATION_DEFAULTS = dict(dataset_name=BUILTIN_DIGITS)

CARD_METRIC_NAMES = {"accuracy": "accuracy"}

# Images per forward pass of the accuracy.
EVALUATION_BATCH_SIZE = 256


def accuracy_dataloader(images, image_size: int) -> torch.utils.data.DataLoader:
    """The labelled `images` (a `datasets.Dataset`, untransformed) in order, greyscale at `image_size` in [-1, 1], as
    the classifier reads them."""
    return torch.utils.data.DataLoader(
        images.with_transform(image_transform(image_size, "L")),
        batch_size=EVALUATION_BATCH_SIZE,
        collate_fn=collate_images,
    )


@torch.no_grad()
def evaluate_accuracy(model, test_dataloader, accelerator) -> tuple[int, int]:
    """Correct predictions and images on the whole test split, gathered from every process."""
    model.eval()
    correct, total = 0, 0
    for batch in test_dataloader:
        predictions = model(batch["pixel_values"]).logits.argmax(dim=-1)
        predictions, labels = accelerator.gather_for_metrics((predictions, batch["labels"]))
        correct += (predictions == labels).sum().item()
        total += labels.numel()
    return correct, total


def accuracy_protocol(dataset: str, split: str, num_images: int) -> dict:
    """How the accuracy was measured, for metrics.json and the card."""
    return {
        "dataset": dataset,
        "split": split,
        "num_images": num_images,
        "accuracy": "the most probable class of each image (greyscale, the classifier's size) against its label",
    }


def check_digit_labels(images, model: DigitsClassifier, dataset: str) -> None:
    """One-line errors for data whose labels are not the classifier's classes: accuracy would count the wrong
    thing."""
    if "label" not in images.column_names:
        raise ValueError(
            f"{dataset} has no labels: the classifier's accuracy needs images labelled with their digit (a class "
            "subfolder per digit, or a label column)"
        )
    classes = [model.config.id2label[index] for index in range(model.config.num_labels)]
    feature = images.features["label"]
    if isinstance(feature, ClassLabel) and feature.names != classes:
        raise ValueError(
            f"the classes of {dataset} are {feature.names}, but the classifier's are {classes}: give images of these "
            "classes (a class subfolder per digit, named as they are)"
        )


def evaluate_folder(folder: str, run: argparse.Namespace, accelerator) -> FolderEvaluation:
    """The DigitsClassifier folder measured as train_digits_classifier.py measures it at the end of its run, on
    `run`'s data."""
    model = DigitsClassifier.from_pretrained(folder).to(accelerator.device)
    image_size = model.config.image_size
    dataset = load_image_dataset(
        run.dataset_name, run.train_data_dir, image_size, run.dataset_config_name, run.cache_dir
    )
    splits = split_for_evaluation(dataset, run.validation_split, seed=run.seed)
    name = run.train_data_dir or run.dataset_name
    check_digit_labels(splits.evaluation, model, name)
    dataloader = accelerator.prepare(accuracy_dataloader(splits.evaluation, image_size))
    correct, total = evaluate_accuracy(model, dataloader, accelerator)
    protocol = accuracy_protocol(name, splits.name, total)
    return FolderEvaluation({"accuracy": correct / total}, protocol, CARD_METRIC_NAMES, "image-classification")
