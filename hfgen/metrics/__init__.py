"""Metrics of generated and reconstructed images.

- `psnr`, `ssim`: full-reference quality of reconstructions (images in [-1, 1], `data_range=2.0`).
- `GenerativeMetrics`: FID, KID, Inception Score and improved precision / recall, streamed over batches and
  synchronised across processes; by default through hfgen's own digits classifier, shipped with the package.
- `metric_protocol`, `digits_reference_metrics`: how the numbers were measured, and what real data and a trivial
  baseline read with the same protocol.
"""

from .distribution import KID_MAX_SUBSET_SIZE, GenerativeMetrics
from .feature_extractor import (
    DigitsFeatureExtractor,
    load_digits_classifier,
    load_digits_feature_extractor,
    to_classifier_pixels,
)
from .image_quality import DATA_RANGE, psnr, ssim
from .precision_recall import ManifoldPrecisionRecall, manifold_precision_recall
from .references import REFERENCE_RESOLUTION, digits_reference_metrics, metric_protocol

__all__ = [
    "DATA_RANGE",
    "DigitsFeatureExtractor",
    "GenerativeMetrics",
    "KID_MAX_SUBSET_SIZE",
    "ManifoldPrecisionRecall",
    "REFERENCE_RESOLUTION",
    "digits_reference_metrics",
    "load_digits_classifier",
    "load_digits_feature_extractor",
    "manifold_precision_recall",
    "metric_protocol",
    "psnr",
    "ssim",
    "to_classifier_pixels",
]
