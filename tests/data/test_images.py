import time

import numpy as np
import pytest
import torch
from PIL import Image

from hfgen.data import (
    BUILTIN_DATASETS,
    BUILTIN_DIGITS,
    BUILTIN_FACES,
    DecodedImages,
    ImageDataError,
    check_resolution,
    collate_images,
    convert_image,
    decoded_if_small,
    image_transform,
    images_as_tensor,
    is_builtin_dataset,
    load_digits_dataset,
    load_faces_dataset,
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
            assert np.array_equal(
                np.asarray(again[split][index]["image"]), np.asarray(digits16[split][index]["image"])
            )


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
    assert rgb.min() >= -1.0 and rgb.max() <= 1.0


# --- the built-in faces ---


def test_builtin_faces_are_the_lfw_faces_scaled_to_8_bits():
    from skimage.data import lfw_subset

    faces = load_faces_dataset(25)  # lfw_subset's own size: no resampling
    assert {split: len(faces[split]) for split in faces} == {"train": 80, "test": 20}
    assert faces["train"].column_names == ["image"]  # no labels
    expected = np.clip(np.rint(lfw_subset()[:100].astype(np.float32) * 255), 0, 255).astype(np.uint8)
    served = np.stack([np.asarray(image) for split in ("train", "test") for image in faces[split]["image"]])
    assert served.dtype == np.uint8 and faces["test"][0]["image"].mode == "L"

    # Every face is served once, none of the 100 non-faces, and the 0..1 floats fill the 8-bit range.
    def in_pixel_order(images):
        return images[np.lexsort(images.reshape(len(images), -1).T)]

    assert np.array_equal(in_pixel_order(served), in_pixel_order(expected))
    assert served.max() > 240 and served.min() < 15


def test_builtin_faces_load_fast_at_any_resolution_with_a_fixed_split():
    start = time.perf_counter()
    faces = load_image_dataset(BUILTIN_FACES, resolution=64)
    assert time.perf_counter() - start < 1.0
    assert faces["train"][0]["image"].size == (64, 64)
    again = load_faces_dataset(64)
    for split in ("train", "test"):
        for index in (0, len(again[split]) - 1):
            assert np.array_equal(np.asarray(again[split][index]["image"]), np.asarray(faces[split][index]["image"]))
    pixels = images_as_tensor(faces["test"], 64)
    assert pixels.shape == (20, 1, 64, 64) and pixels.min() >= -1 and pixels.max() <= 1


def test_builtin_dataset_names():
    assert BUILTIN_DATASETS == ("hfgen/digits", "hfgen/faces")
    assert is_builtin_dataset(BUILTIN_DIGITS) and is_builtin_dataset(BUILTIN_FACES)
    assert not is_builtin_dataset(None) and not is_builtin_dataset("my_images") and not is_builtin_dataset("hfgen")


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
    with pytest.raises(ImageDataError, match=r"cannot read image file .*dog_1\.png.*truncated") as error:
        load_image_dataset(train_data_dir=str(image_folder))
    message = str(error.value)
    assert "\n" not in message and message.endswith(": remove or replace it")


def test_non_image_with_an_image_extension_is_named(image_folder):
    (image_folder / "cat" / "not_really.jpg").write_text("this is text, not a JPEG")
    with pytest.raises(
        ImageDataError, match=r"cannot read image file .*not_really\.jpg.*cannot identify image file"
    ) as error:
        load_image_dataset(dataset_name=str(image_folder))
    message = str(error.value)
    assert "\n" not in message and message.endswith(": remove or replace it")


@pytest.fixture
def mixed_folder(tmp_path):
    """Images as users have them: RGBA, palette, 16-bit grey PNG, grey and RGB JPEG, all of different sizes."""
    root = tmp_path / "mixed"
    root.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (20, 30, 4), dtype=np.uint8), mode="RGBA").save(root / "rgba.png")
    Image.fromarray(rng.integers(0, 256, (17, 17, 3), dtype=np.uint8)).convert("P").save(root / "palette.png")
    # A flat mid-grey 16-bit image: 32896 / 257 = 128.
    Image.fromarray(np.full((40, 24), 32896, dtype=np.uint16)).save(root / "deep.png")
    Image.fromarray(rng.integers(0, 256, (50, 60), dtype=np.uint8), mode="L").save(root / "grey.jpg")
    Image.fromarray(rng.integers(0, 256, (33, 12, 3), dtype=np.uint8)).save(root / "photo.jpeg")
    return root


