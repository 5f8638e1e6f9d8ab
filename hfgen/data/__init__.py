"""Datasets for hfgen: the built-in digits, local image folders and `datasets` names."""

from .images import (
    BUILTIN_DIGITS,
    ImageDataError,
    check_resolution,
    collate_images,
    dataset_num_classes,
    image_transform,
    load_digits_dataset,
    load_image_dataset,
    verify_image_files,
)

__all__ = [
    "BUILTIN_DIGITS",
    "ImageDataError",
    "check_resolution",
    "collate_images",
    "dataset_num_classes",
    "image_transform",
    "load_digits_dataset",
    "load_image_dataset",
    "verify_image_files",
]
