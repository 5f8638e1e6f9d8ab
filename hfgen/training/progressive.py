"""Progressive growing (Karras et al. 2018, ProGAN): which stage a run is at, as a pure function of its step.

A run starts at `start_resolution` and grows to `final_resolution`, doubling the resolution at each growth:

    stable at start (stable_steps) | fade in 2x (fade_steps) | stable at 2x (stable_steps) | ... | fade in final
    (fade_steps) | stable at final (to the end of the run)

During a fade-in, alpha rises linearly from 0 (the previous resolution's output, upsampled) towards 1 (the new
block's output): alpha = k / fade_steps at the k-th step of the fade (k = 0, 1, ...). Nothing of the growing state is
kept anywhere else: a run resumed at any step, mid-fade included, derives the same resolution and alpha from the step
it resumes at, so it continues exactly.

The real images a discriminator sees go through the same stage (`real_images_at`): box-filtered down to the stage's
resolution and, during a fade-in, blended with their own upsampled half-resolution version, as the paper does.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class GrowingSchedule:
    r"""
    Args:
        start_resolution (`int`): the resolution of the first stage, a power of two of at least 4.
        final_resolution (`int`): the resolution of the fully grown networks, a power of two of at least
            `start_resolution`.
        stable_steps (`int`): steps at each resolution once faded in (the last resolution: until the run ends).
        fade_steps (`int`): steps of each fade-in (0: a new block takes over at once).
    """

    start_resolution: int
    final_resolution: int
    stable_steps: int
    fade_steps: int

    def __post_init__(self):
        for name in ("start_resolution", "final_resolution"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 4 or value & (value - 1):
                raise ValueError(f"{name} must be a power of two of at least 4, got {value!r}")
        if self.start_resolution > self.final_resolution:
            raise ValueError(
                f"start_resolution ({self.start_resolution}) must not exceed final_resolution "
                f"({self.final_resolution})"
            )
        if self.stable_steps < 1 or self.fade_steps < 0:
            raise ValueError(
                f"stable_steps must be >= 1 and fade_steps >= 0, got {self.stable_steps} and {self.fade_steps}"
            )

    @property
    def num_growths(self) -> int:
        """How many times the resolution doubles from the start to the final one."""
        return (self.final_resolution // self.start_resolution).bit_length() - 1

    @property
    def growth_steps(self) -> int:
        """The step at which the final resolution is fully faded in (0 when the run starts at it)."""
        return self.num_growths * (self.stable_steps + self.fade_steps)

    def at(self, step: int) -> tuple[int, float]:
        """`(resolution, alpha)` of the step `step` (0-based: the step that `step` completed steps lead to)."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        period = self.stable_steps + self.fade_steps
        growth, offset = divmod(step, period)
        if growth >= self.num_growths:
            return self.final_resolution, 1.0
        if offset < self.stable_steps:
            return self.start_resolution * 2**growth, 1.0
        return self.start_resolution * 2 ** (growth + 1), (offset - self.stable_steps) / self.fade_steps


def real_images_at(images: torch.Tensor, resolution: int, alpha: float) -> torch.Tensor:
    """`images` (square, a power of two of at least `resolution`) as the stage `(resolution, alpha)` shows them:
    average-pooled to `resolution`, and while fading in (`alpha < 1`) blended with their nearest-upsampled
    half-resolution version, as the generator's output is."""
    factor = images.shape[-1] // resolution
    if factor < 1 or factor * resolution != images.shape[-1]:
        raise ValueError(f"images of {images.shape[-1]} px cannot be shown at {resolution} px")
    if factor > 1:
        images = F.avg_pool2d(images, factor)
    if alpha < 1:
        coarse = F.interpolate(F.avg_pool2d(images, 2), scale_factor=2, mode="nearest")
        images = torch.lerp(coarse, images, alpha)
    return images


__all__ = ["GrowingSchedule", "real_images_at"]
