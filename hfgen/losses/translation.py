"""The reconstruction terms of image-to-image translation, as pure functions: CycleGAN's cycle consistency and
identity losses (Zhu et al. 2017) and pix2pix's L1 to the paired target (Isola et al. 2017). The adversarial terms
are `hfgen.losses.gan`'s, applied to the discriminator's map of patch scores (every patch counts as one score)."""

import torch
import torch.nn.functional as F

CYCLE_WEIGHT = 10.0
"""CycleGAN's lambda: the weight of each direction's cycle loss against its adversarial loss."""
IDENTITY_SHARE = 0.5
"""CycleGAN's identity weight as a share of lambda (0.5 x lambda by default)."""
PIX2PIX_L1_WEIGHT = 100.0
"""pix2pix's lambda: the weight of the L1 to the target against the adversarial loss."""


def cycle_consistency_loss(reconstructed: torch.Tensor, original: torch.Tensor, weight: float = CYCLE_WEIGHT):
    """`weight` times the mean absolute error between F(G(x)) and x: a translation must be undoable."""
    return weight * F.l1_loss(reconstructed, original)


def identity_loss(
    translated_target: torch.Tensor,
    target: torch.Tensor,
    cycle_weight: float = CYCLE_WEIGHT,
    share: float = IDENTITY_SHARE,
):
    """`share x cycle_weight` times the mean absolute error between G(y) and y for a real image y of the target
    domain: a generator fed its own output domain should leave it alone (it keeps colours in CycleGAN's paintings)."""
    return share * cycle_weight * F.l1_loss(translated_target, target)


def paired_l1_loss(translated: torch.Tensor, target: torch.Tensor, weight: float = PIX2PIX_L1_WEIGHT):
    """`weight` times the mean absolute error between G(x) and its paired target y (pix2pix)."""
    return weight * F.l1_loss(translated, target)


__all__ = [
    "CYCLE_WEIGHT",
    "IDENTITY_SHARE",
    "PIX2PIX_L1_WEIGHT",
    "cycle_consistency_loss",
    "identity_loss",
    "paired_l1_loss",
]
