"""hfgen's offline feature extractor: the shipped digits classifier, wrapped for torchmetrics' `feature=` argument.

torchmetrics' FID, KID and Inception Score call a custom `feature` module on the images exactly as `update` receives
them (no rescaling, no resizing: `normalize=` only applies to its own Inception network), and FID reads the feature
dimension from a `num_features` attribute before falling back to probing the module with a random image. So the
wrapper does the whole preprocessing itself and says its dimension up front.
"""

from importlib.resources import as_file, files
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..models.digits_classifier import DigitsClassifier

DIGITS_CLASSIFIER_FOLDER = "digits_classifier"
"""Folder inside the `hfgen.metrics` package that holds the trained classifier (config.json + model.safetensors)."""

LUMA_WEIGHTS = (0.299, 0.587, 0.114)
"""ITU-R BT.601 luma weights, the ones PIL's `convert("L")` uses, so RGB samples match the greyscale training data."""

RANGE_TOLERANCE = 1e-3
"""How far outside [-1, 1] float images may stray (rounding) before the extractor refuses them."""


def load_digits_classifier(device: str | torch.device | None = None) -> DigitsClassifier:
    """Load the digits classifier shipped in `hfgen/metrics/digits_classifier/`, in eval mode.

    The weights were produced by `training_scripts/metrics/train_digits_classifier.py`; the folder's README.md states
    the command and the measured test accuracy. Nothing is downloaded.
    """
    with as_file(files("hfgen.metrics") / DIGITS_CLASSIFIER_FOLDER) as folder:
        classifier = DigitsClassifier.from_pretrained(folder)
    if device is not None:
        classifier = classifier.to(device)
    return classifier.eval()


def to_signed_unit_range(images: torch.Tensor) -> torch.Tensor:
    r"""
    Check a batch of images handed to a feature extractor and return it as floats in [-1, 1].

    Args:
        images (`torch.Tensor` of shape `(batch, channels, height, width)`):
            1 (grey) or 3 (RGB) channels; float in [-1, 1] (hfgen's convention) or uint8 in [0, 255].
    """
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (batch, 1 or 3, height, width), got {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        return images.float() / 127.5 - 1.0
    if not images.is_floating_point():
        raise TypeError(f"images must be float in [-1, 1] or uint8 in [0, 255], got dtype {images.dtype}")
    low, high = images.aminmax()
    if low < -1.0 - RANGE_TOLERANCE or high > 1.0 + RANGE_TOLERANCE:
        raise ValueError(
            f"float images must lie in [-1, 1], got values in [{low.item():.3f}, {high.item():.3f}]: map [0, 1] "
            "images with `2 * x - 1` and clamp model outputs with `.clamp(-1, 1)`"
        )
    return images


def to_classifier_pixels(images: torch.Tensor, image_size: int) -> torch.Tensor:
    r"""
    Bring a batch of images to what the digits classifier was trained on: one grey channel in [-1, 1], `image_size`
    pixels square.

    Args:
        images (`torch.Tensor` of shape `(batch, channels, height, width)`):
            1 (grey) or 3 (RGB) channels; float in [-1, 1] (hfgen's convention) or uint8 in [0, 255]; any size.
            Non-square images are stretched to a square.

    Returns:
        `torch.FloatTensor` of shape `(batch, 1, image_size, image_size)`.
    """
    images = to_signed_unit_range(images)
    if images.shape[1] == 3:
        # The weights sum to 1, so the luma of [-1, 1] pixels is again in [-1, 1].
        weights = torch.tensor(LUMA_WEIGHTS, dtype=images.dtype, device=images.device)
        images = torch.einsum("bchw,c->bhw", images, weights).unsqueeze(1)
    if images.shape[-2:] != (image_size, image_size):
        images = F.interpolate(
            images, size=(image_size, image_size), mode="bicubic", align_corners=False, antialias=True
        )
        # Bicubic overshoots at sharp edges; PIL's resize of the training images clips the same way.
        images = images.clamp(-1.0, 1.0)
    return images


class DigitsFeatureExtractor(nn.Module):
    r"""
    The digits classifier as a torchmetrics feature extractor (`FrechetInceptionDistance(feature=extractor)`).

    Args:
        classifier (`DigitsClassifier`):
            The classifier; frozen and kept in eval mode (dropout off) whatever mode the parent module is put in.
        output (`str`, *optional*, defaults to `"features"`):
            `"features"`: the penultimate activations, `(batch, hidden_channels[-1])`, for FID / KID / precision and
            recall. `"logits"`: the class logits, `(batch, num_labels)`, for the Inception Score (which applies the
            softmax itself).

    The forward pass takes images as described in [`to_classifier_pixels`]: grey or RGB, float in [-1, 1] or uint8,
    any size; RGB becomes grey with BT.601 luma weights and every image is resized to the classifier's `image_size`
    (32) with bicubic, antialiased `torch.nn.functional.interpolate`. It returns float64.
    """

    def __init__(self, classifier: DigitsClassifier, output: Literal["features", "logits"] = "features"):
        super().__init__()
        if output not in ("features", "logits"):
            raise ValueError(f"output must be 'features' or 'logits', got {output!r}")
        self.classifier = classifier.eval().requires_grad_(False)
        self.output = output
        config = classifier.config
        # Read by torchmetrics' FID instead of probing the module with a random 299x299 image.
        self.num_features = config.hidden_channels[-1] if output == "features" else config.num_labels

    def train(self, mode: bool = True) -> "DigitsFeatureExtractor":
        # A metric's extractor is a fixed function: dropout must stay off even under `parent.train()`.
        return super().train(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pixel_values = to_classifier_pixels(images, self.classifier.config.image_size)
        pixel_values = pixel_values.to(self.classifier.dtype)
        if self.output == "features":
            outputs = self.classifier.get_image_features(pixel_values)
        else:
            outputs = self.classifier(pixel_values).logits
        # float64 for the metrics downstream: KID's cubic kernel is ~1e3 to 1e4 on these features, and its unbiased
        # MMD^2 is a small difference of sums of such numbers, of which float32 keeps only a few digits.
        return outputs.double()

    @property
    def protocol(self) -> dict:
        """What a number measured through this extractor depends on, for model cards and metric logs."""
        config = self.classifier.config
        return {
            "feature_extractor": f"hfgen digits classifier ({config.model_type}, "
            f"hfgen/metrics/{DIGITS_CLASSIFIER_FOLDER})",
            "features": f"penultimate activations, {config.hidden_channels[-1]}-d"
            if self.output == "features"
            else f"class logits, {config.num_labels} classes",
            "input_resolution": config.image_size,
            "resize": "torch.nn.functional.interpolate, bicubic, antialias=True, clamped to [-1, 1]",
            "color": "RGB converted to grey with ITU-R BT.601 luma weights (0.299, 0.587, 0.114)",
        }


def load_digits_feature_extractor(
    output: Literal["features", "logits"] = "features", device: str | torch.device | None = None
) -> DigitsFeatureExtractor:
    """The shipped digits classifier wrapped as a [`DigitsFeatureExtractor`] (see there for `output`)."""
    return DigitsFeatureExtractor(load_digits_classifier(device), output=output)


__all__ = [
    "DigitsFeatureExtractor",
    "load_digits_classifier",
    "load_digits_feature_extractor",
    "to_classifier_pixels",
    "to_signed_unit_range",
]
