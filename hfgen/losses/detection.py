"""Set-prediction losses of open-vocabulary detection (OWL-ViT fine-tuning), as pure functions.

OWL-ViT (Minderer et al. 2022) predicts one box and one logit per class query for every image patch, and is trained
like DETR (Carion et al. 2020): each image's ground-truth boxes are matched one-to-one to predictions by the Hungarian
algorithm, matched predictions learn their target's class and box, and every other prediction learns "no object".
With sigmoid class scores, as OWL-ViT's, "no object" is simply all class targets at 0 (Deformable DETR, Zhu et al.
2021), and the class loss is a sigmoid focal loss.

Conventions: boxes are normalised `cxcywh` (centre and size, in [0, 1] of the image side), the format OWL-ViT
predicts; `class_logits` are raw scores before the sigmoid, one per query and class.
"""

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from hfgen.metrics.detection import box_convert, generalized_box_iou

CLASS_LOSSES = ("focal", "bce")
"""Names accepted by [`detection_matching_loss`]'s `class_loss`."""


def sigmoid_focal_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    num_boxes: float = 1.0,
) -> torch.Tensor:
    r"""
    Sigmoid focal loss (Lin et al. 2017), summed over all elements and divided by `num_boxes`.

    Per element, with p = sigmoid(logit) and p_t = p if the target is 1 else 1 - p, the loss is
    -alpha_t (1 - p_t)^gamma log(p_t), alpha_t = alpha for positives and 1 - alpha for negatives: the binary cross
    entropy scaled down on elements already classified well, so the many easy background queries do not swamp the few
    matched ones.

    The sum is divided by the number of target boxes rather than averaged over elements, as DETR-style detectors do
    (Deformable DETR's `sigmoid_focal_loss`): the loss then weighs each object equally however many queries and
    classes there are, and matches the normalisation of the box losses.

    Args:
        logits (`torch.Tensor`):
            Raw scores, any shape.
        targets (`torch.Tensor` of the same shape):
            Binary (or soft) targets in [0, 1].
        alpha (`float`, *optional*, defaults to 0.25):
            Weight of the positive elements; `None` weighs both classes by 1.
        gamma (`float`, *optional*, defaults to 2.0):
            Focusing exponent; 0 gives the (alpha-weighted) binary cross entropy.
        num_boxes (`float`, *optional*, defaults to 1.0):
            Divisor of the sum, the number of target boxes in the batch (at least 1).
    """
    if logits.shape != targets.shape:
        raise ValueError(
            f"logits and targets must have the same shape, got {tuple(logits.shape)} and {tuple(targets.shape)}"
        )
    if num_boxes <= 0:
        raise ValueError(f"num_boxes must be positive, got {num_boxes}")
    targets = targets.to(logits.dtype)
    probabilities = logits.sigmoid()
    cross_entropy = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = probabilities * targets + (1 - probabilities) * (1 - targets)
    loss = cross_entropy * (1 - p_t) ** gamma
    if alpha is not None:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return loss.sum() / num_boxes


def _check_cxcywh(boxes: torch.Tensor, name: str) -> None:
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"{name} must have shape (num_boxes, 4), got {tuple(boxes.shape)}")
    if (boxes[:, 2:] < 0).any():
        raise ValueError(f"{name} has boxes of negative width or height: boxes must be cxcywh")


