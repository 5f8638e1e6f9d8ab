import re
from importlib.resources import files

import numpy as np
import pytest
import torch
from PIL import Image
from torchmetrics.image.fid import FrechetInceptionDistance

from hfgen.data import collate_images, image_transform, load_digits_dataset
from hfgen.metrics import (
    DigitsFeatureExtractor,
    load_digits_classifier,
    load_digits_feature_extractor,
    to_classifier_pixels,
)


@pytest.fixture(scope="module")
def digits32():
    """The built-in digits at the classifier's 32x32, as `(pixel_values, labels)` per split."""
    dataset = load_digits_dataset(32)
    transform = image_transform(32, "L")
    return {split: tuple(collate_images(list(dataset[split].with_transform(transform))).values()) for split in dataset}


def test_shipped_classifier_reaches_97_percent_on_the_test_split(digits32):
    classifier = load_digits_classifier()
    assert not classifier.training
    pixel_values, labels = digits32["test"]
    assert len(labels) == 360
    with torch.no_grad():
        accuracy = (classifier(pixel_values).logits.argmax(-1) == labels).double().mean().item()
    assert accuracy >= 0.97
    # The card in the shipped folder states this same accuracy.
    card = (files("hfgen.metrics") / "digits_classifier" / "README.md").read_text(encoding="utf-8")
    assert f"**{100 * accuracy:.2f}%**" in card
    assert re.search(r"python training_scripts/metrics/train_digits_classifier.py", card)


def test_shipped_weights_are_small():
    weights = files("hfgen.metrics") / "digits_classifier" / "model.safetensors"
    assert weights.stat().st_size < 1_000_000


def test_uint8_images_map_to_the_classifier_range():
    images = torch.tensor([0, 255], dtype=torch.uint8).reshape(2, 1, 1, 1).expand(2, 1, 32, 32)
    pixels = to_classifier_pixels(images, 32)
    assert pixels.dtype == torch.float32
    torch.testing.assert_close(pixels[:, 0, 0, 0], torch.tensor([-1.0, 1.0]))


def test_rgb_becomes_grey_as_pil_converts_it():
    rgb = np.random.default_rng(0).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    pil_grey = np.asarray(Image.fromarray(rgb, mode="RGB").convert("L"), dtype=np.float32) / 127.5 - 1
    pixels = to_classifier_pixels(torch.from_numpy(rgb).permute(2, 0, 1)[None], 32)
    assert pixels.shape == (1, 1, 32, 32)
    # PIL works in fixed point and rounds: one grey level apart at most.
    np.testing.assert_allclose(pixels[0, 0].numpy(), pil_grey, atol=1.01 / 127.5, rtol=0)


def test_resize_keeps_constants_and_the_range():
    constant = torch.full((2, 1, 64, 48), 0.25)
    torch.testing.assert_close(to_classifier_pixels(constant, 32), torch.full((2, 1, 32, 32), 0.25))
    # A checkerboard of extremes makes bicubic overshoot when upsampled; the result is clipped back to [-1, 1].
    checkerboard = ((torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2 * 2 - 1).float()[None, None]
    upsampled = to_classifier_pixels(checkerboard, 32)
    assert upsampled.shape == (1, 1, 32, 32)
    assert upsampled.min() >= -1 and upsampled.max() <= 1


@pytest.mark.parametrize(
    "images, error, message",
    [
        (torch.zeros(2, 2, 32, 32), ValueError, r"1 or 3"),
        (torch.zeros(1, 32, 32), ValueError, r"1 or 3"),
        (torch.full((2, 1, 32, 32), 1.5), ValueError, r"\[-1, 1\]"),
        (torch.zeros(2, 1, 32, 32, dtype=torch.int64), TypeError, "uint8"),
    ],
)
def test_bad_images_are_rejected(images, error, message):
    with pytest.raises(error, match=message):
        to_classifier_pixels(images, 32)


def test_extractor_outputs_and_mode(digits32):
    features = load_digits_feature_extractor()
    logits = DigitsFeatureExtractor(features.classifier, output="logits")
    assert (features.num_features, logits.num_features) == (64, 10)
    pixel_values = digits32["test"][0][:8]
    assert features(pixel_values).shape == (8, 64)
    assert features(pixel_values).dtype == torch.float64
    torch.testing.assert_close(logits(pixel_values), features.classifier(pixel_values).logits.double())
    # Dropout stays off even when a parent module is put in training mode.
    features.train()
    assert not features.training and not features.classifier.training
    with pytest.raises(ValueError, match="'features' or 'logits'"):
        DigitsFeatureExtractor(features.classifier, output="probabilities")


def test_rgb_copies_of_grey_images_give_the_same_features(digits32):
    extractor = load_digits_feature_extractor()
    grey = digits32["test"][0][:16]
    torch.testing.assert_close(extractor(grey.expand(-1, 3, -1, -1)), extractor(grey), atol=1e-5, rtol=1e-5)


def test_torchmetrics_fid_takes_it_without_probing(digits32):
    extractor = load_digits_feature_extractor()
    fid = FrechetInceptionDistance(feature=extractor)
    assert fid.real_features_sum.shape == (64,)
    pixel_values = digits32["test"][0]
    fid.update(pixel_values[:180], real=True)
    fid.update(pixel_values[180:], real=False)
    assert 0 < fid.compute().item() < 50
