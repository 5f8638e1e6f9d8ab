import pytest
import torch

from hfgen.metrics import box_area, box_convert, box_iou, generalized_box_iou, mean_average_precision


def random_xyxy(num_boxes: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    corners = torch.rand(num_boxes, 2, generator=generator) * 10
    sizes = torch.rand(num_boxes, 2, generator=generator) * 5 + 0.1
    return torch.cat([corners, corners + sizes], dim=1)


def test_box_convert_by_hand_and_round_trips():
    xyxy = torch.tensor([[1.0, 2.0, 5.0, 8.0]])
    assert box_convert(xyxy, "xyxy", "xywh").tolist() == [[1.0, 2.0, 4.0, 6.0]]
    assert box_convert(xyxy, "xyxy", "cxcywh").tolist() == [[3.0, 5.0, 4.0, 6.0]]
    boxes = random_xyxy(6, seed=0)
    for box_format in ("xywh", "cxcywh"):
        torch.testing.assert_close(box_convert(box_convert(boxes, "xyxy", box_format), box_format, "xyxy"), boxes)
    torch.testing.assert_close(
        box_convert(box_convert(boxes, "xyxy", "xywh"), "xywh", "cxcywh"), box_convert(boxes, "xyxy", "cxcywh")
    )
    with pytest.raises(ValueError, match="out_format"):
        box_convert(boxes, "xyxy", "yxyx")


def test_iou_and_giou_by_hand():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    overlapping = torch.tensor([[1.0, 1.0, 3.0, 3.0]])
    disjoint = torch.tensor([[3.0, 0.0, 4.0, 2.0]])
    assert box_area(torch.cat([a, disjoint])).tolist() == [4.0, 2.0]
    # Overlap 1x1, union 4 + 4 - 1 = 7; the enclosing box [0, 3] x [0, 3] has area 9.
    assert box_iou(a, overlapping).item() == pytest.approx(1 / 7)
    assert generalized_box_iou(a, overlapping).item() == pytest.approx(1 / 7 - (9 - 7) / 9)
    # Disjoint: no overlap, union 4 + 2 = 6, enclosing [0, 4] x [0, 2] = 8.
    assert box_iou(a, disjoint).item() == 0.0
    assert generalized_box_iou(a, disjoint).item() == pytest.approx(-(8 - 6) / 8)
    assert box_iou(a, a).item() == generalized_box_iou(a, a).item() == 1.0


def test_iou_properties_on_random_boxes():
    boxes1, boxes2 = random_xyxy(7, seed=1), random_xyxy(5, seed=2)
    iou, giou = box_iou(boxes1, boxes2), generalized_box_iou(boxes1, boxes2)
    assert iou.shape == giou.shape == (7, 5)
    torch.testing.assert_close(box_iou(boxes2, boxes1), iou.T)
    torch.testing.assert_close(generalized_box_iou(boxes2, boxes1), giou.T)
    assert ((iou >= 0) & (iou <= 1)).all()
    assert ((giou >= -1) & (giou <= 1)).all()
    assert (giou <= iou + 1e-6).all()
    assert (giou < 0).any()  # some random pairs are far apart: the test would not see a broken penalty otherwise


def test_degenerate_boxes_name_the_argument():
    good = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    flipped = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    with pytest.raises(ValueError, match="boxes2 has degenerate"):
        box_iou(good, flipped)
    with pytest.raises(ValueError, match="boxes1 has degenerate"):
        generalized_box_iou(flipped, good)


def detections(boxes, scores, labels) -> dict[str, torch.Tensor]:
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "scores": torch.tensor(scores, dtype=torch.float32),
        "labels": torch.tensor(labels, dtype=torch.long),
    }


def ground_truth(boxes, labels) -> dict[str, torch.Tensor]:
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "labels": torch.tensor(labels)}


def test_perfect_predictions_score_one():
    targets = [
        ground_truth([[0, 0, 10, 10], [20, 20, 40, 30]], [0, 1]),
        ground_truth([[5, 5, 15, 25]], [1]),
    ]
    predictions = [
        detections([[0, 0, 10, 10], [20, 20, 40, 30]], [0.9, 0.8], [0, 1]),
        detections([[5, 5, 15, 25]], [0.7], [1]),
    ]
    result = mean_average_precision(predictions, targets, num_classes=2)
    assert result["map"] == result["map_50"] == result["map_75"] == pytest.approx(1.0)
    assert result["map_per_class"] == {0: pytest.approx(1.0), 1: pytest.approx(1.0)}


def test_average_precision_with_a_false_positive_between_true_positives():
    ground_truth_boxes = [[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]]
    targets = [ground_truth(ground_truth_boxes, [0, 0, 0])]
    false_positive = [70, 70, 80, 80]
    boxes = [ground_truth_boxes[0], false_positive, ground_truth_boxes[1], ground_truth_boxes[2]]
    predictions = [detections(boxes, [0.9, 0.8, 0.7, 0.6], [0, 0, 0, 0])]
    # By score: TP, FP, TP, TP. Recall 1/3, 1/3, 2/3, 1; precision 1, 1/2, 2/3, 3/4; made monotone (running max
    # from the right): 1, 3/4, 3/4, 3/4. Of the 101 recall points, 0.00 .. 0.33 (34 points) read precision 1 and
    # 0.34 .. 1.00 (67 points) read 3/4. Without the running max, 0.34 .. 0.66 would read 2/3.
    expected = (34 * 1.0 + 67 * 3 / 4) / 101
    result = mean_average_precision(predictions, targets)
    assert result["map_50"] == pytest.approx(expected)
    assert result["map"] == pytest.approx(expected)  # every match has IoU 1: the same at all thresholds
    # Ranking the false positive last instead gives precision 1 up to recall 1.
    reordered = [detections(boxes, [0.9, 0.5, 0.7, 0.6], [0, 0, 0, 0])]
    assert mean_average_precision(reordered, targets)["map_50"] == pytest.approx(1.0)


def test_missed_ground_truth_caps_recall():
    targets = [ground_truth([[0, 0, 10, 10]], [0]), ground_truth([[20, 20, 30, 30]], [0])]
    predictions = [detections([[0, 0, 10, 10]], [0.9], [0]), detections([], [], [])]
    # Recall stops at 1/2 with precision 1: the 51 points 0.00 .. 0.50 read 1, the other 50 read 0.
    assert mean_average_precision(predictions, targets)["map_50"] == pytest.approx(51 / 101)


def test_classes_without_ground_truth_are_left_out():
    targets = [ground_truth([[0, 0, 10, 10]], [0])]
    predictions = [detections([[0, 0, 10, 10], [30, 30, 40, 40]], [0.9, 0.95], [0, 3])]
    result = mean_average_precision(predictions, targets, num_classes=4)
    assert result["map"] == pytest.approx(1.0)
    assert result["map_per_class"] == {0: pytest.approx(1.0)}
    with pytest.raises(ValueError, match="must lie in"):
        mean_average_precision(predictions, targets, num_classes=3)


def test_a_box_of_iou_0_6_counts_up_to_threshold_0_6():
    targets = [ground_truth([[0, 0, 10, 10]], [0])]
    predictions = [detections([[0, 0, 10, 6]], [0.9], [0])]  # overlap 60, union 100
    result = mean_average_precision(predictions, targets)
    # A match at thresholds 0.50, 0.55, 0.60 (IoU >= threshold), a miss at the seven from 0.65 to 0.95.
    assert result["map_50"] == pytest.approx(1.0)
    assert result["map_75"] == 0.0
    assert result["map"] == pytest.approx(3 / 10)
