import numpy as np
import pytest
import torch
from PIL import Image

from hfgen.data import (
    BUILTIN_DIGITS,
    ImageDataError,
    check_resolution,
    collate_images,
    image_transform,
    load_digits_dataset,
    load_image_dataset,
)


def write_png(path, size=(12, 10), mode="RGB", seed=0):
    """Write a random PNG of `size` (width, height) and return its path."""
    channels = {"RGB": 3, "L": 1}[mode]
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], channels), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode=mode).save(path)
    return path


@pytest.fixture
def image_folder(tmp_path):
    """An imagefolder of 3 cats and 2 dogs, as random 12x10 RGB PNGs."""
    root = tmp_path / "pets"
    for index in range(3):
        write_png(root / "cat" / f"cat_{index}.png", seed=index)
    for index in range(2):
        write_png(root / "dog" / f"dog_{index}.png", seed=10 + index)
    return root


# --- the built-in digits ---


def test_builtin_digits_splits_and_labels(digits16):
    assert len(digits16["train"]) == 1437 and len(digits16["test"]) == 360
    for split in ("train", "test"):
        assert set(digits16[split]["label"]) == set(range(10))
    assert digits16["train"].features["label"].names == [str(digit) for digit in range(10)]


@pytest.mark.parametrize("resolution", [8, 16, 20])
def test_builtin_digits_come_at_the_requested_resolution(digits16, resolution):
    dataset = digits16 if resolution == 16 else load_digits_dataset(resolution)
    for split in ("train", "test"):
        image = dataset[split][0]["image"]
        assert image.size == (resolution, resolution) and image.mode == "L"


def test_builtin_digits_split_is_the_same_on_every_call(digits16):
    again = load_digits_dataset(16)
    for split in ("train", "test"):
        assert list(again[split]["label"]) == list(digits16[split]["label"])
        for index in (0, 100, len(again[split]) - 1):
            assert np.array_equal(np.asarray(again[split][index]["image"]), np.asarray(digits16[split][index]["image"]))


def test_load_image_dataset_defaults_to_the_builtin_digits(digits16):
    for dataset in (load_image_dataset(resolution=16), load_image_dataset(BUILTIN_DIGITS, resolution=16)):
        assert {split: len(dataset[split]) for split in dataset} == {"train": 1437, "test": 360}
        assert np.array_equal(np.asarray(dataset["test"][5]["image"]), np.asarray(digits16["test"][5]["image"]))


def test_image_transform_gives_pixel_values_in_the_unit_range(digits16):
    examples = digits16["train"].with_transform(image_transform(16))
    example = examples[0]
    assert example["pixel_values"].shape == (1, 16, 16) and example["pixel_values"].dtype == torch.float32
    assert example["label"] == digits16["train"][0]["label"]
    pixels = torch.stack([examples[index]["pixel_values"] for index in range(20)])
    assert pixels.min() == -1.0 and pixels.max() == 1.0  # black background and full-ink strokes both occur
    raw = np.asarray(digits16["train"][0]["image"], dtype=np.float32)
    assert torch.allclose(example["pixel_values"][0], torch.from_numpy(raw / 127.5 - 1))

    batch = collate_images([examples[index] for index in range(4)])
    assert batch["pixel_values"].shape == (4, 1, 16, 16)
    assert batch["labels"].dtype == torch.long and batch["labels"].tolist() == list(digits16["train"]["label"][:4])


def test_image_transform_resizes_crops_and_converts(tmp_path):
    image = Image.open(write_png(tmp_path / "wide.png", size=(30, 20)))
    rgb = image_transform(16, color_mode="RGB")({"image": [image]})["pixel_values"][0]
    grey = image_transform(16)({"image": [image]})["pixel_values"][0]
    assert rgb.shape == (3, 16, 16) and grey.shape == (1, 16, 16)
    assert -1.0 <= rgb.min() and rgb.max() <= 1.0


# --- local folders ---


def test_image_folder_through_train_data_dir(image_folder):
    dataset = load_image_dataset(train_data_dir=str(image_folder), resolution=16)
    assert len(dataset["train"]) == 5
    assert dataset["train"].features["label"].names == ["cat", "dog"]
    assert sorted(dataset["train"]["label"]) == [0, 0, 0, 1, 1]
    assert dataset["train"][0]["image"].size == (12, 10)
    pixels = dataset["train"].with_transform(image_transform(16, color_mode="RGB"))[0]["pixel_values"]
    assert pixels.shape == (3, 16, 16)


def test_image_folder_through_dataset_name(image_folder):
    dataset = load_image_dataset(dataset_name=str(image_folder), resolution=16)
    assert len(dataset["train"]) == 5 and "image" in dataset["train"].column_names


def test_missing_folder(tmp_path):
    with pytest.raises(ImageDataError, match="does not exist or is not a directory"):
        load_image_dataset(train_data_dir=str(tmp_path / "nowhere"))


def test_folder_without_images(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(ImageDataError, match="holds no images"):
        load_image_dataset(train_data_dir=str(tmp_path))


def test_truncated_png_is_named(image_folder):
    broken = image_folder / "dog" / "dog_1.png"
    broken.write_bytes(broken.read_bytes()[:-40])
    with pytest.raises(ImageDataError, match=r"cannot read image file .*dog_1\.png.*truncated"):
        load_image_dataset(train_data_dir=str(image_folder))


def test_non_image_with_an_image_extension_is_named(image_folder):
    (image_folder / "cat" / "not_really.jpg").write_text("this is text, not a JPEG")
    with pytest.raises(ImageDataError, match=r"cannot read image file .*not_really\.jpg.*cannot identify image file"):
        load_image_dataset(dataset_name=str(image_folder))


# --- resolution ---


@pytest.mark.parametrize(
    "resolution, message",
    [
        (0, "resolution 0 is out of range"),
        (-3, "resolution -3 is out of range"),
        (10**6, "resolution 1000000 is out of range"),
        (3.5, "resolution must be an integer number of pixels, got 3.5"),
        (True, "resolution must be an integer number of pixels, got True"),
    ],
)
def test_impossible_resolutions(resolution, message):
    with pytest.raises(ImageDataError, match=message):
        check_resolution(resolution)
    with pytest.raises(ImageDataError, match=message):
        load_image_dataset(resolution=resolution)
    with pytest.raises(ImageDataError, match=message):
        load_digits_dataset(resolution)
    with pytest.raises(ImageDataError, match=message):
        image_transform(resolution)


def test_resolution_bounds_are_accepted():
    assert check_resolution(8) == 8 and check_resolution(4096) == 4096
    assert check_resolution(np.int64(32)) == 32 and type(check_resolution(np.int64(32))) is int


def test_image_data_error_is_a_value_error():
    assert issubclass(ImageDataError, ValueError)
