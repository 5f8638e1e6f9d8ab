"""Control maps on images whose maps are known: a bright square on black."""

import numpy as np
import pytest
import torch

from hfgen.data.control import (
    CONTROL_TYPES,
    blurred_image,
    canny_edges,
    control_maps,
    foreground_mask,
    otsu_threshold,
    sobel_edges,
)


def square(size: int = 16, low: int = 4, high: int = 12) -> np.ndarray:
    image = np.zeros((size, size), dtype=np.float32)
    image[low:high, low:high] = 1.0
    return image


def test_canny_finds_the_one_pixel_outline_of_a_square():
    edges = canny_edges(square(), sigma=0.0)
    assert set(np.unique(edges)) == {0.0, 1.0}
    # thin: the outline lies on the square's border rows / columns (inside or just outside), one pixel wide
    rows, columns = np.nonzero(edges)
    assert rows.min() >= 3 and rows.max() <= 12 and columns.min() >= 3 and columns.max() <= 12
    assert edges[6:10, 6:10].sum() == 0  # nothing inside
    for row in range(5, 11):  # each side row crosses the outline at exactly 2 places
        assert edges[row].sum() == 2
    # no edges on a flat image; a faint step below the low threshold is no edge either
    assert canny_edges(np.full((16, 16), 0.5)).sum() == 0
    assert canny_edges(square() * 0.05, low_threshold=0.1, high_threshold=0.2, sigma=0.0).sum() == 0


def test_canny_hysteresis_keeps_weak_edges_connected_to_strong_ones():
    # a vertical step whose height fades from 1 (bottom row) to 0.1 (top row): one connected edge, strong below
    image = np.zeros((16, 24), dtype=np.float32)
    image[:, 12:] = np.linspace(0.1, 1.0, 16)[:, None]
    connected = canny_edges(image, low_threshold=0.05, high_threshold=0.5, sigma=0.0)
    strong_only = canny_edges(image, low_threshold=0.5, high_threshold=0.5, sigma=0.0)
    assert connected[:, 11:13].max(axis=1).all()  # the whole step, weak part included
    assert 0 < strong_only.sum() < 16 and strong_only[:4].sum() == 0
    # a weak step alone, connected to no strong one, is dropped
    assert canny_edges(image * 0.3, low_threshold=0.05, high_threshold=0.5, sigma=0.0).sum() == 0
    with pytest.raises(ValueError, match="0 <= low <= high"):
        canny_edges(image, low_threshold=0.3, high_threshold=0.2)


def test_sobel_mask_blur_and_otsu():
    edges = sobel_edges(square())
    assert edges[6:10, 6:10].sum() == 0 and edges[:2].sum() == 0 and edges[4, 8] == 1
    assert np.array_equal(foreground_mask(square()), square())
    assert np.array_equal(foreground_mask(square() * 0.6 + 0.2), square())  # Otsu finds the split
    assert foreground_mask(np.full((8, 8), 0.7)).sum() == 0
    assert 0.0 < otsu_threshold(square()) < 1.0
    blurred = blurred_image(square(), sigma=2.0)
    assert blurred.max() < 1.0 and blurred[0, 0] < blurred[8, 8] and abs(blurred.mean() - square().mean()) < 0.02
    assert np.allclose(blurred_image(np.full((8, 8), 0.3)), 0.3)


def test_control_maps_of_a_batch():
    image = torch.from_numpy(square()) * 2 - 1
    batch = torch.stack([image, -image])[:, None]  # (2, 1, 16, 16) in [-1, 1]
    for control_type in CONTROL_TYPES:
        maps = control_maps(batch, control_type)
        assert maps.shape == (2, 3, 16, 16) and maps.min() >= 0 and maps.max() <= 1
        assert torch.equal(maps[:, 0], maps[:, 2])
    masks = control_maps(batch, "mask", channels=1)
    assert masks.shape == (2, 1, 16, 16)
    assert torch.equal(masks[0, 0], torch.from_numpy(square())) and torch.equal(masks[1, 0], 1 - masks[0, 0])
    rgb = batch.expand(-1, 3, -1, -1)
    assert torch.equal(control_maps(rgb, "canny"), control_maps(batch, "canny"))
    with pytest.raises(ValueError, match="unknown control type 'depth'"):
        control_maps(batch, "depth")