def _generalized_box_iou_cxcywh(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    return generalized_box_iou(box_convert(boxes1, "cxcywh", "xyxy"), box_convert(boxes2, "cxcywh", "xyxy"))


def hungarian_match(
    class_logits: torch.Tensor,
    pred_boxes: torch.Tensor,
    target_labels: torch.Tensor,
    target_boxes: torch.Tensor,
    class_weight: float = 2.0,
    l1_weight: float = 5.0,
    giou_weight: float = 2.0,
    focal: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""
    One-to-one assignment of one image's targets to its predictions of least total cost (DETR's matcher).

    The cost of giving target j to query i is `class_weight * class_cost + l1_weight * L1 - giou_weight * GIoU`:

    - class cost, with p the sigmoid of query i's logit for target j's class: when `focal`, Deformable DETR's
      focal-style cost alpha (1 - p)^gamma (-log p) - (1 - alpha) p^gamma (-log(1 - p)) with alpha = 0.25, gamma = 2
      (the focal loss of labelling the query positive minus that of labelling it negative); otherwise -p;
    - L1: sum of absolute differences of the cxcywh coordinates;
    - GIoU: the generalized IoU of the two boxes (see [`hfgen.metrics.detection.generalized_box_iou`]).

    The defaults are the cost weights of Deformable DETR and OWL-ViT's fine-tuning. The problem is solved exactly
    with `scipy.optimize.linear_sum_assignment`, on the CPU and without gradients.

    Args:
        class_logits (`torch.Tensor` of shape `(num_queries, num_classes)`):
            Raw class scores of every query.
        pred_boxes (`torch.Tensor` of shape `(num_queries, 4)`):
            Predicted boxes, normalised cxcywh.
        target_labels (`torch.Tensor` of shape `(num_targets,)`):
            Integer class of every target box.
        target_boxes (`torch.Tensor` of shape `(num_targets, 4)`):
            Target boxes, normalised cxcywh, on the device of `pred_boxes`.

    Returns:
        `tuple[torch.Tensor, torch.Tensor]`: `(pred_indices, target_indices)`, long tensors of length `num_targets`
        on the device of `class_logits`, sorted by prediction index: target `target_indices[k]` goes to query
        `pred_indices[k]`. Both are empty when there are no targets.
    """
    if class_logits.ndim != 2:
        raise ValueError(f"class_logits must have shape (num_queries, num_classes), got {tuple(class_logits.shape)}")
    num_queries, num_classes = class_logits.shape
    _check_cxcywh(pred_boxes, "pred_boxes")
    _check_cxcywh(target_boxes, "target_boxes")
    if pred_boxes.shape[0] != num_queries:
        raise ValueError(f"pred_boxes must have {num_queries} rows like class_logits, got {tuple(pred_boxes.shape)}")
    num_targets = target_boxes.shape[0]
    if target_labels.shape != (num_targets,):
        raise ValueError(
            f"target_labels must have shape ({num_targets},) like target_boxes, got {tuple(target_labels.shape)}"
        )
    if num_targets > num_queries:
        raise ValueError(f"{num_targets} targets cannot be matched one-to-one to {num_queries} queries")
    if num_targets and (target_labels.min() < 0 or target_labels.max() >= num_classes):
        raise ValueError(f"target_labels must lie in [0, {num_classes}), got {target_labels.tolist()}")
    empty = torch.empty(0, dtype=torch.long, device=class_logits.device)
    if num_targets == 0:
        return empty, empty.clone()

    with torch.no_grad():
        logits = class_logits[:, target_labels].float()
        if focal:
            alpha, gamma = 0.25, 2.0
            probabilities = logits.sigmoid()
            # -log p = softplus(-logit) and -log(1 - p) = softplus(logit), stable for large logits.
            positive_cost = alpha * (1 - probabilities) ** gamma * F.softplus(-logits)
            negative_cost = (1 - alpha) * probabilities**gamma * F.softplus(logits)
            class_cost = positive_cost - negative_cost
        else:
            class_cost = -logits.sigmoid()
        l1_cost = torch.cdist(pred_boxes.float(), target_boxes.float(), p=1)
        giou_cost = -_generalized_box_iou_cxcywh(pred_boxes.float(), target_boxes.float())
        cost = class_weight * class_cost + l1_weight * l1_cost + giou_weight * giou_cost
    pred_indices, target_indices = linear_sum_assignment(cost.cpu().numpy())
    # linear_sum_assignment returns the rows (queries) in increasing order.
    return (
        torch.as_tensor(pred_indices, dtype=torch.long, device=class_logits.device),
        torch.as_tensor(target_indices, dtype=torch.long, device=class_logits.device),
    )


def detection_matching_loss(
    class_logits: torch.Tensor,
    pred_boxes: torch.Tensor,
    targets: list[dict[str, torch.Tensor]],
    class_loss: str = "focal",
    class_weight: float = 2.0,
    l1_weight: float = 5.0,
    giou_weight: float = 2.0,
    focal_alpha: float = 0.25,
    focal_gamma: float = 2.0,
) -> dict[str, torch.Tensor]:
    r"""
    DETR-style set loss of a batch: Hungarian matching, then class, L1 and GIoU losses.

    1. Every image is matched with [`hungarian_match`], using the same three weights as costs (focal class cost when
       `class_loss="focal"`, with alpha 0.25 and gamma 2 whatever `focal_alpha` and `focal_gamma` are, as in
       Deformable DETR's matcher).
    2. Class targets are one-hot at the target's class for matched queries and all zero for every other query (an
       unmatched query is background). The class loss is [`sigmoid_focal_loss`] summed and divided by the number
       of target boxes (`"focal"`), or the binary cross entropy with logits averaged over all elements (`"bce"`).
    3. The box losses are computed over matched pairs: the L1 distance of the cxcywh coordinates and 1 - GIoU, each
       summed and divided by the number of target boxes in the batch (at least 1, so an image without objects
       gives 0 box loss and only a background class loss).

    Args:
        class_logits (`torch.Tensor` of shape `(batch, num_queries, num_classes)`):
            Raw class scores of every query.
        pred_boxes (`torch.Tensor` of shape `(batch, num_queries, 4)`):
            Predicted boxes, normalised cxcywh.
        targets (`list[dict[str, torch.Tensor]]`):
            One dict per image: `labels` `(num_targets,)` long, `boxes` `(num_targets, 4)` normalised cxcywh.
        class_loss (`str`, *optional*, defaults to `"focal"`):
            `"focal"` or `"bce"`.
        class_weight, l1_weight, giou_weight (`float`, *optional*, default to 2.0, 5.0 and 2.0):
            Weights of the three terms in the total and in the matching cost (Deformable DETR's).
        focal_alpha, focal_gamma (`float`, *optional*, default to 0.25 and 2.0):
            Parameters of the focal class loss.

    Returns:
        `dict[str, torch.Tensor]`: `"loss"` (the weighted total to minimise), and the unweighted `"loss_class"`,
        `"loss_l1"` and `"loss_giou"`.
    """
    if class_loss not in CLASS_LOSSES:
        raise ValueError(f"unknown class_loss {class_loss!r}: choose one of {CLASS_LOSSES}")
    if class_logits.ndim != 3:
        raise ValueError(
            f"class_logits must have shape (batch, num_queries, num_classes), got {tuple(class_logits.shape)}"
        )
    batch_size, num_queries, _ = class_logits.shape
    if pred_boxes.shape != (batch_size, num_queries, 4):
        raise ValueError(
            f"pred_boxes must have shape ({batch_size}, {num_queries}, 4) to match class_logits, "
            f"got {tuple(pred_boxes.shape)}"
        )
    if len(targets) != batch_size:
        raise ValueError(f"targets must have one dict per image ({batch_size}), got {len(targets)}")

    class_targets = torch.zeros_like(class_logits)
    matched_pred_boxes, matched_target_boxes = [], []
    for image, target in enumerate(targets):
        if "labels" not in target or "boxes" not in target:
            raise ValueError(f"targets[{image}] needs 'labels' and 'boxes', got keys {sorted(target)}")
        # Datasets collate targets on the CPU: they follow the predictions so matching and indexing share a device.
        target_labels = target["labels"].to(class_logits.device)
        target_boxes = target["boxes"].to(device=pred_boxes.device, dtype=pred_boxes.dtype)
        pred_indices, target_indices = hungarian_match(
            class_logits[image],
            pred_boxes[image],
            target_labels,
            target_boxes,
            class_weight=class_weight,
            l1_weight=l1_weight,
            giou_weight=giou_weight,
            focal=class_loss == "focal",
        )
        class_targets[image, pred_indices, target_labels[target_indices]] = 1.0
        matched_pred_boxes.append(pred_boxes[image, pred_indices])
        matched_target_boxes.append(target_boxes[target_indices])
    matched_pred_boxes = torch.cat(matched_pred_boxes)
    matched_target_boxes = torch.cat(matched_target_boxes)
    num_boxes = max(matched_target_boxes.shape[0], 1)

    if class_loss == "focal":
        loss_class = sigmoid_focal_loss(
            class_logits, class_targets, alpha=focal_alpha, gamma=focal_gamma, num_boxes=num_boxes
        )
    else:
        loss_class = F.binary_cross_entropy_with_logits(class_logits, class_targets)
    loss_l1 = (matched_pred_boxes - matched_target_boxes).abs().sum() / num_boxes
    # The pairs are the diagonal of the pairwise matrix; there is one per target box, so the matrix stays small.
    giou = _generalized_box_iou_cxcywh(matched_pred_boxes, matched_target_boxes).diagonal()
    loss_giou = (1 - giou).sum() / num_boxes
    return {
        "loss": class_weight * loss_class + l1_weight * loss_l1 + giou_weight * loss_giou,
        "loss_class": loss_class,
        "loss_l1": loss_l1,
        "loss_giou": loss_giou,
    }


__all__ = ["CLASS_LOSSES", "detection_matching_loss", "hungarian_match", "sigmoid_focal_loss"]
