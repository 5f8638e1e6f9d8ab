"""Class conditioning shared by hfgen's conditional generators and discriminators."""

import torch


def check_class_labels(num_classes: int, labels: torch.Tensor | None, batch_size: int, model_name: str) -> None:
    """A conditional model needs one label in [0, num_classes) per image; an unconditional one (0 classes) none."""
    if num_classes:
        if labels is None:
            raise ValueError(f"this {model_name} is conditional on {num_classes} classes: pass `labels`")
        if labels.shape != (batch_size,):
            raise ValueError(f"labels must have shape ({batch_size},), got {tuple(labels.shape)}")
        if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"labels must lie in [0, {num_classes - 1}], got {labels.min()}..{labels.max()}")
    elif labels is not None:
        raise ValueError(f"this {model_name} is unconditional (num_classes=0) and takes no `labels`")
