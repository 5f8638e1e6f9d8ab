"""Latent interpolation shared by the pipelines, against closed forms."""

import math

import pytest
import torch

from hfgen.pipelines.interpolation import interpolation_path, slerp


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_slerp_of_orthogonal_unit_vectors():
    start, end = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    middle = slerp(start, end, 0.5)
    assert middle.norm().item() == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(middle, torch.tensor([1.0, 1.0, 0.0]) / math.sqrt(2), atol=1e-6)
    assert torch.allclose(slerp(start, end, 0.0), start, atol=1e-6)
    assert torch.allclose(slerp(start, end, 1.0), end, atol=1e-6)
    third = slerp(start, end, 1 / 3)  # a third of the 90 degree arc: 30 degrees from start
    assert torch.allclose(third, torch.tensor([math.cos(math.pi / 6), math.sin(math.pi / 6), 0.0]), atol=1e-6)


def test_slerp_keeps_the_shape_and_falls_back_to_lerp_for_parallel_vectors():
    start = torch.randn(2, 4, 4, generator=seeded(0))
    assert slerp(start, torch.randn(2, 4, 4, generator=seeded(1)), 0.3).shape == (2, 4, 4)
    assert torch.allclose(slerp(start, 3 * start, 0.5), 2 * start, atol=1e-6)


def test_interpolation_path_includes_both_ends_and_checks_its_arguments():
    start, end = torch.zeros(3), torch.ones(3)
    path = interpolation_path(start, end, 5, "linear")
    assert path.shape == (5, 3)
    assert torch.allclose(path[:, 0], torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]))
    with pytest.raises(ValueError, match="method must be one of"):
        interpolation_path(start, end, 5, "cubic")
    for bad in (1, 2.5, True):
        with pytest.raises(ValueError, match="num_steps must be an int of at least 2"):
            interpolation_path(start, end, bad, "linear")
