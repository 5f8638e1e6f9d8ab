"""Box geometry and COCO-style mean average precision, computed in the package.

Boxes are `(..., 4)` tensors in one of three formats:

- `"xyxy"`: corners (x0, y0, x1, y1), the format every function here computes in;
- `"xywh"`: top-left corner and size (x0, y0, w, h), the format of COCO's annotation files;
- `"cxcywh"`: centre and size (cx, cy, w, h), the format DETR and OWL-ViT predict (normalised to [0, 1]).
"""

import torch

BOX_FORMATS = ("xyxy", "xywh", "cxcywh")
"""Names accepted by [`box_convert`]."""
COCO_IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
"""0.50, 0.55, ..., 0.95: the IoU thresholds COCO's mAP averages over (rounded so 0.5 and 0.75 are exact)."""
COCO_RECALL_POINTS = 101
"""COCO samples each precision-recall curve at recall 0.00, 0.01, ..., 1.00."""


def _check_format(name: str, box_format: str) -> None:
    if box_format not in BOX_FORMATS:
        raise ValueError(f"{name} must be one of {BOX_FORMATS}, got {box_format!r}")


def _check_xyxy(boxes: torch.Tensor, name: str) -> None:
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"{name} must have shape (num_boxes, 4), got {tuple(boxes.shape)}")
    if (boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any():
        raise ValueError(f"{name} has degenerate boxes (x1 < x0 or y1 < y0): boxes must be xyxy corners")


def box_convert(boxes: torch.Tensor, in_format: str, out_format: str) -> torch.Tensor:
    r"""
    Convert boxes of shape `(..., 4)` between `"xyxy"`, `"xywh"` and `"cxcywh"` (see the module docstring).
    Differentiable; no check that the boxes are well formed.
    """
    _check_format("in_format", in_format)
    _check_format("out_format", out_format)
    if boxes.shape[-1] != 4:
        raise ValueError(f"boxes must have shape (..., 4), got {tuple(boxes.shape)}")
    a, b, c, d = boxes.unbind(-1)
    if in_format == "xyxy":
        x0, y0, x1, y1 = a, b, c, d
    elif in_format == "xywh":
        x0, y0, x1, y1 = a, b, a + c, b + d
    else:
        x0, y0, x1, y1 = a - c / 2, b - d / 2, a + c / 2, b + d / 2
    if out_format == "xyxy":
        return torch.stack([x0, y0, x1, y1], dim=-1)
    if out_format == "xywh":
        return torch.stack([x0, y0, x1 - x0, y1 - y0], dim=-1)
    return torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], dim=-1)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Areas `(num_boxes,)` of xyxy boxes `(num_boxes, 4)`."""
    _check_xyxy(boxes, "boxes")
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _safe_divide(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    # Only zero-area boxes have a zero union or enclosing area, and then the numerator is 0 as well: the ratio is
    # taken as 0 instead of NaN, which would also poison every gradient of a batch.
    return numerator / denominator.clamp(min=torch.finfo(denominator.dtype).tiny)


def _intersection_and_union(boxes1: torch.Tensor, boxes2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    top_left = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    intersection = (bottom_right - top_left).clamp(min=0).prod(dim=-1)
    union = box_area(boxes1)[:, None] + box_area(boxes2)[None, :] - intersection
    return intersection, union


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    r"""
    Intersection over union of every pair: `(N, M)` for xyxy boxes `(N, 4)` and `(M, 4)`. Two zero-area boxes have
    IoU 0. Differentiable.
    """
    _check_xyxy(boxes1, "boxes1")
    _check_xyxy(boxes2, "boxes2")
    intersection, union = _intersection_and_union(boxes1, boxes2)
    return _safe_divide(intersection, union)


def generalized_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    r"""
    Generalized IoU (Rezatofighi et al. 2019) of every pair: `(N, M)` for xyxy boxes `(N, 4)` and `(M, 4)`.

    GIoU = IoU - (|C| - |A u B|) / |C|, with C the smallest box enclosing A and B. It lies in [-1, 1], never exceeds
    the IoU, and unlike the IoU keeps decreasing as disjoint boxes move apart, which gives a box regression loss
    1 - GIoU a gradient even when a prediction misses its target entirely (DETR's box loss).
    """
    _check_xyxy(boxes1, "boxes1")
    _check_xyxy(boxes2, "boxes2")
    intersection, union = _intersection_and_union(boxes1, boxes2)
    enclosing_top_left = torch.minimum(boxes1[:, None, :2], boxes2[None, :, :2])
    enclosing_bottom_right = torch.maximum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    enclosing = (enclosing_bottom_right - enclosing_top_left).prod(dim=-1)
    return _safe_divide(intersection, union) - _safe_divide(enclosing - union, enclosing)


def _check_detections(detections: list[dict], name: str, keys: tuple[str, ...]) -> None:
    for index, detection in enumerate(detections):
        missing = [key for key in keys if key not in detection]
        if missing:
            raise ValueError(f"{name}[{index}] lacks {missing}: each entry needs {keys}")
        num_boxes = detection["boxes"].shape[0]
        _check_xyxy(detection["boxes"], f"{name}[{index}]['boxes']")
        for key in keys[1:]:
            if detection[key].shape != (num_boxes,):
                raise ValueError(
                    f"{name}[{index}]['{key}'] must have shape ({num_boxes},) like its boxes, "
                    f"got {tuple(detection[key].shape)}"
                )
        if detection["labels"].dtype.is_floating_point:
            raise ValueError(f"{name}[{index}]['labels'] must be integer class ids, got {detection['labels'].dtype}")


def _average_precision(
    scores: torch.Tensor,
    image_ids: torch.Tensor,
    rows_in_image: torch.Tensor,
    ious: list[torch.Tensor],
    num_ground_truth: int,
    threshold: float,
) -> float:
    """COCO's 101-point AP of one class at one IoU threshold.

    Detection d of the class (over all images) has score `scores[d]` and is row `rows_in_image[d]` of
    `ious[image_ids[d]]`, the `(num_detections, num_ground_truth)` IoU matrix of that image for the class.
    """
    # A stable sort keeps equal scores in input order (image by image), as COCO's mergesort does.
    order = torch.argsort(scores, descending=True, stable=True)
    matched = [torch.zeros(iou.shape[1], dtype=torch.bool) for iou in ious]
    is_true_positive = torch.zeros(len(order), dtype=torch.bool)
    for rank, detection in enumerate(order.tolist()):
        image, row = int(image_ids[detection]), int(rows_in_image[detection])
        candidate_ious = ious[image][row].masked_fill(matched[image], -1.0)
        if candidate_ious.numel() == 0:
            continue
        best_iou, best_ground_truth = candidate_ious.max(dim=0)
        if best_iou >= threshold:
            matched[image][best_ground_truth] = True
            is_true_positive[rank] = True

    true_positives = is_true_positive.double().cumsum(0)
    false_positives = (~is_true_positive).double().cumsum(0)
    recall = true_positives / num_ground_truth
    precision = true_positives / (true_positives + false_positives)
    # Make precision non-increasing in recall: each point takes the best precision reachable at a higher recall.
    precision = precision.flip(0).cummax(0).values.flip(0)
    # Exact fractions i / 100, so a recall of exactly 0.5 reaches the 0.50 sampling point.
    recall_points = torch.arange(COCO_RECALL_POINTS, dtype=torch.float64) / (COCO_RECALL_POINTS - 1)
    first_reaching = torch.searchsorted(recall, recall_points, side="left")
    reached = first_reaching < len(recall)
    sampled = torch.zeros(COCO_RECALL_POINTS, dtype=torch.float64)
    sampled[reached] = precision[first_reaching[reached]]
    return sampled.mean().item()


def mean_average_precision(
    predictions: list[dict[str, torch.Tensor]],
    targets: list[dict[str, torch.Tensor]],
    iou_thresholds: tuple[float, ...] | None = None,
    num_classes: int | None = None,
) -> dict:
    r"""
    COCO-style mean average precision of box detections (Lin et al. 2014, the `bbox` protocol of `COCOeval`).

    For each class and IoU threshold, the class's detections over all images are sorted by score (descending, ties
    in input order) and matched greedily: each detection takes the not yet matched ground truth of its image and
    class with the highest IoU, if that IoU is at least the threshold; otherwise it is a false positive. The
    precision-recall curve is made monotone (precision at recall r becomes the best precision at any recall >= r)
    and sampled at the 101 recalls 0.00, 0.01, ..., 1.00 (0 beyond the highest recall reached); AP is the mean of
    the samples. Classes with no ground truth in any image are left out of every mean; their detections only ever
    match their own class, so they affect nothing.

    Unlike `COCOeval`, every detection is kept (COCO keeps the 100 highest-scoring per image), there are no crowd
    regions, and no area ranges (this is COCO's "all" area).

    Args:
        predictions (`list[dict[str, torch.Tensor]]`):
            One dict per image: `boxes` `(n, 4)` xyxy in any unit, `scores` `(n,)`, `labels` `(n,)` integer.
        targets (`list[dict[str, torch.Tensor]]`):
            One dict per image, same order: `boxes` `(m, 4)` xyxy in the unit of the predictions, `labels` `(m,)`.
        iou_thresholds (`tuple[float, ...]`, *optional*):
            Thresholds `"map"` averages over; COCO's ten, 0.50:0.05:0.95, by default.
        num_classes (`int`, *optional*):
            When given, every label must lie in [0, num_classes); the classes scored are still those with ground
            truth.

    Returns:
        `dict`: `"map"` (mean over `iou_thresholds` and classes), `"map_50"` and `"map_75"` (mean over classes at IoU
        0.50 and 0.75, whatever `iou_thresholds` is), and `"map_per_class"`, `{class_id: AP at IoU 0.50}` for every
        class with ground truth.
    """
    if len(predictions) != len(targets):
        raise ValueError(
            f"predictions and targets must have one entry per image, got {len(predictions)} and {len(targets)}"
        )
    _check_detections(predictions, "predictions", ("boxes", "scores", "labels"))
    _check_detections(targets, "targets", ("boxes", "labels"))
    iou_thresholds = COCO_IOU_THRESHOLDS if iou_thresholds is None else tuple(iou_thresholds)
    if len(iou_thresholds) == 0 or any(not 0 <= threshold <= 1 for threshold in iou_thresholds):
        raise ValueError(f"iou_thresholds must be a non-empty sequence of values in [0, 1], got {iou_thresholds}")
    if num_classes is not None:
        for name, entries in (("predictions", predictions), ("targets", targets)):
            for index, entry in enumerate(entries):
                labels = entry["labels"]
                if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
                    raise ValueError(
                        f"{name}[{index}]['labels'] must lie in [0, {num_classes}), got {labels.tolist()}"
                    )

    # IoUs do not depend on the threshold: compute them once per image and class, in float64 so that a box whose
    # IoU is exactly a threshold (0.6 = 60 / 100) compares as it should.
    predictions = [{key: value.detach().cpu() for key, value in entry.items()} for entry in predictions]
    targets = [{key: value.detach().cpu() for key, value in entry.items()} for entry in targets]
    classes = sorted(torch.cat([target["labels"] for target in targets]).unique().tolist())
    if not classes:
        raise ValueError("targets contain no ground-truth box: mean average precision is undefined")
    per_class = {}
    for class_id in classes:
        scores, image_ids, rows_in_image, ious, num_ground_truth = [], [], [], [], 0
        for image, (prediction, target) in enumerate(zip(predictions, targets, strict=True)):
            detected = prediction["labels"] == class_id
            num_detected = int(detected.sum())
            ground_truth = target["boxes"][target["labels"] == class_id].double()
            scores.append(prediction["scores"][detected])
            image_ids.append(torch.full((num_detected,), image))
            rows_in_image.append(torch.arange(num_detected))
            ious.append(box_iou(prediction["boxes"][detected].double(), ground_truth))
            num_ground_truth += ground_truth.shape[0]
        per_class[class_id] = (
            torch.cat(scores),
            torch.cat(image_ids),
            torch.cat(rows_in_image),
            ious,
            num_ground_truth,
        )

    def average_precisions(threshold: float) -> dict[int, float]:
        return {class_id: _average_precision(*per_class[class_id], threshold) for class_id in classes}

    ap_by_threshold = {threshold: average_precisions(threshold) for threshold in {*iou_thresholds, 0.5, 0.75}}
    num_classes_scored = len(classes)
    return {
        "map": sum(sum(ap_by_threshold[t].values()) for t in iou_thresholds)
        / (len(iou_thresholds) * num_classes_scored),
        "map_50": sum(ap_by_threshold[0.5].values()) / num_classes_scored,
        "map_75": sum(ap_by_threshold[0.75].values()) / num_classes_scored,
        "map_per_class": {int(class_id): ap for class_id, ap in ap_by_threshold[0.5].items()},
    }


__all__ = [
    "BOX_FORMATS",
    "COCO_IOU_THRESHOLDS",
    "box_area",
    "box_convert",
    "box_iou",
    "generalized_box_iou",
    "mean_average_precision",
]
