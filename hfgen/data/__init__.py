"""Datasets for hfgen: the built-in digits and faces, local image folders and `datasets` names, and the held-out
split that metrics are measured on."""

from .images import (
    BUILTIN_DATASETS,
    BUILTIN_DIGITS,
    BUILTIN_FACES,
    DecodedImages,
    ImageDataError,
    check_resolution,
    collate_images,
    convert_image,
    dataset_num_classes,
    decoded_if_small,
    image_transform,
    images_as_tensor,
    is_builtin_dataset,
    load_digits_dataset,
    load_faces_dataset,
    load_image_dataset,
    verify_image_files,
)
from .splits import EvaluationSplit, filter_classes, held_out_count, parse_validation_split, split_for_evaluation

__all__ = [
    "BUILTIN_DATASETS",
    "BUILTIN_DIGITS",
    "BUILTIN_FACES",
    "DecodedImages",
    "EvaluationSplit",
    "ImageDataError",
    "check_resolution",
    "collate_images",
    "convert_image",
    "dataset_num_classes",
    "decoded_if_small",
    "filter_classes",
    "held_out_count",
    "image_transform",
    "images_as_tensor",
    "is_builtin_dataset",
    "load_digits_dataset",
    "load_faces_dataset",
    "load_image_dataset",
    "parse_validation_split",
    "split_for_evaluation",
    "verify_image_files",
]
