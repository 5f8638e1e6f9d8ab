"""Improved precision and recall of generative models (Kynkäänniemi et al., NeurIPS 2019).

Each set of features approximates its manifold by the union of balls centred on its points, each ball reaching to
the point's k-th nearest neighbour within the set. Precision is the fraction of generated samples inside the real
manifold (are the samples realistic?), recall the fraction of real samples inside the generated manifold (does the
model cover the data?). torchmetrics has no implementation, so this module provides one: a pure function on feature
matrices and a torchmetrics `Metric` whose feature states ("cat" states) are concatenated across processes.
"""

from typing import Any

import torch
from torch import nn
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat


def _knn_radii(points: torch.Tensor, k: int, batch_size: int) -> torch.Tensor:
    """Distance from each point to its k-th nearest neighbour among the other points of the set."""
    radii = []
    for chunk in points.split(batch_size):
        distances = torch.cdist(chunk, points)
        # The smallest distance of each row is the point to itself (0), so the (k + 1)-th smallest is the k-th
        # neighbour; a duplicate of the point counts as a neighbour at distance 0.
        radii.append(distances.kthvalue(k + 1, dim=1).values)
    return torch.cat(radii)


def _fraction_inside(
    queries: torch.Tensor, centers: torch.Tensor, radii: torch.Tensor, batch_size: int
) -> torch.Tensor:
    """Fraction of `queries` that lie in at least one ball (centre, radius); the boundary counts as inside."""
    inside = [(torch.cdist(chunk, centers) <= radii).any(dim=1) for chunk in queries.split(batch_size)]
    return torch.cat(inside).double().mean()


def manifold_precision_recall(
    real_features: torch.Tensor, fake_features: torch.Tensor, k: int = 3, batch_size: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""
    Improved precision and recall between two sets of features.

    Args:
        real_features (`torch.Tensor` of shape `(num_real, dim)`):
            Features of real images.
        fake_features (`torch.Tensor` of shape `(num_fake, dim)`):
            Features of generated images.
        k (`int`, *optional*, defaults to 3):
            Neighbour that sets each ball's radius (the paper's default). Each set needs more than `k` points.
        batch_size (`int`, *optional*, defaults to 1024):
            Rows of the distance matrix held in memory at once; does not change the result.

    Returns:
        `(precision, recall)`, two float64 scalars in [0, 1].
    """
    if real_features.ndim != 2 or fake_features.ndim != 2 or real_features.shape[1] != fake_features.shape[1]:
        raise ValueError(
            "features must be matrices (num_samples, dim) of the same dim, got "
            f"{tuple(real_features.shape)} and {tuple(fake_features.shape)}"
        )
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    for name, features in (("real", real_features), ("fake", fake_features)):
        if features.shape[0] <= k:
            raise ValueError(
                f"precision and recall with k={k} need more than {k} {name} samples, got {features.shape[0]}"
            )
    # float64: a point's distance to itself must come out far below any neighbour distance.
    real_features, fake_features = real_features.double(), fake_features.double()
    real_radii = _knn_radii(real_features, k, batch_size)
    fake_radii = _knn_radii(fake_features, k, batch_size)
    precision = _fraction_inside(fake_features, real_features, real_radii, batch_size)
    recall = _fraction_inside(real_features, fake_features, fake_radii, batch_size)
    return precision, recall


class ManifoldPrecisionRecall(Metric):
    r"""
    Streaming improved precision and recall (Kynkäänniemi et al. 2019) on features of a custom extractor.

    Use it like torchmetrics' `KernelInceptionDistance`: `update(images, real=True)` for real batches,
    `update(images, real=False)` for generated ones, then `compute()` returns `(precision, recall)`. The features
    are stored ("cat" states), so under torch.distributed (accelerate) `compute()` gathers every process's features
    and returns the value of the whole set on every process.

    Args:
        feature (`torch.nn.Module`):
            Maps a batch of images to features `(batch, dim)`, called on the images exactly as `update` gets them.
        k (`int`, *optional*, defaults to 3):
            Neighbour that sets each ball's radius.
        kwargs:
            Options of `torchmetrics.Metric` (e.g. `sync_on_compute`, `process_group`).
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, feature: nn.Module, k: int = 3, **kwargs: Any):
        super().__init__(**kwargs)
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        self.feature = feature
        self.k = k
        self.add_state("real_features", [], dist_reduce_fx="cat")
        self.add_state("fake_features", [], dist_reduce_fx="cat")

    def update(self, images: torch.Tensor, real: bool) -> None:
        features = self.feature(images)
        if real:
            self.real_features.append(features)
        else:
            self.fake_features.append(features)

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        # A list of batches before the cross-process sync, one concatenated tensor after it: len() counts both.
        if len(self.real_features) == 0 or len(self.fake_features) == 0:
            raise RuntimeError("precision and recall need both real and generated images: call update with each first")
        return manifold_precision_recall(dim_zero_cat(self.real_features), dim_zero_cat(self.fake_features), self.k)


__all__ = ["ManifoldPrecisionRecall", "manifold_precision_recall"]
