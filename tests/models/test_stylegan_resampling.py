"""StyleGAN 2's FIR resampling against what it must equal: hand-computed filters, nearest-neighbour upsampling and
average pooling for the box filter, constant images kept, and the transpose relation of up- and downsampling."""

import pytest
import torch
import torch.nn.functional as F

from hfgen.models.stylegan.resampling import downsample2d, fir_filter, upfirdn2d, upsample2d


def test_the_filter_is_the_normalised_outer_product_of_its_taps():
    kernel = fir_filter([1, 3, 3, 1])
    expected = torch.tensor([1.0, 3, 3, 1])[:, None] * torch.tensor([1.0, 3, 3, 1])[None] / 64
    assert torch.allclose(kernel, expected) and kernel.sum().item() == pytest.approx(1.0)
    assert torch.equal(fir_filter([2.0]), torch.ones(1, 1))
    with pytest.raises(ValueError, match="1-D taps or a 2-D kernel"):
        fir_filter(torch.ones(2, 2, 2))


def test_an_impulse_returns_the_kernel_convolved_not_correlated():
    kernel = torch.arange(1.0, 7.0).view(2, 3)  # asymmetric: a correlation would show it flipped
    impulse = torch.zeros(1, 1, 5, 5)
    impulse[0, 0, 2, 2] = 1
    response = upfirdn2d(impulse, kernel, padding=(1, 1, 0, 1))
    assert response.shape == (1, 1, 5, 5) and torch.equal(response[0, 0, 1:3, 1:4], kernel)
    assert response.abs().sum() == kernel.sum()  # nothing else
    correlated = upfirdn2d(impulse, kernel, padding=(1, 1, 0, 1), flip_kernel=True)
    assert torch.equal(correlated[0, 0, 1:3, 1:4], kernel.flip([0, 1]))


def test_the_box_filter_upsamples_as_nearest_neighbour_and_downsamples_as_average_pooling():
    images = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    box = fir_filter([1, 1])
    assert torch.allclose(upsample2d(images, box), F.interpolate(images, scale_factor=2, mode="nearest"), atol=1e-6)
    assert torch.allclose(downsample2d(images, box), F.avg_pool2d(images, 2), atol=1e-6)


@pytest.mark.parametrize("taps", [[1, 3, 3, 1], [1, 2, 1], [1, 1]])
def test_sizes_and_constant_images(taps):
    kernel = fir_filter(taps)
    constant = torch.full((1, 2, 8, 8), 0.7)
    up, down = upsample2d(constant, kernel), downsample2d(constant, kernel)
    assert up.shape == (1, 2, 16, 16) and down.shape == (1, 2, 4, 4)
    # away from the zero padding at the border, a constant stays that constant
    margin = len(taps)
    assert torch.allclose(
        up[..., margin:-margin, margin:-margin], torch.full_like(up, 0.7)[..., margin:-margin, margin:-margin]
    )
    assert torch.allclose(down[..., 1:-1, 1:-1], torch.full((1, 2, 2, 2), 0.7))


def test_downsampling_is_the_transpose_of_upsampling_for_a_symmetric_filter():
    # <up(x), y> = s^2 <x, down(y)> when both use the same symmetric filter with matching padding
    kernel = fir_filter([1, 3, 3, 1])
    generator = torch.Generator().manual_seed(1)
    x, y = torch.randn(1, 1, 8, 8, generator=generator), torch.randn(1, 1, 16, 16, generator=generator)
    assert (upsample2d(x, kernel) * y).sum().item() == pytest.approx(
        4 * (x * downsample2d(y, kernel)).sum().item(), rel=1e-5
    )


def test_fixed_values_of_the_published_filter():
    # the values NVIDIA's reference implementation (stylegan2-ada-pytorch, torch_utils/ops/upfirdn2d.py,
    # `_upfirdn2d_ref` through `upsample2d` / `downsample2d`) gives for the same input and filter
    images = torch.arange(16.0).view(1, 1, 4, 4)
    kernel = fir_filter([1, 3, 3, 1])
    up, down = upsample2d(images, kernel), downsample2d(images, kernel)
    assert up[0, 0, :2, :4].flatten().tolist() == pytest.approx([0.0, 0.1875, 0.5625, 0.9375, 0.75, 1.25, 1.75, 2.25])
    assert down[0, 0].flatten().tolist() == pytest.approx([2.734375, 3.9375, 7.546875, 8.75])
