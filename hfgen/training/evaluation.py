"""Measuring a generator inside an accelerate run: distribution metrics against held-out images, and the class
accuracy of conditional samples read by hfgen's digits classifier. Every process works on its share; the results
are gathered, so every process returns the numbers of the whole set."""

from collections.abc import Callable

import torch

from ..data import collate_images
from ..metrics import GenerativeMetrics, load_digits_classifier, load_digits_feature_extractor, to_classifier_pixels


def evaluation_batches(dataset, batch_size: int):
    """`pixel_values` (and `labels` when the dataset has them) of `dataset` in order, `batch_size` at a time."""
    for start in range(0, len(dataset), batch_size):
        yield collate_images([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])


def balanced_labels(count: int, num_classes: int, offset: int = 0) -> torch.Tensor:
    """Labels 0, 1, ..., num_classes - 1, 0, 1, ... (starting at `offset`): every class equally often."""
    return (torch.arange(count) + offset) % num_classes


@torch.no_grad()
def evaluate_generator(
    sample: Callable[[int, torch.Tensor | None, torch.Generator], torch.Tensor],
    test_dataset,
    accelerator,
    num_samples: int,
    seed: int,
    num_classes: int = 0,
    measure_distribution: bool = True,
    batch_size: int = 128,
) -> dict[str, float]:
    r"""
    Metrics of a generator against the held-out images.

    Args:
        sample (`Callable`):
            `sample(batch_size, labels, generator)` returns images `(batch, channels, height, width)` in [-1, 1];
            `labels` is None for an unconditional generator.
        test_dataset (`datasets.Dataset`):
            Held-out images (with the training transform applied).
        num_samples (`int`):
            Generated images in all (split across processes).
        seed (`int`):
            Seeds each process's `torch.Generator`, so the same run draws the same samples.
        num_classes (`int`):
            0 for unconditional; otherwise labels are balanced over the classes and `class_accuracy` (the share of
            samples the digits classifier assigns to their label) is measured.
        measure_distribution (`bool`):
            FID, KID, IS and precision / recall through the digits classifier's features (for digit-like data).

    Returns:
        `dict` with `fid`, `kid_mean`, `kid_std`, `inception_score_mean`, `inception_score_std`, `precision`,
        `recall` (when `measure_distribution`) and `class_accuracy` (when conditional and measured).
    """
    device = accelerator.device
    with accelerator.split_between_processes(list(range(num_samples))) as local_indices:
        local_start, local_count = (local_indices[0] if local_indices else 0), len(local_indices)
    generator = torch.Generator(device="cpu").manual_seed(seed + 1000 * (accelerator.process_index + 1))
    distribution = None
    if measure_distribution:
        distribution = GenerativeMetrics(load_digits_feature_extractor().to(device)).to(device)
        with accelerator.split_between_processes(list(range(len(test_dataset)))) as local_test:
            local_dataset = test_dataset.select(local_test)
        for batch in evaluation_batches(local_dataset, batch_size):
            distribution.update(batch["pixel_values"].to(device), real=True)
    classifier = load_digits_classifier(device) if num_classes and measure_distribution else None
    correct = torch.zeros((), device=device)
    for start in range(0, local_count, batch_size):
        count = min(batch_size, local_count - start)
        labels = balanced_labels(count, num_classes, local_start + start).to(device) if num_classes else None
        images = sample(count, labels, generator).clamp(-1, 1)
        if distribution is not None:
            distribution.update(images, real=False)
        if classifier is not None:
            pixel_values = to_classifier_pixels(images, classifier.config.image_size)
            correct += (classifier(pixel_values).logits.argmax(dim=1) == labels).sum()
    metrics = distribution.compute() if distribution is not None else {}
    if classifier is not None:
        metrics["class_accuracy"] = accelerator.reduce(correct, reduction="sum").item() / num_samples
    return metrics
