import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from sklearn.neighbors import NearestNeighbors
from torch import nn

from hfgen.metrics import ManifoldPrecisionRecall, manifold_precision_recall


class Flatten(nn.Module):
    """Identity feature extractor: `(batch, dim, 1, 1)` "images" are their own features."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1)


def gaussian(num: int, dim: int, mean: float, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(num, dim, generator=generator, dtype=torch.float64) + mean


def reference_precision_recall(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    """Independent implementation: scikit-learn's k-NN for the radii, scipy's pairwise distances for the balls."""
    # k + 1 neighbours, because a point queried against its own set finds itself first.
    real_radii = NearestNeighbors(n_neighbors=k + 1).fit(real).kneighbors(real)[0][:, -1]
    fake_radii = NearestNeighbors(n_neighbors=k + 1).fit(fake).kneighbors(fake)[0][:, -1]
    precision = (cdist(fake, real) <= real_radii[None, :]).any(axis=1).mean()
    recall = (cdist(real, fake) <= fake_radii[None, :]).any(axis=1).mean()
    return precision, recall


def test_identical_sets_have_precision_and_recall_one():
    points = gaussian(300, 8, 0.0, seed=0)
    precision, recall = manifold_precision_recall(points, points.clone())
    assert precision.item() == 1.0 and recall.item() == 1.0


def test_a_concentrated_subset_is_precise_but_has_low_recall():
    # Real: a 2-D grid over the unit square. Fake: the real points in the left tenth of the square.
    axis = torch.linspace(0, 1, 30, dtype=torch.float64)
    real = torch.cartesian_prod(axis, axis)
    fake = real[real[:, 0] < 0.1]
    precision, recall = manifold_precision_recall(real, fake)
    # Every fake point is a real point, so it lies in its own real ball.
    assert precision.item() == 1.0
    # The fake balls (radius ~ 1.4 grid steps) reach a column or so past the subset: about 4 of 30 columns.
    assert 0.1 <= recall.item() <= 0.2


def test_far_apart_sets_have_precision_and_recall_zero():
    precision, recall = manifold_precision_recall(gaussian(200, 4, 0.0, seed=0), gaussian(200, 4, 100.0, seed=1))
    assert precision.item() == 0.0 and recall.item() == 0.0


@pytest.mark.parametrize("k", [1, 3, 5])
def test_matches_an_independent_implementation(k):
    real, fake = gaussian(400, 6, 0.0, seed=0), gaussian(300, 6, 0.7, seed=1)
    precision, recall = manifold_precision_recall(real, fake, k=k, batch_size=64)
    expected_precision, expected_recall = reference_precision_recall(real.numpy(), fake.numpy(), k)
    assert 0.0 < expected_precision < 1.0 and 0.0 < expected_recall < 1.0  # the case discriminates
    assert precision.item() == pytest.approx(expected_precision, abs=1e-12)
    assert recall.item() == pytest.approx(expected_recall, abs=1e-12)


def test_streaming_metric_equals_the_function_on_all_features():
    real, fake = gaussian(250, 5, 0.0, seed=2), gaussian(180, 5, 0.5, seed=3)
    metric = ManifoldPrecisionRecall(Flatten(), k=3)
    for chunk in real.split(64):
        metric.update(chunk[:, :, None, None], real=True)
    for chunk in fake.split(50):
        metric.update(chunk[:, :, None, None], real=False)
    precision, recall = metric.compute()
    expected_precision, expected_recall = manifold_precision_recall(real, fake, k=3)
    assert precision.item() == expected_precision.item() and recall.item() == expected_recall.item()
    metric.reset()
    with pytest.raises(RuntimeError, match="both real and generated"), pytest.warns(UserWarning, match="before"):
        metric.compute()


def test_too_few_samples_and_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="more than 3 fake samples"):
        manifold_precision_recall(gaussian(10, 2, 0.0, seed=0), gaussian(3, 2, 0.0, seed=1), k=3)
    with pytest.raises(ValueError, match="same dim"):
        manifold_precision_recall(gaussian(10, 2, 0.0, seed=0), gaussian(10, 3, 0.0, seed=1))
    with pytest.raises(ValueError, match="positive integer"):
        ManifoldPrecisionRecall(Flatten(), k=0)
