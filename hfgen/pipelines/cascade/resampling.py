"""The image operations of a super-resolution diffusion model, shared by its pipelines and its training script: how a
training pair is made (downsampling), how the low-resolution image enters the UNet (upsampling), its noise
conditioning augmentation (Ho et al. 2021, "Cascaded Diffusion Models"; Saharia et al. 2022, Imagen), and the residual
over the upsampled image that a residual model generates (Li et al. 2022, SRDiff).

Images are tensors in [-1, 1], `(batch, channels, height, width)`.
"""

import torch
import torch.nn.functional as F


def downsample(images: torch.Tensor, size: int) -> torch.Tensor:
    """`images` at `size` x `size`: bicubic with antialiasing (the filter PIL's bicubic resize applies, so the pairs
    made during training look like images resized by the data loader, which a base model learns)."""
    return F.interpolate(images, size=(size, size), mode="bicubic", antialias=True, align_corners=False).clamp(-1, 1)


def upsample(images: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """`images` upsampled to `size` with bicubic interpolation, clamped to [-1, 1] (bicubic overshoots at edges): the
    super-resolution UNet's conditioning input, and the baseline the model must beat."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    return F.interpolate(images, size=size, mode="bicubic", align_corners=False).clamp(-1, 1)


def augment_conditioning(
    conditioning: torch.Tensor, noise_levels: torch.Tensor, alphas_cumprod: torch.Tensor, noise: torch.Tensor
) -> torch.Tensor:
    r"""
    Noise conditioning augmentation: the upsampled low-resolution image diffused to timestep `noise_levels[i]` of the
    noise schedule (`alphas_cumprod`, that of the model's own scheduler), as DeepFloyd IF's super-resolution stage
    does; level 0 leaves an image as it is.

    Training on conditioning images noised to random levels, with the level given to the UNet, teaches the model to
    fill in what a low-resolution image lacks without trusting every pixel of it: the images of a base model differ
    from downsampled real ones, and a level above 0 at sampling time hides those differences.

    Args:
        conditioning (`torch.Tensor` of shape `(batch, channels, height, width)`): the upsampled images in [-1, 1].
        noise_levels (`torch.Tensor` of shape `(batch,)`): integer timesteps in [0, len(alphas_cumprod)).
        alphas_cumprod (`torch.Tensor`): the schedule's cumulative products of (1 - beta).
        noise (`torch.Tensor`): standard normal noise shaped like `conditioning`.
    """
    alphas = alphas_cumprod.to(device=conditioning.device, dtype=conditioning.dtype)[noise_levels]
    alphas = alphas.reshape(-1, 1, 1, 1)
    noised = alphas.sqrt() * conditioning + (1 - alphas).sqrt() * noise
    return torch.where(noise_levels.reshape(-1, 1, 1, 1) > 0, noised, conditioning)


def to_residual(images: torch.Tensor, upsampled: torch.Tensor, scale: float) -> torch.Tensor:
    """What a residual super-resolution model generates (SRDiff, Li et al. 2022): the detail bicubic upsampling
    misses, `images - upsampled`, multiplied by `scale` so that it has about unit variance, as the diffusion noise does
    (a residual is mostly near 0: unscaled, the noise would drown it at all but the last timesteps)."""
    return (images - upsampled) * scale


def from_residual(residual: torch.Tensor, upsampled: torch.Tensor, scale: float) -> torch.Tensor:
    """The image a residual model's sample stands for: the upsampled image plus the unscaled residual."""
    return upsampled + residual / scale


@torch.no_grad()
def residual_std(images: torch.Tensor, low_resolution: int) -> float:
    """The standard deviation of the residuals of `images` (`(batch, channels, height, width)` in [-1, 1]) over their
    bicubic upsampling from `low_resolution`: its reciprocal is the scale that gives them unit variance."""
    upsampled = upsample(downsample(images, low_resolution), images.shape[-2:])
    return (images - upsampled).std().item()
