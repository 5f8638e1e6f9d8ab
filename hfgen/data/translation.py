"""The built-in image-to-image translation pairs, whose true translation is known for every held-out image, so a
model's translations can be scored pixel by pixel:

- `hfgen/digits-colour`: domain A is the built-in digits (grey), domain B the same digits under a fixed, invertible
  colour map (dark strokes on a warm background, through a three-colour ramp);
- `hfgen/photos-graded`: domain A is crops of the colour photographs that ship with scikit-image (an astronaut, a cup
  of coffee, a cat, a rocket), domain B the same crops under a fixed, invertible colour grading (a warm, washed-out
  film look).

The map sends grey level g (0-255) to the colour at position 255 - g of a 256-entry table along the ramp navy ->
teal -> amber; every entry is a distinct 8-bit colour, so `decolourise(colourise(g)) == g` for every g. CycleGAN
trains on the pair served unpaired (the B images of the training split in an independent fixed order); pix2pix on it
paired. The test split is always paired: it is what translations are measured against.
"""

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image
from PIL import Image as PILImage

from .images import load_digits_dataset

BUILTIN_DIGIT_PAIR = "hfgen/digits-colour"
"""Name of the built-in pair, accepted where a translation script takes its domains."""

COLOUR_STOPS = ((13, 13, 77), (26, 140, 140), (242, 217, 51))
"""The ramp's colours (navy, teal, amber) in 8-bit RGB."""

PAIR_SHUFFLE_SEED = 0
"""Fixes the order of the unpaired B images."""


def colour_table() -> np.ndarray:
    """The 256 colours of the ramp, `(256, 3)` uint8, evenly spaced along its length."""
    stops = np.asarray(COLOUR_STOPS, dtype=np.float64)
    lengths = np.linalg.norm(np.diff(stops, axis=0), axis=1)
    positions = np.concatenate([[0.0], np.cumsum(lengths)]) / lengths.sum()
    steps = np.linspace(0.0, 1.0, 256)
    table = np.stack([np.interp(steps, positions, stops[:, channel]) for channel in range(3)], axis=1)
    return np.rint(table).astype(np.uint8)


def colourise(grey: np.ndarray) -> np.ndarray:
    """Domain A to B: grey levels `(..., )` uint8 to colours `(..., 3)` uint8 (bright strokes become dark)."""
    return colour_table()[255 - np.asarray(grey, dtype=np.uint8)]


def decolourise(rgb: np.ndarray) -> np.ndarray:
    """Domain B to A, the inverse of [`colourise`]: each colour `(..., 3)` to the grey level of the nearest ramp
    colour, `(...)` uint8."""
    table = colour_table().astype(np.int32)
    pixels = np.asarray(rgb, dtype=np.int32).reshape(-1, 1, 3)
    nearest = np.argmin(((pixels - table[None]) ** 2).sum(axis=2), axis=1)
    return (255 - nearest).astype(np.uint8).reshape(np.asarray(rgb).shape[:-1])


def load_digit_pair(resolution: int = 32, paired: bool = True) -> DatasetDict:
    """The built-in pair at `resolution`: `train` and `test` splits with `image_a` (grey digits), `image_b` (their
    colourised versions) and `label` (of `image_a`). With `paired=False` the training split's `image_b` column is the
    colourised training digits in an independent fixed order, as unpaired data comes; the test split stays paired."""
    digits = load_digits_dataset(resolution)
    features = Features(
        {"image_a": Image(), "image_b": Image(), "label": ClassLabel(names=[str(digit) for digit in range(10)])}
    )
    splits = {}
    for name, split in digits.items():
        images_a = split["image"]
        images_b = [PILImage.fromarray(colourise(np.asarray(image.convert("L"))), mode="RGB") for image in images_a]
        if name == "train" and not paired:
            order = np.random.default_rng(PAIR_SHUFFLE_SEED).permutation(len(images_b))
            images_b = [images_b[index] for index in order]
        splits[name] = Dataset.from_dict(
            {"image_a": images_a, "image_b": images_b, "label": split["label"]}, features=features
        )
    return DatasetDict(splits)


BUILTIN_PHOTO_PAIR = "hfgen/photos-graded"

