"""StyleGAN 2's resampling with FIR filters (Karras et al. 2020, appendix B), in plain PyTorch on any device.

Everything is one operation, [`upfirdn2d`]: upsample by inserting zeros between pixels, pad (or crop), convolve with
a finite-impulse-response filter, downsample by keeping every `down`-th pixel. Published StyleGAN 2 weights were
trained with the `[1, 3, 3, 1]` binomial filter in every up- and downsampling, so a faithful generator resamples
exactly this way; bilinear interpolation differs by a fraction of a pixel at every layer, and the difference grows
through the network.

Conventions, those of the published networks: the filter is the outer product of 1-D taps normalised to sum 1 (so a
constant image keeps its value), it is applied as a true convolution (flipped, which matters for asymmetric filters),
and upsampling by `s` multiplies by `s ** 2` to make up for the inserted zeros.
"""

import torch
import torch.nn.functional as F


def fir_filter(taps, normalize: bool = True) -> torch.Tensor:
    """The 2-D filter `outer(taps, taps)` as a float32 tensor (taps already 2-D are kept), divided by its sum when
    `normalize`."""
    kernel = torch.as_tensor(taps, dtype=torch.float32)
    if kernel.ndim == 0:
        kernel = kernel[None]
    if kernel.ndim == 1:
        kernel = torch.outer(kernel, kernel)
    if kernel.ndim != 2 or kernel.numel() == 0:
        raise ValueError(f"a FIR filter is 1-D taps or a 2-D kernel, got shape {tuple(kernel.shape)}")
    return kernel / kernel.sum() if normalize else kernel


def upfirdn2d(
    images: torch.Tensor,
    kernel: torch.Tensor,
    up: int = 1,
    down: int = 1,
    padding: tuple[int, int, int, int] = (0, 0, 0, 0),
    gain: float = 1.0,
    flip_kernel: bool = False,
) -> torch.Tensor:
    """Upsample `images` `(batch, channels, height, width)` by `up` (zeros inserted), pad by `padding` = (left,
    right, top, bottom) pixels (negative values crop), convolve every channel with the 2-D `kernel` times `gain`
    (as a convolution; `flip_kernel=True` applies it as a correlation instead), and keep every `down`-th pixel."""
    if images.ndim != 4:
        raise ValueError(f"upfirdn2d takes images (batch, channels, height, width), got shape {tuple(images.shape)}")
    batch, channels, height, width = images.shape
    if up > 1:
        spread = images.new_zeros(batch, channels, height, up, width, up)
        spread[:, :, :, 0, :, 0] = images
        images = spread.reshape(batch, channels, height * up, width * up)
    left, right, top, bottom = padding
    images = F.pad(images, [max(left, 0), max(right, 0), max(top, 0), max(bottom, 0)])
    images = images[
        :,
        :,
        max(-top, 0) : images.shape[2] - max(-bottom, 0),
        max(-left, 0) : images.shape[3] - max(-right, 0),
    ]
    weight = (kernel * gain).to(images.dtype)
    if not flip_kernel:
        weight = weight.flip([0, 1])  # conv2d correlates; a convolution flips the kernel
    weight = weight[None, None].expand(channels, 1, *weight.shape)
    images = F.conv2d(images, weight, groups=channels)
    return images[:, :, ::down, ::down]


def upsample2d(images: torch.Tensor, kernel: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """`images` `factor` times larger, filtered with `kernel` (the output pixel grid centred on the input's)."""
    size = kernel.shape[-1]
    pad_before, pad_after = (size + factor - 1) // 2, (size - factor) // 2
    padding = (pad_before, pad_after, pad_before, pad_after)
    return upfirdn2d(images, kernel, up=factor, padding=padding, gain=factor**2)


def downsample2d(images: torch.Tensor, kernel: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """`images` `factor` times smaller, filtered with `kernel` first (no aliasing from the dropped pixels)."""
    size = kernel.shape[-1]
    pad_before, pad_after = (size - factor + 1) // 2, (size - factor) // 2
    return upfirdn2d(images, kernel, down=factor, padding=(pad_before, pad_after, pad_before, pad_after))
