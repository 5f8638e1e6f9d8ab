"""Latent interpolation shared by the pipelines."""

import numbers

import torch

INTERPOLATION_METHODS = ("linear", "spherical")


def check_path_arguments(num_steps, method: str) -> None:
    """Raise unless `num_steps` is an int of at least 2 (both ends) and `method` one of `INTERPOLATION_METHODS`."""
    if method not in INTERPOLATION_METHODS:
        raise ValueError(f"method must be one of {INTERPOLATION_METHODS}, got {method!r}")
    if not isinstance(num_steps, numbers.Integral) or isinstance(num_steps, bool) or num_steps < 2:
        raise ValueError(f"num_steps must be an int of at least 2 (both ends), got {num_steps!r}")


def slerp(start: torch.Tensor, end: torch.Tensor, weight: float) -> torch.Tensor:
    """Spherical interpolation between two latents, treated as flat vectors; linear when they are (anti)parallel."""
    start_flat, end_flat = start.flatten(), end.flatten()
    cosine = torch.dot(start_flat, end_flat) / (start_flat.norm() * end_flat.norm()).clamp_min(1e-12)
    angle = torch.arccos(cosine.clamp(-1.0, 1.0))
    if angle.abs() < 1e-4 or (torch.pi - angle).abs() < 1e-4:
        return torch.lerp(start, end, weight)
    return (torch.sin((1.0 - weight) * angle) * start + torch.sin(weight * angle) * end) / torch.sin(angle)


def interpolation_path(start: torch.Tensor, end: torch.Tensor, num_steps: int, method: str) -> torch.Tensor:
    """`num_steps` points from `start` to `end`, both ends included, stacked along a new first dimension."""
    check_path_arguments(num_steps, method)
    mix = torch.lerp if method == "linear" else slerp
    return torch.stack([mix(start, end, weight) for weight in torch.linspace(0.0, 1.0, num_steps).tolist()])