PHOTO_NAMES = ("astronaut", "coffee", "chelsea", "rocket")
"""scikit-image's colour photographs (shipped in its wheel, nothing is downloaded) that the photo pair is cut from."""

PHOTO_CROP = 64
"""Side of the crops cut from the photographs, before resizing to the asked resolution."""

PHOTO_TEST_SHARE = 0.2
"""Share of each photograph's width (its right-hand strip) that only the test crops come from."""

# The grading: a colour mix whose rows sum to 1 (a warm cast), a gamma that lifts the shadows, and a contraction into
# [0.05, 0.95] (the washed-out blacks and whites of film). Each step is invertible.
GRADE_MIX = np.array([[0.70, 0.25, 0.05], [0.20, 0.65, 0.15], [0.10, 0.30, 0.60]])
GRADE_GAMMA = 0.8
GRADE_FLOOR, GRADE_RANGE = 0.05, 0.9


def grade(rgb: np.ndarray) -> np.ndarray:
    """Domain A to B of the photo pair: 8-bit RGB `(..., 3)` to its graded version (8-bit RGB)."""
    values = np.asarray(rgb, dtype=np.float64) / 255.0
    graded = GRADE_FLOOR + GRADE_RANGE * (values @ GRADE_MIX.T) ** GRADE_GAMMA
    return np.clip(np.rint(graded * 255.0), 0, 255).astype(np.uint8)


def ungrade(rgb: np.ndarray) -> np.ndarray:
    """Domain B to A of the photo pair, the inverse of [`grade`] (up to 8-bit rounding)."""
    values = np.asarray(rgb, dtype=np.float64) / 255.0
    mixed = np.clip((values - GRADE_FLOOR) / GRADE_RANGE, 0, 1) ** (1 / GRADE_GAMMA)
    original = mixed @ np.linalg.inv(GRADE_MIX).T
    return np.clip(np.rint(original * 255.0), 0, 255).astype(np.uint8)


def photo_crops(resolution: int, split: str = "train") -> list[PILImage.Image]:
    """`PHOTO_CROP`-pixel crops of the photographs, resized (bicubic) to `resolution`. `"train"`: from the left 80%
    of each photograph, overlapping by half a crop (more views of the little data there is); `"test"`: from the
    right-hand 20%, side by side, so no test pixel was seen in training."""
    import skimage.data

    crops = []
    for name in PHOTO_NAMES:
        photo = getattr(skimage.data, name)()[..., :3]
        height, width = photo.shape[:2]
        boundary = round(width * (1 - PHOTO_TEST_SHARE))
        left, right, stride = (0, boundary, PHOTO_CROP // 2) if split == "train" else (boundary, width, PHOTO_CROP)
        for top in range(0, height - PHOTO_CROP + 1, stride):
            for start in range(left, right - PHOTO_CROP + 1, stride):
                crop = PILImage.fromarray(photo[top : top + PHOTO_CROP, start : start + PHOTO_CROP])
                crops.append(crop.resize((resolution, resolution), PILImage.BICUBIC))
    return crops


def load_photo_pair(resolution: int = 32, paired: bool = False) -> DatasetDict:
    """The built-in photo pair at `resolution`: `train` and `test` splits (see [`photo_crops`]) with `image_a` (the
    crops) and `image_b` (their graded versions), unpaired in `train` by default (an independent fixed order) and
    paired in `test`."""
    features = Features({"image_a": Image(), "image_b": Image()})
    splits = {}
    for name in ("train", "test"):
        images_a = photo_crops(resolution, name)
        images_b = [PILImage.fromarray(grade(np.asarray(image))) for image in images_a]
        if name == "train" and not paired:
            shuffle = np.random.default_rng(PAIR_SHUFFLE_SEED + 1).permutation(len(images_b))
            images_b = [images_b[index] for index in shuffle]
        splits[name] = Dataset.from_dict({"image_a": images_a, "image_b": images_b}, features=features)
    return DatasetDict(splits)


__all__ = [
    "BUILTIN_DIGIT_PAIR",
    "BUILTIN_PHOTO_PAIR",
    "colour_table",
    "colourise",
    "decolourise",
    "grade",
    "load_digit_pair",
    "load_photo_pair",
    "ungrade",
]
