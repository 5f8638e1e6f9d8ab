"""DiffAugment's operations and the ADA controller."""

import pytest
import torch

from hfgen.training.augment import AdaptiveAugmentation, augment_images, parse_policy


def images(batch: int = 4, size: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 1, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_probability_zero_is_the_identity_and_one_changes_every_image():
    x = images()
    assert torch.equal(augment_images(x, ["color", "translation", "cutout"], 0.0), x)
    torch.manual_seed(0)
    changed = augment_images(x, ["color", "translation", "cutout"], 1.0)
    assert all(not torch.equal(changed[i], x[i]) for i in range(4))


def test_translation_shifts_content_and_fills_with_black():
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 3, 3] = 1.0
    torch.manual_seed(1)
    shifted = augment_images(x, ["translation"], 1.0)
    assert shifted.max() == 1.0 and (shifted == 1.0).sum() == 1  # the bright pixel moved, intact
    row, col = (shifted[0, 0] == 1.0).nonzero()[0].tolist()
    assert abs(row - 3) <= 1 and abs(col - 3) <= 1  # by at most 1/8 of the side
    constant = torch.ones(16, 1, 8, 8)
    torch.manual_seed(2)
    moved = augment_images(constant, ["translation"], 1.0)
    assert ((moved == 1.0) | (moved == -1.0)).all()  # what slides in is black


def test_cutout_blanks_a_square_of_half_the_side():
    x = torch.ones(8, 1, 8, 8)
    torch.manual_seed(3)
    out = augment_images(x, ["cutout"], 1.0)
    blanked = (out == 0).flatten(1).sum(1)
    assert (blanked > 0).all() and (blanked <= 16).all()  # at most a 4x4 square, clipped at the borders
    assert ((out == 0) | (out == 1)).all()


def test_augmentation_is_differentiable():
    x = images().requires_grad_(True)
    torch.manual_seed(4)
    augment_images(x, ["color", "translation", "cutout"], 1.0).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_unknown_operations_fail_clearly():
    assert parse_policy("color, cutout") == ["color", "cutout"]
    with pytest.raises(ValueError, match="augmentation policy 'color,zoom'"):
        parse_policy("color,zoom")


def test_ada_raises_p_when_the_discriminator_overfits_and_lowers_it_otherwise():
    ada = AdaptiveAugmentation("color", 0.5, adaptive=True, target=0.6, interval=2, speed_images=100)
    ada.accumulate(sign_sum=10.0, count=10)  # r_t = 1 > 0.6, not yet an adjustment step
    assert ada.probability == 0.5
    ada.accumulate(sign_sum=10.0, count=10)  # adjust: p += 20 images / 100
    assert ada.probability == pytest.approx(0.7)
    ada.accumulate(sign_sum=-10.0, count=10)
    ada.accumulate(sign_sum=0.0, count=10)  # r_t = -0.5 < 0.6: p falls by 0.2
    assert ada.probability == pytest.approx(0.5)
    restored = AdaptiveAugmentation("color", 0.0, adaptive=True, interval=2, speed_images=100)
    restored.load_state_dict(ada.state_dict())
    assert restored.state_dict() == ada.state_dict()
    fixed = AdaptiveAugmentation("color", 1.0, adaptive=False)
    fixed.accumulate(100.0, 10)
    assert fixed.probability == 1.0
