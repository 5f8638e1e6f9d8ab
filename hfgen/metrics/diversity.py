"""A mode-collapse figure: how spread out generated images are, relative to real ones.

FID mixes fidelity and diversity into one number; a generator that draws the same few images can still reach a
middling FID. The diversity ratio isolates the second: the mean distance between two generated images over the
mean distance between two real ones, about 1 for a healthy model and 0 for full collapse.
"""

import torch
from torch import nn

from .feature_extractor import to_signed_unit_range


def mean_pairwise_distance(points: torch.Tensor, batch_size: int = 1024) -> float:
    r"""
    Mean Euclidean distance over all pairs of distinct rows of `points` `(num_points, dim)`, in float64.

    Args:
        points (`torch.Tensor` of shape `(num_points, dim)`):
            At least 2 points.
        batch_size (`int`, *optional*, defaults to 1024):
            Rows of the distance matrix held in memory at once; does not change the result.
    """
    if points.ndim != 2 or points.shape[0] < 2:
        raise ValueError(f"need a matrix of at least 2 points (num_points, dim), got shape {tuple(points.shape)}")
    # Distances do not change under translation; centring shrinks the norms in cdist's |x|^2 + |y|^2 - 2 x.y, and
    # with them its rounding (a set of identical points becomes all zeros: distance exactly 0, not ~1e-6).
    points = points.double()
    points = points - points.mean(dim=0)
    total = torch.zeros((), dtype=torch.float64, device=points.device)
    for chunk in points.split(batch_size):
        total += torch.cdist(chunk, points).sum()
    # Each unordered pair is counted twice and the diagonal (a point to itself) adds 0.
    num_points = points.shape[0]
    return (total / (num_points * (num_points - 1))).item()


@torch.no_grad()
def _embed(images: torch.Tensor, feature_extractor: nn.Module | None, batch_size: int) -> torch.Tensor:
    if feature_extractor is None:
        return to_signed_unit_range(images).flatten(1)
    return torch.cat([feature_extractor(batch) for batch in images.split(batch_size)]).flatten(1)


def sample_diversity_ratio(
    samples: torch.Tensor,
    reals: torch.Tensor,
    feature_extractor: nn.Module | None = None,
    batch_size: int = 256,
) -> dict:
    r"""
    Mean pairwise distance of generated images over that of real images: 1 is as diverse as the data, 0 is collapse.

    Distances are Euclidean, in the feature space of `feature_extractor` (e.g. from [`resolve_feature_extractor`]) or,
    without one, between the raw pixels in [-1, 1] (then `samples` and `reals` must have the same shape per image).
    Pixel distances overrate noise and underrate changes of content; features are the better space when there is an
    extractor for the data. The value is noisy below a few dozen images a side, and above 1 when samples are noisier
    than the data.

    Args:
        samples (`torch.Tensor` of shape `(num_samples, channels, height, width)`):
            Generated images in [-1, 1] (or uint8), at least 2.
        reals (`torch.Tensor` of shape `(num_reals, channels, height, width)`):
            Real images (e.g. the evaluation split), at least 2.
        feature_extractor (`torch.nn.Module`, *optional*):
            Maps images to features `(batch, dim)`.
        batch_size (`int`, *optional*, defaults to 256):
            Images per extractor call.

    Returns:
        `dict` with `diversity_ratio`, `sample_mean_distance`, `real_mean_distance`, and `space` (`"pixels"`, or
        `"features of <extractor>"`).
    """
    for name, images in (("samples", samples), ("reals", reals)):
        if images.ndim != 4 or images.shape[0] < 2:
            raise ValueError(
                f"{name} must be a batch of at least 2 images (num_images, channels, height, width), got shape "
                f"{tuple(images.shape)}"
            )
    if feature_extractor is None and samples.shape[1:] != reals.shape[1:]:
        raise ValueError(
            f"pixel distances need samples and reals of the same shape, got {tuple(samples.shape[1:])} and "
            f"{tuple(reals.shape[1:])}: resize one of them, or pass a feature_extractor"
        )
    sample_distance = mean_pairwise_distance(_embed(samples, feature_extractor, batch_size))
    real_distance = mean_pairwise_distance(_embed(reals, feature_extractor, batch_size))
    if real_distance == 0:
        raise ValueError("the real images are all identical: their spread cannot serve as the reference")
    if feature_extractor is None:
        space = "pixels"
    else:
        protocol = getattr(feature_extractor, "protocol", None) or {}
        space = f"features of {protocol.get('feature_extractor', type(feature_extractor).__name__)}"
    return {
        "diversity_ratio": sample_distance / real_distance,
        "sample_mean_distance": sample_distance,
        "real_mean_distance": real_distance,
        "space": space,
    }


__all__ = ["mean_pairwise_distance", "sample_diversity_ratio"]
