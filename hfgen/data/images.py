"""Image datasets for hfgen's training scripts.

Three sources, one shape: a `datasets.DatasetDict` whose splits have an `image` column (PIL images) and, where the
source has classes, a `label` column.

- the built-in real datasets, shipped inside installed wheels and served at a chosen resolution with a fixed
  train/test split; nothing is downloaded:
  - `hfgen/digits`: the 1,797 handwritten digit scans (8x8, 16 grey levels) of scikit-learn, with their labels;
  - `hfgen/faces`: the 100 face crops (25x25, grey) of scikit-image's `lfw_subset`, without labels.
- a local folder in `imagefolder` layout (`root/<class>/*.png` or `root/{train,test}/<class>/*.png`).
- a `datasets` name (only reachable where the Hub is).

Every image is opened and fully decoded before training starts, so a truncated or unreadable file fails here with
its path in the message, not minutes into a run.
"""

import os

import numpy as np
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, load_dataset
from PIL import Image as PILImage

BUILTIN_DIGITS = "hfgen/digits"
"""Name of the built-in digits, accepted wherever a `--dataset_name` is."""

BUILTIN_FACES = "hfgen/faces"
"""Name of the built-in faces, accepted wherever a `--dataset_name` is."""

BUILTIN_DATASETS = (BUILTIN_DIGITS, BUILTIN_FACES)

DIGITS_TEST_SIZE = 360
"""Held-out digit scans (20%, stratified by label); the split is fixed by `DIGITS_SPLIT_SEED`."""

DIGITS_SPLIT_SEED = 0

NUM_FACES = 100
"""`skimage.data.lfw_subset()` holds 200 crops: the first 100 are faces, the other 100 are background patches."""

FACES_TEST_SIZE = 20
"""Held-out faces (20%); the split is fixed by `FACES_SPLIT_SEED`."""

FACES_SPLIT_SEED = 0

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
            f"resolution {resolution} is out of range: it must lie between {MIN_RESOLUTION} and {MAX_RESOLUTION} "
            "pixels"
        )
    return int(resolution)


def is_builtin_dataset(dataset_name: str | None) -> bool:
    """Whether `dataset_name` names one of hfgen's built-in datasets (`"hfgen/digits"`, `"hfgen/faces"`).

    A local folder that happens to be called e.g. `hfgen/faces` still counts as built-in: the built-in names are
    reserved, as `load_image_dataset` serves them before it looks at the file system.
    """
    return dataset_name in BUILTIN_DATASETS


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


def load_faces_dataset(resolution: int = 32) -> DatasetDict:
    """The built-in faces: the 100 face crops of scikit-image's `lfw_subset` at `resolution` x `resolution`.

    `skimage.data.lfw_subset()` returns 200 float64 crops of 25x25 grey pixels in [0, 1] (its docstring says uint8; the
    shipped array is float): the first 100 are faces from Labeled Faces in the Wild, the other 100 background patches,
    which are left out. Each face is resized in floating point (PIL mode `F`, bicubic), then clipped to [0, 1] and
    rounded to 8 bits once, so the resize adds no rounding of its own. The split into `train` (80) and `test` (20) is
    fixed. There are no labels.
    """
    from skimage.data import lfw_subset
    from sklearn.model_selection import train_test_split

    resolution = check_resolution(resolution)
    crops = lfw_subset()[:NUM_FACES].astype(np.float32)
    images = []
    for crop in crops:
        resized = np.asarray(PILImage.fromarray(crop, mode="F").resize((resolution, resolution), PILImage.BICUBIC))
        images.append(PILImage.fromarray(np.clip(np.rint(resized * 255.0), 0, 255).astype(np.uint8), mode="L"))
    train_idx, test_idx = train_test_split(
        np.arange(NUM_FACES), test_size=FACES_TEST_SIZE, random_state=FACES_SPLIT_SEED
    )
    features = Features({"image": Image()})

    def split(indices):
        return Dataset.from_dict({"image": [images[i] for i in indices]}, features=features)

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
            # One line whatever PIL's message holds, so it reads as the run's last line in a log.
            reason = " ".join(str(error).split()) or type(error).__name__
            raise ImageDataError(f"cannot read image file {path!r} ({reason}): remove or replace it") from error
    return len(files)


def load_image_dataset(
    dataset_name: str | None = None,
    train_data_dir: str | None = None,
    resolution: int = 32,
    dataset_config_name: str | None = None,
    cache_dir: str | None = None,
) -> DatasetDict:
    """Load training images from the built-in set, a local `imagefolder` folder or a `datasets` name.

    Args:
        dataset_name (`str`, *optional*):
            `"hfgen/digits"` (the default when nothing is given), `"hfgen/faces"`, a local folder, or a name
            `datasets` can load.
        train_data_dir (`str`, *optional*):
            A local folder in `imagefolder` layout. Takes precedence over `dataset_name`.
        resolution (`int`, defaults to 32):
            Side of the square images the model is trained on; checked here so that a bad value fails first.
    """
    resolution = check_resolution(resolution)
    if train_data_dir is None and (dataset_name is None or dataset_name == BUILTIN_DIGITS):
        return load_digits_dataset(resolution)
    if train_data_dir is None and dataset_name == BUILTIN_FACES:
        return load_faces_dataset(resolution)

    folder = train_data_dir if train_data_dir is not None else dataset_name
    if train_data_dir is not None or os.path.exists(folder):
        verify_image_files(folder)
        dataset = load_dataset("imagefolder", data_dir=folder, cache_dir=cache_dir)
    else:
        dataset = load_dataset(dataset_name, dataset_config_name, cache_dir=cache_dir)

    if "train" not in dataset:
        raise ImageDataError(f"dataset {folder!r} has no 'train' split (splits: {list(dataset)})")
    if "image" not in dataset["train"].column_names:
        raise ImageDataError(f"dataset {folder!r} has no 'image' column (columns: {dataset['train'].column_names})")
    if len(dataset["train"]) == 0:
        raise ImageDataError(f"dataset {folder!r} has an empty 'train' split")
    return dataset


SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
"""PIL modes of 16-bit images (PNG, TIFF): Pillow opens 16-bit greyscale as `I;16` (or `I` in older versions)."""


def convert_image(image: PILImage.Image, color_mode: str) -> PILImage.Image:
    """Convert a PIL image of any mode to `color_mode` (`"L"` or `"RGB"`), scaling 16-bit images to 8 bits.

    PIL's own `convert("L")` of a 16-bit image clips every value above 255 instead of scaling it, which turns nearly
    all pixels white; 16-bit values are therefore divided by 257 (65535 -> 255) first. Alpha is dropped (the stored
    colour of transparent pixels is kept) and palette images take their palette's colours.
    """
    if image.mode in SIXTEEN_BIT_MODES:
        array = np.asarray(image, dtype=np.float64) / 257.0
        image = PILImage.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8), mode="L")
    return image.convert(color_mode)


def image_transform(resolution: int, color_mode: str = "L"):
    """Return a `datasets` transform that turns the `image` column into `pixel_values` in [-1, 1], (C, H, W).

    Images of any mode (RGBA, palette, 16-bit, ...) are converted to `color_mode` (`"L"` or `"RGB"`, see
    [`convert_image`]), resized with bicubic filtering so the short side is
    `resolution` and center-cropped. Random augmentation is left to the training loop, where its RNG draws happen in
    step order and are restored exactly on resume (the data loader prefetches, so draws made here would not be).
    """
    resolution = check_resolution(resolution)
    if color_mode not in ("L", "RGB"):
        raise ImageDataError(f"color_mode must be 'L' or 'RGB', got {color_mode!r}")

    def to_tensor(image: PILImage.Image) -> torch.Tensor:
        image = convert_image(image, color_mode)
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
        batch["labels"] = torch.tensor([int(example["label"]) for example in examples], dtype=torch.long)
    return batch


# Training images are decoded once and kept in memory up to this many bytes of float32 pixels (the built-in digits at
# 32 px take 6 MB; 10k RGB images at 128 px 2 GB); beyond it they stay on disk and are decoded per batch.
MAX_DECODED_BYTES = 2 * 1024**3


class DecodedImages(torch.utils.data.Dataset):
    """A transformed image dataset decoded once into one tensor (and its labels), so a training epoch spends no time
    decoding or resizing: the examples are those `dataset.with_transform(transform)` gives, in the same order, with
    `pixel_values` and, when the data has labels, `label` ([`collate_images`] batches them)."""

    def __init__(self, dataset: Dataset, transform, batch_size: int = 256):
        decoded = dataset.with_transform(transform)
        pixels, labels = [], []
        for start in range(0, len(decoded), batch_size):
            examples = decoded[start : start + batch_size]
            pixels.extend(examples["pixel_values"])
            labels.extend(examples.get("label", []))
        self.pixel_values = torch.stack(pixels)
        self.labels = torch.tensor(labels, dtype=torch.long) if labels else None

    def __len__(self) -> int:
        return self.pixel_values.shape[0]

    def __getitem__(self, index: int) -> dict:
        example = {"pixel_values": self.pixel_values[index]}
        if self.labels is not None:
            example["label"] = self.labels[index]
        return example


def decoded_if_small(dataset: Dataset, transform, resolution: int, channels: int):
    """`DecodedImages` of `dataset` when its pixels fit in `MAX_DECODED_BYTES`, else the lazily transformed dataset."""
    if len(dataset) * channels * resolution**2 * 4 <= MAX_DECODED_BYTES:
        return DecodedImages(dataset, transform)
    return dataset.with_transform(transform)


def images_as_tensor(
    dataset: Dataset,
    resolution: int,
    color_mode: str = "L",
    num_images: int | None = None,
    seed: int = 0,
) -> torch.Tensor:
    r"""
    The `image` column of `dataset` as one `(num_images, channels, resolution, resolution)` tensor in [-1, 1], through
    the training transform ([`image_transform`]), e.g. for [`hfgen.metrics.reference_metrics`].

    Args:
        dataset (`datasets.Dataset`):
            A split with an `image` column.
        resolution (`int`), color_mode (`str`, *optional*, defaults to `"L"`):
            As for [`image_transform`].
        num_images (`int`, *optional*):
            Take this many images, drawn without replacement with `seed` (in dataset order); all by default. Bounds
            the memory a large dataset takes.
        seed (`int`, *optional*, defaults to 0):
            Seed of the draw (a `numpy.random.Generator` of its own, the global RNG is not touched).
    """
    if num_images is not None:
        if isinstance(num_images, bool) or not isinstance(num_images, (int, np.integer)) or num_images < 1:
            raise ValueError(f"num_images must be a positive integer or None, got {num_images!r}")
        if num_images > len(dataset):
            raise ValueError(f"num_images={num_images} is more than the {len(dataset)} images of the dataset")
        indices = np.random.default_rng(seed).choice(len(dataset), size=int(num_images), replace=False)
        dataset = dataset.select(sorted(indices.tolist()))
    transform = image_transform(resolution, color_mode)
    pixel_values = []
    # Transformed a few hundred at a time, so a large split never holds all its decoded PIL images at once.
    for start in range(0, len(dataset), 256):
        pixel_values.extend(transform(dataset[start : start + 256])["pixel_values"])
    return torch.stack(pixel_values)
