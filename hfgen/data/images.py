"""Image datasets for hfgen's training scripts.

Three sources, one shape: a `datasets.DatasetDict` whose splits have an `image` column (PIL images) and, where the
source has classes, a `label` column.

- the built-in real dataset: the 1,797 handwritten digit scans (8x8, 16 grey levels) that scikit-learn ships inside
  its wheel, served at a chosen resolution with a fixed, stratified train/test split. Nothing is downloaded.
- a local folder in `imagefolder` layout (`root/<class>/*.png` or `root/{train,test}/<class>/*.png`).
- a `datasets` name (only reachable where the Hub is).

Every image is opened and fully decoded before training starts, so a truncated or unreadable file fails here with
its path in the message, not minutes into a run.
"""

import os
from typing import Optional

import numpy as np
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, load_dataset
from PIL import Image as PILImage

BUILTIN_DIGITS = "hfgen/digits"
"""Name of the built-in dataset, accepted wherever a `--dataset_name` is."""

DIGITS_TEST_SIZE = 360
"""Held-out digit scans (20%, stratified by label); the split is fixed by `DIGITS_SPLIT_SEED`."""

DIGITS_SPLIT_SEED = 0

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")

MIN_RESOLUTION = 8
MAX_RESOLUTION = 4096


class ImageDataError(ValueError):
    """Raised when a dataset cannot be used for training: the message names the file, folder or field at fault."""


def check_resolution(resolution: int) -> int:
    """Return `resolution` if a model can be trained at it, else raise `ImageDataError` naming the problem."""
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)):
        raise ImageDataError(f"resolution must be an integer number of pixels, got {resolution!r}")
    if not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        raise ImageDataError(
            f"resolution {resolution} is out of range: it must lie between {MIN_RESOLUTION} and {MAX_RESOLUTION} pixels"
        )
    return int(resolution)


