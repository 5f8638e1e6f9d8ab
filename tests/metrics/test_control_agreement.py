"""Control agreement: edge F1 with a tolerance, mask IoU and blur PSNR on maps whose scores are known."""

import numpy as np
import pytest
import torch

from hfgen.data.control import control_maps
from hfgen.metrics.control import blur_psnr, control_agreement, edge_f1, mask_iou


def line(column: int, size: int = 10) -> np.ndarray:
    edges = np.zeros((size, size))
    edges[:, column] = 1
    return edges


def test_edge_f1_with_and_without_tolerance():
    assert edge_f1(line(4), line(4), tolerance=0) == 1.0
    assert edge_f1(line(4), line(5), tolerance=0) == 0.0
    assert edge_f1(line(4), line(5), tolerance=1) == 1.0
    assert edge_f1(line(4), line(6), tolerance=1) == 0.0
    # half the generated edges are spurious: precision 1/2, recall 1, F1 2/3
    assert edge_f1(line(2), np.maximum(line(2), line(7)), tolerance=1) == pytest.approx(2 / 3)
    empty = np.zeros((10, 10))
    assert edge_f1(empty, empty) == 1.0 and edge_f1(empty, line(3)) == 0.0 and edge_f1(line(3), empty) == 0.0


def test_mask_iou_and_blur_psnr():
    left, right = np.zeros((4, 4)), np.zeros((4, 4))
    left[:, :2], right[:, 1:3] = 1, 1
    assert mask_iou(left, left) == 1.0 and mask_iou(left, right) == pytest.approx(4 / 12)
    assert mask_iou(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0
    assert blur_psnr(np.full((4, 4), 0.5), np.full((4, 4), 0.6)) == pytest.approx(20.0)
    assert blur_psnr(left, left) == 100.0


def test_images_agree_with_their_own_maps_and_less_with_others(digit_batch):
    images = digit_batch[:8]
    shuffled = images.roll(1, dims=0)
    for control_type, own in (("canny", 1.0), ("sobel", 1.0), ("mask", 1.0), ("blur", 100.0)):
        maps = control_maps(images, control_type)
        assert torch.allclose(control_agreement(maps, images, control_type), torch.tensor(own))
        assert control_agreement(maps, shuffled, control_type).mean() < own
    with pytest.raises(ValueError, match="do not match generated images"):
        control_agreement(control_maps(images, "canny"), images[:4], "canny")
