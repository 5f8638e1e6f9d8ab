import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from hfgen.losses import detection_matching_loss, hungarian_match, sigmoid_focal_loss
from hfgen.metrics import box_convert, generalized_box_iou


def random_cxcywh(num_boxes: int, generator: torch.Generator) -> torch.Tensor:
    centres = torch.rand(num_boxes, 2, generator=generator) * 0.5 + 0.25
    sizes = torch.rand(num_boxes, 2, generator=generator) * 0.3 + 0.05
    return torch.cat([centres, sizes], dim=1)


def matching_cost(class_logits, pred_boxes, target_labels, target_boxes, focal: bool) -> torch.Tensor:
    """The matcher's cost written out independently: 2 * class + 5 * L1 - 2 * GIoU."""
    p = class_logits[:, target_labels].sigmoid()
    if focal:
        class_cost = 0.25 * (1 - p) ** 2 * -torch.log(p) - 0.75 * p**2 * -torch.log(1 - p)
    else:
        class_cost = -p
    l1 = (pred_boxes[:, None, :] - target_boxes[None, :, :]).abs().sum(-1)
    giou = generalized_box_iou(box_convert(pred_boxes, "cxcywh", "xyxy"), box_convert(target_boxes, "cxcywh", "xyxy"))
    return 2 * class_cost + 5 * l1 - 2 * giou


@pytest.mark.parametrize("focal", [True, False])
def test_hungarian_match_finds_the_brute_force_optimum(focal):
    num_queries, num_classes, num_targets = 5, 4, 3
    for seed in range(5):
        generator = torch.Generator().manual_seed(seed)
        class_logits = torch.randn(num_queries, num_classes, generator=generator) * 2
        pred_boxes = random_cxcywh(num_queries, generator)
        target_labels = torch.randint(num_classes, (num_targets,), generator=generator)
        target_boxes = random_cxcywh(num_targets, generator)
        pred_indices, target_indices = hungarian_match(
            class_logits, pred_boxes, target_labels, target_boxes, focal=focal
        )
        assert pred_indices.dtype == target_indices.dtype == torch.long
        assert pred_indices.tolist() == sorted(pred_indices.tolist())
        assert sorted(target_indices.tolist()) == list(range(num_targets))
        cost = matching_cost(class_logits, pred_boxes, target_labels, target_boxes, focal)
        matched_cost = cost[pred_indices, target_indices].sum().item()
        # Target j goes to query queries[j], over every ordered choice of 3 distinct queries among 5.
        brute_force = min(
            sum(cost[query, target].item() for target, query in enumerate(queries))
            for queries in itertools.permutations(range(num_queries), num_targets)
        )
        assert matched_cost == pytest.approx(brute_force, abs=1e-5), seed


def test_hungarian_match_without_targets_is_empty():
    pred_indices, target_indices = hungarian_match(
        torch.randn(4, 3), torch.full((4, 4), 0.5), torch.zeros(0, dtype=torch.long), torch.zeros(0, 4)
    )
    assert pred_indices.shape == target_indices.shape == (0,)
    assert pred_indices.dtype == target_indices.dtype == torch.long


def test_hungarian_match_rejects_more_targets_than_queries():
    with pytest.raises(ValueError, match="3 targets cannot be matched"):
        hungarian_match(torch.randn(2, 3), torch.full((2, 4), 0.5), torch.zeros(3, dtype=torch.long), torch.rand(3, 4))


def test_sigmoid_focal_loss_by_hand():
    logits = torch.tensor([0.0, 2.0])
    targets = torch.tensor([1.0, 0.0])
    # Element 0: p = 0.5, a positive: 0.25 * (1 - 0.5)^2 * -log(0.5).
    first = 0.25 * 0.5**2 * math.log(2)
    # Element 1: p = sigmoid(2), a negative, p_t = 1 - p: 0.75 * p^2 * -log(1 - p).
    p = 1 / (1 + math.exp(-2))
    second = 0.75 * p**2 * -math.log(1 - p)
    assert sigmoid_focal_loss(logits, targets, num_boxes=2).item() == pytest.approx((first + second) / 2)
    # gamma = 0 without alpha is the summed binary cross entropy.
    assert sigmoid_focal_loss(logits, targets, alpha=None, gamma=0.0).item() == pytest.approx(
        F.binary_cross_entropy_with_logits(logits, targets, reduction="sum").item()
    )


def perfect_batch():
    """Two images, 4 queries, 3 classes: the targets sit exactly on some queries, whose logits are confident."""
    targets = [
        {"labels": torch.tensor([2, 0]), "boxes": torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.7, 0.6, 0.3, 0.4]])},
        {"labels": torch.tensor([1]), "boxes": torch.tensor([[0.5, 0.5, 0.5, 0.5]])},
    ]
    pred_boxes = torch.full((2, 4, 4), 0.1)
    pred_boxes[:, :, :2] = 0.9
    pred_boxes[0, 1], pred_boxes[0, 3], pred_boxes[1, 2] = (
        targets[0]["boxes"][0],
        targets[0]["boxes"][1],
        targets[1]["boxes"][0],
    )
    class_logits = torch.full((2, 4, 3), -12.0)
    class_logits[0, 1, 2] = class_logits[0, 3, 0] = class_logits[1, 2, 1] = 12.0
    return class_logits, pred_boxes, targets


def test_matching_loss_of_perfect_predictions_is_near_zero():
    class_logits, pred_boxes, targets = perfect_batch()
    losses = detection_matching_loss(class_logits, pred_boxes, targets)
    assert losses["loss_l1"].item() == pytest.approx(0.0, abs=1e-6)
    assert losses["loss_giou"].item() == pytest.approx(0.0, abs=1e-6)
    assert losses["loss_class"].item() < 1e-6
    assert losses["loss"].item() < 1e-5


def test_matching_loss_gradients_reach_logits_and_matched_boxes():
    class_logits, pred_boxes, targets = perfect_batch()
    generator = torch.Generator().manual_seed(0)
    class_logits = (torch.randn(class_logits.shape, generator=generator)).requires_grad_(True)
    pred_boxes = (pred_boxes + 0.02 * torch.randn(pred_boxes.shape, generator=generator)).requires_grad_(True)
    losses = detection_matching_loss(class_logits, pred_boxes, targets)
    assert losses["loss_l1"].item() > 0 and losses["loss_giou"].item() > 0
    losses["loss"].backward()
    assert (class_logits.grad != 0).all()  # every query learns its class or background
    # Only the matched queries (those nearest the targets) receive a box gradient.
    matched = torch.zeros(2, 4, dtype=torch.bool)
    matched[0, 1] = matched[0, 3] = matched[1, 2] = True
    assert (pred_boxes.grad[matched].abs().sum(-1) > 0).all()
    assert (pred_boxes.grad[~matched] == 0).all()


def test_bce_class_loss_is_the_mean_over_one_hot_targets():
    class_logits, pred_boxes, targets = perfect_batch()
    class_logits = class_logits / 6  # logits of +-2, so the loss is far from 0
    losses = detection_matching_loss(class_logits, pred_boxes, targets, class_loss="bce")
    one_hot = (class_logits > 0).float()
    expected = F.binary_cross_entropy_with_logits(class_logits, one_hot)
    torch.testing.assert_close(losses["loss_class"], expected)
    torch.testing.assert_close(losses["loss"], 2 * expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="unknown class_loss"):
        detection_matching_loss(class_logits, pred_boxes, targets, class_loss="softmax")
