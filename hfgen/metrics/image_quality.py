"""Full-reference image quality: PSNR and SSIM, thin wrappers over torchmetrics' functional implementations.

hfgen images live in [-1, 1], so the peak-to-peak range of a pixel is 2 and `data_range` defaults to 2.0. The range
has to be given explicitly: torchmetrics would otherwise guess it from the data of each call, which makes scores of
different batches incomparable.
"""

from typing import Literal

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

DATA_RANGE = 2.0
"""Peak-to-peak range of hfgen images ([-1, 1]). Use 1.0 for images in [0, 1] and 255.0 for uint8-valued ones."""


def _check_pair(preds: torch.Tensor, target: torch.Tensor) -> None:
    if preds.shape != target.shape:
        raise ValueError(
            f"preds and target must have the same shape, got {tuple(preds.shape)} and {tuple(target.shape)}"
        )
    if preds.ndim != 4:
        raise ValueError(f"images must have shape (batch, channels, height, width), got {tuple(preds.shape)}")


def psnr(
    preds: torch.Tensor,
    target: torch.Tensor,
    data_range: float = DATA_RANGE,
    reduction: Literal["elementwise_mean", "sum", "none"] = "elementwise_mean",
) -> torch.Tensor:
    r"""
    Peak signal-to-noise ratio in dB, `10 * log10(data_range ** 2 / MSE)`, computed per image and then reduced.

    Args:
        preds (`torch.Tensor` of shape `(batch, channels, height, width)`):
            Reconstructed or generated images.
        target (`torch.Tensor` of the same shape):
            Reference images.
        data_range (`float`, *optional*, defaults to 2.0):
            Peak-to-peak range of a pixel: 2.0 for hfgen's [-1, 1] images.
        reduction (`str`, *optional*, defaults to `"elementwise_mean"`):
            `"elementwise_mean"` averages the per-image PSNRs (the convention of image restoration papers, not the
            PSNR of the batch's pooled MSE), `"sum"` adds them, `"none"` returns one value per image.
    """
    _check_pair(preds, target)
    return peak_signal_noise_ratio(preds, target, data_range=data_range, reduction=reduction, dim=(1, 2, 3))


def ssim(
    preds: torch.Tensor,
    target: torch.Tensor,
    data_range: float = DATA_RANGE,
    kernel_size: int = 11,
    sigma: float = 1.5,
    reduction: Literal["elementwise_mean", "sum", "none"] = "elementwise_mean",
) -> torch.Tensor:
    r"""
    Structural similarity (Wang et al. 2004) with a Gaussian window, per image, then reduced.

    The defaults are the paper's: an 11x11 Gaussian window of standard deviation 1.5 and the constants K1 = 0.01,
    K2 = 0.03 (relative to `data_range`). Images must be larger than the window on both sides.

    Args:
        preds (`torch.Tensor` of shape `(batch, channels, height, width)`):
            Reconstructed or generated images.
        target (`torch.Tensor` of the same shape):
            Reference images.
        data_range (`float`, *optional*, defaults to 2.0):
            Peak-to-peak range of a pixel: 2.0 for hfgen's [-1, 1] images.
        kernel_size (`int`, *optional*, defaults to 11):
            Side of the Gaussian window.
        sigma (`float`, *optional*, defaults to 1.5):
            Standard deviation of the Gaussian window, in pixels.
        reduction (`str`, *optional*, defaults to `"elementwise_mean"`):
            `"elementwise_mean"`, `"sum"` or `"none"` (one value per image).
    """
    _check_pair(preds, target)
    return structural_similarity_index_measure(
        preds,
        target,
        gaussian_kernel=True,
        sigma=sigma,
        kernel_size=kernel_size,
        reduction=reduction,
        data_range=data_range,
        k1=0.01,
        k2=0.03,
    )


__all__ = ["DATA_RANGE", "psnr", "ssim"]
