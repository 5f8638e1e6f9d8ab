"""Semantic segmentation quality: per-class intersection over union and its mean (mIoU), read off a confusion matrix.

Label maps hold class ids per pixel, `0 .. num_classes - 1` (hfgen's canvases: 0 the background, `1 + c` digit class
`c`), and optionally an `ignore_index` for pixels that count for nothing (unlabelled borders). The confusion matrix
is accumulated over every image first and the IoUs read from the totals, as PASCAL VOC and ADE20K score a dataset:
a class's IoU is the pixels both label it over the pixels either labels it, over the whole set. A class that neither
the targets nor the predictions hold anywhere has no IoU and stays out of the mean.
"""

import torch


def segmentation_confusion(
    predictions: torch.Tensor, targets: torch.Tensor, num_classes: int, ignore_index: int | None = None
) -> torch.Tensor:
    """The `(num_classes, num_classes)` matrix counting pixels of target class `i` predicted as class `j` (row `i`,
    column `j`), over label maps of any matching shape (`(height, width)` or `(batch, height, width)`)."""
    if predictions.shape != targets.shape:
        raise ValueError(
            f"predictions {tuple(predictions.shape)} and targets {tuple(targets.shape)} must be label maps of the "
            "same shape"
        )
    if predictions.is_floating_point() or targets.is_floating_point():
        raise ValueError("predictions and targets must be integer label maps (class ids), not scores")
    predictions, targets = predictions.flatten().long(), targets.flatten().long()
    if ignore_index is not None:
        kept = targets != ignore_index
        predictions, targets = predictions[kept], targets[kept]
    for name, labels in (("predictions", predictions), ("targets", targets)):
        if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(
                f"{name} hold class ids from {labels.min().item()} to {labels.max().item()}; "
                f"num_classes={num_classes} allows 0 to {num_classes - 1}"
            )
    counts = torch.bincount(targets * num_classes + predictions, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def iou_from_confusion(confusion: torch.Tensor) -> dict:
    """Per-class IoU (NaN for a class absent from targets and predictions alike), their mean over the classes that
    have one (`mean_iou`), and the share of pixels labelled right (`pixel_accuracy`)."""
    confusion = confusion.double()
    intersection = confusion.diagonal()
    union = confusion.sum(dim=0) + confusion.sum(dim=1) - intersection
    per_class = torch.where(union > 0, intersection / union.clamp(min=1), torch.full_like(union, float("nan")))
    present = ~per_class.isnan()
    total = confusion.sum()
    return {
        "mean_iou": per_class[present].mean().item() if present.any() else float("nan"),
        "per_class_iou": per_class.tolist(),
        "pixel_accuracy": (intersection.sum() / total).item() if total > 0 else float("nan"),
    }


def mean_iou(predictions, targets, num_classes: int, ignore_index: int | None = None) -> dict:
    """mIoU of predicted label maps against target ones over a whole set (see the module docstring).

    Args:
        predictions, targets (`torch.Tensor` or a sequence of them):
            Integer label maps, `(height, width)` or `(batch, height, width)`; a sequence pairs maps of different
            sizes one by one.
        num_classes (`int`):
            The number of class ids, background included.
        ignore_index (`int`, *optional*):
            A target id whose pixels are left out.

    Returns:
        `dict` with `mean_iou`, `per_class_iou` (a list, NaN for absent classes) and `pixel_accuracy`.
    """
    if isinstance(predictions, torch.Tensor):
        predictions, targets = [predictions], [targets]
    if len(predictions) != len(targets):
        raise ValueError(f"got {len(predictions)} predicted label maps for {len(targets)} targets")
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    for predicted, target in zip(predictions, targets, strict=True):
        confusion += segmentation_confusion(
            torch.as_tensor(predicted), torch.as_tensor(target), num_classes, ignore_index
        ).cpu()
    return iou_from_confusion(confusion)
