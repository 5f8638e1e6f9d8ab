"""Metrics of generated and reconstructed images.

- `psnr`, `ssim`: full-reference quality of reconstructions (images in [-1, 1], `data_range=2.0`).
- `GenerativeMetrics`: FID, KID, Inception Score (with class logits) and improved precision / recall, streamed over
  batches and synchronised across processes; through hfgen's own digits classifier (shipped with the package) or any
  transformers vision backbone (`BackboneFeatureExtractor`, `--metrics_model`, DINOv2 recommended).
- `resolve_feature_extractor`: which extractor a run uses for its data, or a note saying why there is none.
- `metric_protocol`, `reference_metrics`, `digits_reference_metrics`: how the numbers were measured, and what real
  data and a trivial baseline read with the same protocol.
- `sample_diversity_ratio`: spread of generated images over that of real ones (0 is mode collapse).
- `load_clip_score`, `clip_score`: CLIP score of images against their prompts, with any local CLIP folder.
- `retrieval_recall`, `zero_shot_accuracy`: image-text retrieval recall@K and zero-shot top-k accuracy of a
  vision-language model's score matrix.
- `caption_metrics`, `corpus_bleu`, `cider`, `exact_match`, `caption_tokens`: caption quality against human
  references (BLEU-4, CIDEr-D), computed in the package.
- `mean_average_precision`, `box_convert`, `box_area`, `box_iou`, `generalized_box_iou`: COCO-style detection mAP
  and the box geometry it and the detection losses use.
- `mean_iou`, `segmentation_confusion`, `iou_from_confusion`: semantic segmentation mIoU over a set of label maps.
"""

from .backbone import (
    RECOMMENDED_METRICS_MODEL,
    BackboneFeatureExtractor,
    MetricsModelError,
    load_backbone_feature_extractor,
    resolve_feature_extractor,
)
from .captioning import caption_metrics, caption_tokens, cider, corpus_bleu, exact_match
from .clip_score import clip_score, load_clip_score
from .detection import box_area, box_convert, box_iou, generalized_box_iou, mean_average_precision
from .distribution import KID_MAX_SUBSET_SIZE, GenerativeMetrics
from .diversity import mean_pairwise_distance, sample_diversity_ratio
from .feature_extractor import (
    DigitsFeatureExtractor,
    load_digits_classifier,
    load_digits_feature_extractor,
    to_classifier_pixels,
    to_signed_unit_range,
)
from .image_quality import DATA_RANGE, psnr, ssim
from .precision_recall import ManifoldPrecisionRecall, manifold_precision_recall
from .references import (
    REAL_VS_REAL,
    REFERENCE_RESOLUTION,
    TRAIN_MEAN_PLUS_NOISE,
    digits_reference_metrics,
    metric_protocol,
    reference_metrics,
)
from .retrieval import retrieval_recall, zero_shot_accuracy
from .segmentation import iou_from_confusion, mean_iou, segmentation_confusion

__all__ = [
    "clip_score",
    "load_clip_score",
    "DATA_RANGE",
    "KID_MAX_SUBSET_SIZE",
    "REAL_VS_REAL",
    "RECOMMENDED_METRICS_MODEL",
    "REFERENCE_RESOLUTION",
    "TRAIN_MEAN_PLUS_NOISE",
    "BackboneFeatureExtractor",
    "DigitsFeatureExtractor",
    "GenerativeMetrics",
    "ManifoldPrecisionRecall",
    "MetricsModelError",
    "digits_reference_metrics",
    "load_backbone_feature_extractor",
    "load_digits_classifier",
    "load_digits_feature_extractor",
    "manifold_precision_recall",
    "mean_pairwise_distance",
    "metric_protocol",
    "psnr",
    "reference_metrics",
    "resolve_feature_extractor",
    "sample_diversity_ratio",
    "ssim",
    "to_classifier_pixels",
    "to_signed_unit_range",
    "retrieval_recall",
    "zero_shot_accuracy",
    "caption_metrics",
    "caption_tokens",
    "cider",
    "corpus_bleu",
    "exact_match",
    "box_area",
    "box_convert",
    "box_iou",
    "generalized_box_iou",
    "mean_average_precision",
    "iou_from_confusion",
    "mean_iou",
    "segmentation_confusion",
]
