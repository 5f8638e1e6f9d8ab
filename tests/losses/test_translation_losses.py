"""CycleGAN and pix2pix reconstruction losses against values worked out by hand, and the adversarial losses on a map
of patch scores."""

import pytest
import torch

from hfgen.losses import cycle_consistency_loss, discriminator_loss, generator_loss, identity_loss, paired_l1_loss


def test_reconstruction_losses_by_hand():
    original = torch.zeros(1, 1, 2, 2)
    reconstructed = torch.tensor([[[[1.0, -1.0], [0.5, 0.5]]]])  # mean absolute error 0.75
    assert cycle_consistency_loss(reconstructed, original).item() == pytest.approx(7.5)  # lambda 10
    assert cycle_consistency_loss(reconstructed, original, weight=2.0).item() == pytest.approx(1.5)
    assert identity_loss(reconstructed, original).item() == pytest.approx(3.75)  # 0.5 x lambda
    assert identity_loss(reconstructed, original, cycle_weight=4.0, share=0.25).item() == pytest.approx(0.75)
    assert paired_l1_loss(reconstructed, original).item() == pytest.approx(75.0)  # lambda 100
    assert cycle_consistency_loss(original, original).item() == 0.0


def test_lsgan_on_a_patch_map_averages_every_patch():
    real = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]]])  # one patch off by 1: (0 + 1 + 0 + 0) / 4
    fake = torch.tensor([[[[0.0, 2.0], [0.0, 0.0]]]])  # one patch at 2: (0 + 4 + 0 + 0) / 4
    assert discriminator_loss(real, fake, "lsgan").item() == pytest.approx(0.5 * 0.25 + 0.5 * 1.0)
    assert generator_loss(fake, "lsgan").item() == pytest.approx(0.5 * (1 + 1 + 1 + 1) / 4)
