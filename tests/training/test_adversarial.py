"""Lazy regularisation's optimizer correction, and R1 through a differentiable augmentation."""

import pytest
import torch

from hfgen.losses import augmented_r1_penalty, r1_penalty
from hfgen.training.adversarial import lazy_regularisation_ratio, lazy_regularised_adam
from hfgen.training.augment import AdaptiveAugmentation


def test_lazy_adam_is_corrected_by_n_over_n_plus_one():
    parameter = torch.nn.Parameter(torch.zeros(3))
    adam = lazy_regularised_adam([parameter], 2e-3, (0.0, 0.99), interval=4)
    group = adam.param_groups[0]
    assert group["lr"] == pytest.approx(2e-3 * 0.8)
    assert group["betas"] == pytest.approx((0.0, 0.99**0.8))


@pytest.mark.parametrize("interval", [None, 0])
def test_a_disabled_regulariser_leaves_adam_as_configured(interval):
    parameter = torch.nn.Parameter(torch.zeros(3))
    adam = lazy_regularised_adam([parameter], 2e-3, (0.0, 0.99), interval=interval)
    assert adam.param_groups[0]["lr"] == 2e-3 and adam.param_groups[0]["betas"] == (0.0, 0.99)
    parameter.grad = torch.ones(3)
    adam.step()  # the old code set beta1 to 0 ** 0 = 1 here, which Adam rejects
    assert torch.all(parameter < 0)
    with pytest.raises(ValueError, match="at least 1"):
        lazy_regularisation_ratio(-2)


def small_discriminator():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Tanh(), torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 1)
    )


def test_r1_through_an_identity_augmentation_equals_the_plain_penalty():
    discriminator = small_discriminator()
    real = torch.randn(4, 1, 8, 8)
    leaf = real.clone().requires_grad_(True)
    plain = r1_penalty(discriminator(leaf), leaf)
    # ADA at probability 0 applies no augmentation: the same function of the reals.
    identity = AdaptiveAugmentation("color,translation,cutout", 0.0, adaptive=False)
    through, _ = augmented_r1_penalty(discriminator, real, identity)
    torch.testing.assert_close(through, plain)
    without, _ = augmented_r1_penalty(discriminator, real, None)
    torch.testing.assert_close(without, plain)


def test_r1_is_taken_with_respect_to_the_unaugmented_reals():
    discriminator = small_discriminator()
    real = torch.randn(4, 1, 8, 8)

    def double(images):  # a differentiable augmentation with a known Jacobian: 2 I
        return 2 * images

    through, _ = augmented_r1_penalty(discriminator, real, double)
    augmented = (2 * real).requires_grad_(True)
    # grad wrt the reals = 2 x grad wrt the augmented images, so the penalty is 4 times larger.
    torch.testing.assert_close(through, 4 * r1_penalty(discriminator(augmented), augmented))
    # and it trains the discriminator
    through.backward()
    assert discriminator[0].weight.grad is not None and discriminator[0].weight.grad.abs().sum() > 0


def test_r1_through_real_diffaugment_keeps_a_gradient_path():
    discriminator = small_discriminator()
    real = torch.randn(4, 1, 8, 8)
    augment = AdaptiveAugmentation("color,translation,cutout", 1.0, adaptive=False)
    torch.manual_seed(1)
    penalty, logits = augmented_r1_penalty(discriminator, real, augment)
    assert penalty.item() > 0 and logits.shape == (4, 1)