@pytest.mark.parametrize("color_mode", ["L", "RGB"])
def test_a_folder_of_mixed_modes_and_sizes_loads_and_transforms(mixed_folder, color_mode):
    dataset = load_image_dataset(train_data_dir=str(mixed_folder), resolution=16)
    assert len(dataset["train"]) == 5
    modes = {image.mode for image in dataset["train"]["image"]}
    assert {"RGBA", "P", "L", "RGB"} <= modes and modes & {"I;16", "I"}
    pixels = images_as_tensor(dataset["train"], 16, color_mode)
    assert pixels.shape == (5, 1 if color_mode == "L" else 3, 16, 16)
    assert pixels.min() >= -1.0 and pixels.max() <= 1.0


def test_sixteen_bit_images_are_scaled_not_clipped(mixed_folder):
    deep = Image.open(mixed_folder / "deep.png")
    assert deep.mode in ("I;16", "I")
    # PIL's own convert("L") clips 32896 to 255 (white); the scaled value is 128 (mid-grey).
    assert np.asarray(deep.convert("L")).max() == 255
    for mode in ("L", "RGB"):
        assert np.unique(np.asarray(convert_image(deep, mode))).tolist() == [128]
    pixels = image_transform(8)({"image": [deep]})["pixel_values"][0]
    assert torch.allclose(pixels, torch.full_like(pixels, 128 / 127.5 - 1), atol=1e-6)


def test_images_as_tensor_draws_a_seeded_subset(digits16):
    everything = images_as_tensor(digits16["test"], 16)
    assert everything.shape == (360, 1, 16, 16)
    subset = images_as_tensor(digits16["test"], 16, num_images=10, seed=3)
    assert torch.equal(subset, images_as_tensor(digits16["test"], 16, num_images=10, seed=3))
    assert not torch.equal(subset, images_as_tensor(digits16["test"], 16, num_images=10, seed=4))
    # Each drawn image is one of the split's, in dataset order.
    matches = [int((everything == image).flatten(1).all(1).nonzero()[0]) for image in subset]
    assert matches == sorted(matches)
    with pytest.raises(ValueError, match="num_images=361 is more than the 360 images"):
        images_as_tensor(digits16["test"], 16, num_images=361)


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


def test_decoded_images_hold_what_the_transform_gives_and_batch_alike(digits16, image_folder):
    """Decoding once changes nothing the training loop sees."""
    transform = image_transform(16, "L")
    decoded = DecodedImages(digits16["train"], transform, batch_size=100)
    lazy = digits16["train"].with_transform(transform)
    assert len(decoded) == len(lazy)
    for index in (0, 99, 100, len(lazy) - 1):
        assert torch.equal(decoded[index]["pixel_values"], lazy[index]["pixel_values"])
        assert decoded[index]["label"] == lazy[index]["label"]
    batch = collate_images([decoded[0], decoded[5]])
    assert torch.equal(batch["labels"], collate_images([lazy[0], lazy[5]])["labels"])
    # data without labels gives pixel values only
    from datasets import Dataset

    images = [Image.open(path) for path in sorted(image_folder.rglob("*.png"))]
    unlabelled = DecodedImages(Dataset.from_dict({"image": images}), image_transform(16, "RGB"))
    assert set(unlabelled[0]) == {"pixel_values"} and unlabelled[0]["pixel_values"].shape == (3, 16, 16)
    assert set(collate_images([unlabelled[0], unlabelled[1]])) == {"pixel_values"}


def test_only_data_that_fits_in_memory_is_decoded(digits16, monkeypatch):
    from hfgen.data import images

    transform = image_transform(16, "L")
    assert isinstance(decoded_if_small(digits16["train"], transform, 16, 1), DecodedImages)
    monkeypatch.setattr(images, "MAX_DECODED_BYTES", 1000)
    assert not isinstance(decoded_if_small(digits16["train"], transform, 16, 1), DecodedImages)
