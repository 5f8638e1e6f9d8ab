"""mIoU against hand-counted cases: the confusion matrix, classes absent from a set, ignored pixels, and errors."""

import math

import pytest
import torch

from hfgen.metrics import iou_from_confusion, mean_iou, segmentation_confusion


def test_confusion_counts_target_rows_and_predicted_columns():
    targets = torch.tensor([[0, 0, 1], [1, 2, 2]])
    predictions = torch.tensor([[0, 1, 1], [1, 2, 0]])
    confusion = segmentation_confusion(predictions, targets, num_classes=3)
    assert confusion.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_iou_by_hand():
    targets = torch.tensor([[0, 0, 1], [1, 2, 2]])
    predictions = torch.tensor([[0, 1, 1], [1, 2, 0]])
    result = mean_iou(predictions, targets, num_classes=3)
    # class 0: 1 pixel both, union 3 (two targets, two predictions, one shared); class 1: 2 / 3; class 2: 1 / 2
    assert result["per_class_iou"] == pytest.approx([1 / 3, 2 / 3, 1 / 2])
    assert result["mean_iou"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert result["pixel_accuracy"] == pytest.approx(4 / 6)


def test_perfect_prediction_and_absent_classes():
    targets = torch.tensor([[0, 3], [3, 0]])
    result = mean_iou(targets.clone(), targets, num_classes=5)
    assert result["mean_iou"] == 1.0 and result["pixel_accuracy"] == 1.0
    # classes 1, 2 and 4 appear nowhere: no IoU, left out of the mean rather than counted as 0 or 1
    assert [math.isnan(value) for value in result["per_class_iou"]] == [False, True, True, False, True]


def test_a_class_predicted_but_absent_from_the_targets_scores_zero():
    targets = torch.zeros(2, 2, dtype=torch.long)
    predictions = torch.tensor([[0, 0], [0, 1]])
    result = mean_iou(predictions, targets, num_classes=2)
    assert result["per_class_iou"] == pytest.approx([3 / 4, 0.0])
    assert result["mean_iou"] == pytest.approx(3 / 8)


def test_the_set_is_scored_from_its_totals_not_per_image():
    # image A: class 1 fully right over 1 pixel; image B: class 1 one of 3 pixels right. Totals: 2 / 4 (per-image
    # averaging would give (1 + 1/3) / 2).
    targets = [torch.tensor([[1, 0]]), torch.tensor([[1, 1, 1]])]
    predictions = [torch.tensor([[1, 0]]), torch.tensor([[1, 0, 0]])]
    result = mean_iou(predictions, targets, num_classes=2)
    assert result["per_class_iou"][1] == pytest.approx(2 / 4)
    together = iou_from_confusion(
        sum(segmentation_confusion(p, t, 2) for p, t in zip(predictions, targets, strict=True))
    )
    assert together == result


def test_ignored_pixels_count_for_nothing():
    targets = torch.tensor([[0, 255], [1, 255]])
    predictions = torch.tensor([[0, 1], [1, 0]])
    result = mean_iou(predictions, targets, num_classes=2, ignore_index=255)
    assert result["mean_iou"] == 1.0


@pytest.mark.parametrize(
    ("predictions", "targets", "message"),
    [
        (torch.zeros(2, 3, dtype=torch.long), torch.zeros(3, 2, dtype=torch.long), "same shape"),
        (torch.zeros(2, 2), torch.zeros(2, 2, dtype=torch.long), "integer label maps"),
        (torch.full((2, 2), 4), torch.zeros(2, 2, dtype=torch.long), "predictions hold class ids from 4 to 4"),
        (torch.zeros(2, 2, dtype=torch.long), torch.full((2, 2), -1), "targets hold class ids from -1 to -1"),
    ],
)
def test_bad_label_maps_are_named(predictions, targets, message):
    with pytest.raises(ValueError, match=message):
        mean_iou(predictions, targets, num_classes=3)
