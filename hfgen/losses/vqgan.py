"""The losses of a VQ-GAN's autoencoder step (Esser et al. 2021), as pure functions.

`pyramid_l1` is the offline stand-in for a perceptual loss: L1 distances between average-pooled copies of the images,
which weigh the coarse structure beside the per-pixel error. `adaptive_adversarial_weight` is the paper's
lambda = ||grad_{G_L} L_rec|| / (||grad_{G_L} L_GAN|| + delta), taken at the decoder's last layer G_L, so the
adversarial term never swamps (or vanishes beside) the reconstruction term whatever their scales.
"""

import torch
import torch.nn.functional as F


def pyramid_l1(reconstructions: torch.Tensor, originals: torch.Tensor, levels: int = 3) -> torch.Tensor:
    r"""
    Mean over `levels` coarser scales of the L1 distance between the images average-pooled by 2, 4, ... 2^levels
    (a level that would shrink the images below one pixel is skipped). The full-resolution L1 is not included.
    """
    if reconstructions.shape != originals.shape:
        raise ValueError(
            f"reconstructions {tuple(reconstructions.shape)} and originals {tuple(originals.shape)} differ in shape"
        )
    if levels < 1:
        raise ValueError(f"levels must be at least 1, got {levels}")
    distances = []
    for level in range(1, levels + 1):
        factor = 2**level
        if min(reconstructions.shape[-2:]) < factor:
            break
        distances.append(
            F.l1_loss(F.avg_pool2d(reconstructions, factor), F.avg_pool2d(originals, factor), reduction="mean")
        )
    if not distances:
        raise ValueError(f"images of {tuple(reconstructions.shape[-2:])} pixels have no coarser scale")
    return torch.stack(distances).mean()


def adaptive_adversarial_weight(
    reconstruction_loss: torch.Tensor,
    adversarial_loss: torch.Tensor,
    last_layer_weight: torch.Tensor,
    max_weight: float = 1e4,
    delta: float = 1e-4,
) -> torch.Tensor:
    r"""
    lambda = ||grad L_rec|| / (||grad L_adv|| + delta), both gradients taken with respect to `last_layer_weight`
    (the decoder's output convolution), clamped to [0, `max_weight`] and detached: a weight, not a loss.

    Both losses must still hold their graphs: the gradients are taken with `retain_graph=True`, so the caller's
    backward pass follows.
    """
    (reconstruction_grad,) = torch.autograd.grad(reconstruction_loss, last_layer_weight, retain_graph=True)
    (adversarial_grad,) = torch.autograd.grad(adversarial_loss, last_layer_weight, retain_graph=True)
    weight = reconstruction_grad.norm() / (adversarial_grad.norm() + delta)
    return weight.clamp(0.0, max_weight).detach()


__all__ = ["adaptive_adversarial_weight", "pyramid_l1"]