def load_digits_dataset(resolution: int = 32) -> DatasetDict:
    """The built-in real dataset: scikit-learn's handwritten digits at `resolution` x `resolution` (bicubic).

    The 8x8 scans hold 17 grey levels (0-16); they are scaled to 0-255, resized with PIL's bicubic filter and stored
    as greyscale (`L`) images. The split into `train` (1,437) and `test` (360) is stratified by label and fixed, so
    metrics measured on `test` are comparable across runs and machines.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    resolution = check_resolution(resolution)
    digits = load_digits()
    scans = np.clip(np.rint(digits.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    images = [PILImage.fromarray(scan, mode="L").resize((resolution, resolution), PILImage.BICUBIC) for scan in scans]
    labels = digits.target.astype(int).tolist()
    train_idx, test_idx = train_test_split(
        np.arange(len(images)), test_size=DIGITS_TEST_SIZE, stratify=labels, random_state=DIGITS_SPLIT_SEED
    )
    features = Features({"image": Image(), "label": ClassLabel(names=[str(d) for d in range(10)])})

    def split(indices):
        return Dataset.from_dict(
            {"image": [images[i] for i in indices], "label": [labels[i] for i in indices]}, features=features
        )

    return DatasetDict({"train": split(sorted(train_idx)), "test": split(sorted(test_idx))})


def _image_files(folder: str) -> list:
    files = []
    for root, _, names in os.walk(folder):
        files.extend(os.path.join(root, n) for n in names if n.lower().endswith(IMAGE_EXTENSIONS))
    return sorted(files)


def verify_image_files(folder: str) -> int:
    """Decode every image below `folder`; raise `ImageDataError` naming the first file that cannot be read.

    Returns the number of images. `PIL.Image.verify` misses truncated files, so each one is fully loaded.
    """
    if not os.path.isdir(folder):
        raise ImageDataError(f"image folder {folder!r} does not exist or is not a directory")
    files = _image_files(folder)
    if not files:
        raise ImageDataError(
            f"image folder {folder!r} holds no images (looked for {', '.join(IMAGE_EXTENSIONS)} in it and below it)"
        )
    for path in files:
        try:
            with PILImage.open(path) as image:
                image.load()
        except Exception as error:  # PIL raises several unrelated types for broken files
            raise ImageDataError(f"cannot read image file {path!r}: {error}") from error
    return len(files)


def load_image_dataset(
    dataset_name: Optional[str] = None,
    train_data_dir: Optional[str] = None,
    resolution: int = 32,
    dataset_config_name: Optional[str] = None,
    cache_dir: Optional[str] = None,
) -> DatasetDict:
    """Load training images from the built-in set, a local `imagefolder` folder or a `datasets` name.

    Args:
        dataset_name (`str`, *optional*):
            `"hfgen/digits"` (the default when nothing is given), a local folder, or a name `datasets` can load.
        train_data_dir (`str`, *optional*):
            A local folder in `imagefolder` layout. Takes precedence over `dataset_name`.
        resolution (`int`, defaults to 32):
            Side of the square images the model is trained on; checked here so that a bad value fails first.
    """
    resolution = check_resolution(resolution)
    if train_data_dir is None and (dataset_name is None or dataset_name == BUILTIN_DIGITS):
        return load_digits_dataset(resolution)

    folder = train_data_dir if train_data_dir is not None else dataset_name
    if train_data_dir is not None or os.path.exists(folder):
        verify_image_files(folder)
        dataset = load_dataset("imagefolder", data_dir=folder, cache_dir=cache_dir)
    else:
        dataset = load_dataset(dataset_name, dataset_config_name, cache_dir=cache_dir)

    if "train" not in dataset:
        raise ImageDataError(f"dataset {folder!r} has no 'train' split (splits: {list(dataset)})")
    if "image" not in dataset["train"].column_names:
        raise ImageDataError(
            f"dataset {folder!r} has no 'image' column (columns: {dataset['train'].column_names})"
        )
    if len(dataset["train"]) == 0:
        raise ImageDataError(f"dataset {folder!r} has an empty 'train' split")
    return dataset


def image_transform(resolution: int, color_mode: str = "L"):
    """Return a `datasets` transform that turns the `image` column into `pixel_values` in [-1, 1], (C, H, W).

    Images are converted to `color_mode` (`"L"` or `"RGB"`), resized with bicubic filtering so the short side is
    `resolution` and center-cropped. Random augmentation is left to the training loop, where its RNG draws happen in
    step order and are restored exactly on resume (the data loader prefetches, so draws made here would not be).
    """
    resolution = check_resolution(resolution)
    if color_mode not in ("L", "RGB"):
        raise ImageDataError(f"color_mode must be 'L' or 'RGB', got {color_mode!r}")

    def to_tensor(image: PILImage.Image) -> torch.Tensor:
        image = image.convert(color_mode)
        width, height = image.size
        scale = resolution / min(width, height)
        if (width, height) != (resolution, resolution):
            image = image.resize(
                (max(resolution, round(width * scale)), max(resolution, round(height * scale))), PILImage.BICUBIC
            )
            left = (image.width - resolution) // 2
            top = (image.height - resolution) // 2
            image = image.crop((left, top, left + resolution, top + resolution))
        array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
        return torch.from_numpy(array.reshape(resolution, resolution, -1)).permute(2, 0, 1).contiguous()

    def transform(batch):
        output = {"pixel_values": [to_tensor(image) for image in batch["image"]]}
        if "label" in batch:
            output["label"] = batch["label"]
        return output

    return transform


def dataset_num_classes(dataset: Dataset) -> int:
    """Number of classes in a dataset's `label` column (from its `ClassLabel` feature when it has one); 0 without
    labels."""
    if "label" not in dataset.column_names:
        return 0
    feature = dataset.features["label"]
    return feature.num_classes if isinstance(feature, ClassLabel) else int(max(dataset["label"])) + 1


def collate_images(examples) -> dict:
    """Stack `pixel_values` (and `labels` where present) from transformed examples into a batch."""
    batch = {"pixel_values": torch.stack([example["pixel_values"] for example in examples])}
    if "label" in examples[0]:
        batch["labels"] = torch.tensor([example["label"] for example in examples], dtype=torch.long)
    return batch
