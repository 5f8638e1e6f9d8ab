import itertools
import math

import pytest
import torch

from hfgen.metrics import psnr, ssim


def random_images(batch: int = 4, channels: int = 3, size: int = 32, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, channels, size, size, generator=generator) * 2 - 1


def checkerboard_errors(amplitudes: list[float], size: int = 16) -> torch.Tensor:
    """Images whose pixels are +-amplitude in a checkerboard: each image's MSE against zeros is amplitude ** 2."""
    signs = (torch.arange(size)[:, None] + torch.arange(size)[None, :]) % 2 * 2 - 1
    return torch.stack([a * signs.float().expand(3, size, size) for a in amplitudes])


def test_psnr_of_a_known_mse_is_the_closed_form():
    amplitudes = [0.5, 0.1, 0.02]
    preds = checkerboard_errors(amplitudes)
    target = torch.zeros_like(preds)
    expected = [10 * math.log10(2.0**2 / a**2) for a in amplitudes]
    torch.testing.assert_close(psnr(preds, target, reduction="none"), torch.tensor(expected), rtol=1e-5, atol=1e-4)
    # The default averages the per-image values (not the PSNR of the pooled MSE).
    torch.testing.assert_close(psnr(preds, target), torch.tensor(sum(expected) / 3), rtol=1e-5, atol=1e-4)
    # data_range is explicit: images in [0, 1] have a peak-to-peak range of 1.
    expected_unit_range = [10 * math.log10(1.0 / a**2) for a in amplitudes]
    torch.testing.assert_close(
        psnr(preds, target, data_range=1.0, reduction="none"), torch.tensor(expected_unit_range), rtol=1e-5, atol=1e-4
    )


def test_ssim_of_an_image_with_itself_is_one():
    images = random_images()
    torch.testing.assert_close(ssim(images, images), torch.tensor(1.0))
    torch.testing.assert_close(ssim(images, images, reduction="none"), torch.ones(4))


def test_ssim_decreases_with_noise():
    images = random_images(channels=1, size=48).clamp(-0.5, 0.5)
    generator = torch.Generator().manual_seed(1)
    noise = torch.randn(images.shape, generator=generator)
    scores = [ssim((images + level * noise).clamp(-1, 1), images).item() for level in (0.0, 0.05, 0.1, 0.2, 0.4)]
    assert scores[0] == pytest.approx(1.0)
    assert all(earlier > later for earlier, later in itertools.pairwise(scores))
    assert scores[-1] < 0.5


def test_mismatched_or_unbatched_images_are_rejected():
    with pytest.raises(ValueError, match="same shape"):
        psnr(torch.zeros(2, 1, 16, 16), torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match=r"\(batch, channels, height, width\)"):
        ssim(torch.zeros(1, 16, 16), torch.zeros(1, 16, 16))
