"""Adversarial losses and regularisers, as pure functions of discriminator outputs (logits) and tensors.

Nothing here holds an optimizer, a model or a random state of its own: the training scripts call these between
their forward and backward passes, and tests compare them with values worked out by hand.

Conventions: `real_logits` / `fake_logits` are the discriminator's raw scores (before any sigmoid), one per image;
every loss is averaged over the batch; the discriminator minimises `discriminator_loss` and the generator minimises
`generator_loss`.
"""

import torch
import torch.nn.functional as F

GAN_LOSSES = ("minimax", "non-saturating", "lsgan", "wgan", "wgan-gp", "hinge")
"""Names accepted by `discriminator_loss` / `generator_loss`. `wgan-gp` is `wgan` plus `gradient_penalty` (added
by the caller, which owns the discriminator); `minimax` and `non-saturating` share the discriminator loss."""


def _check_loss(loss: str) -> None:
    if loss not in GAN_LOSSES:
        raise ValueError(f"unknown GAN loss {loss!r}: choose one of {GAN_LOSSES}")


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, loss: str) -> torch.Tensor:
    r"""
    The discriminator's (critic's) loss on a batch of real and a batch of generated images.

    - `minimax` / `non-saturating` (Goodfellow et al. 2014): D maximises E[log D(x)] + E[log(1 - D(G(z)))], i.e.
      minimises softplus(-real) + softplus(fake) with D = sigmoid(logit).
    - `lsgan` (Mao et al. 2017): (real - 1)^2 / 2 + fake^2 / 2.
    - `wgan` / `wgan-gp` (Arjovsky et al. 2017; Gulrajani et al. 2017): fake - real (the gradient penalty is added
      separately with [`gradient_penalty`]).
    - `hinge` (Lim & Ye 2017; Miyato et al. 2018): relu(1 - real) + relu(1 + fake).
    """
    _check_loss(loss)
    if loss in ("minimax", "non-saturating"):
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    if loss == "lsgan":
        return 0.5 * ((real_logits - 1) ** 2).mean() + 0.5 * (fake_logits**2).mean()
    if loss in ("wgan", "wgan-gp"):
        return fake_logits.mean() - real_logits.mean()
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor, loss: str) -> torch.Tensor:
    r"""
    The generator's loss on the discriminator's scores of its images.

    - `minimax`: minimises E[log(1 - D(G(z)))] = -softplus(fake): the original objective, whose gradient vanishes
      while D confidently rejects the samples.
    - `non-saturating`: maximises E[log D(G(z))] instead, i.e. minimises softplus(-fake).
    - `lsgan`: (fake - 1)^2 / 2.
    - `wgan` / `wgan-gp` / `hinge`: -fake.
    """
    _check_loss(loss)
    if loss == "minimax":
        return -F.softplus(fake_logits).mean()
    if loss == "non-saturating":
        return F.softplus(-fake_logits).mean()
    if loss == "lsgan":
        return 0.5 * ((fake_logits - 1) ** 2).mean()
    return -fake_logits.mean()


def gradient_penalty(
    critic,
    real_images: torch.Tensor,
    fake_images: torch.Tensor,
    weight: float = 10.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""
    WGAN-GP's penalty (Gulrajani et al. 2017): weight * E[(||grad_x critic(x_hat)||_2 - 1)^2] at random points
    x_hat = t * real + (1 - t) * fake, one t ~ U[0, 1] per image.

    Args:
        critic (`Callable[[torch.Tensor], torch.Tensor]`):
            Maps images to one score per image (a discriminator, or a closure that adds its class labels).
        real_images, fake_images (`torch.Tensor`):
            Batches of the same shape; `fake_images` is detached here, the penalty only trains the critic.
        weight (`float`, *optional*, defaults to 10.0):
            lambda of the paper.
        generator (`torch.Generator`, *optional*):
            Source of the interpolation weights t; the global RNG otherwise.
    """
    if real_images.shape != fake_images.shape:
        raise ValueError(
            f"real and fake batches differ in shape: {tuple(real_images.shape)} vs {tuple(fake_images.shape)}"
        )
    shape = (real_images.shape[0],) + (1,) * (real_images.ndim - 1)
    t = torch.rand(shape, generator=generator, device=real_images.device if generator is None else generator.device)
    t = t.to(device=real_images.device, dtype=real_images.dtype)
    interpolates = (t * real_images.detach() + (1 - t) * fake_images.detach()).requires_grad_(True)
    scores = critic(interpolates)
    (gradients,) = torch.autograd.grad(scores.sum(), interpolates, create_graph=True)
    norms = gradients.flatten(1).norm(2, dim=1)
    return weight * ((norms - 1) ** 2).mean()


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    r"""
    R1 (Mescheder et al. 2018): E[||grad_x D(x)||^2] on real images, without the gamma / 2 factor (the caller
    scales it, and multiplies by the lazy-regularisation interval when it runs every k steps).

    `real_images` must have had `requires_grad_(True)` before the discriminator produced `real_logits`.
    """
    if not real_images.requires_grad:
        raise ValueError("r1_penalty needs real_images.requires_grad_(True) before the discriminator forward")
    (gradients,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
    return gradients.flatten(1).pow(2).sum(dim=1).mean()


def drift_penalty(real_logits: torch.Tensor) -> torch.Tensor:
    r"""
    ProGAN's drift term (Karras et al. 2018, appendix A.1): E[D(x)^2] on real images, without its weight (0.001 in
    the paper, which the caller applies). It keeps a WGAN critic's scores from drifting far from zero, where the
    Wasserstein loss alone leaves them free.
    """
    return real_logits.pow(2).mean()


def augmented_r1_penalty(discriminate, real_images: torch.Tensor, augment=None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""
    R1 for a discriminator that sees augmented images: the gradient is taken with respect to the *un-augmented* real
    images, through the (differentiable) augmentation, as StyleGAN2-ADA and DiffAugment do. Taking it with respect to
    the augmented images instead would penalise a different function of the data, one that changes with the
    augmentation probability.

    Args:
        discriminate (`Callable[[torch.Tensor], torch.Tensor]`):
            Maps images to one logit per image (a discriminator, or a closure that adds class labels).
        real_images (`torch.Tensor`):
            The real batch before augmentation; it is detached here, so the penalty only trains the discriminator.
        augment (`Callable[[torch.Tensor], torch.Tensor]`, *optional*):
            Differentiable augmentation; None for none.

    Returns:
        `(penalty, real_logits)`: the penalty without the gamma / 2 factor, and the logits it was taken on.
    """
    reals = real_images.detach().requires_grad_(True)
    real_logits = discriminate(augment(reals) if augment is not None else reals)
    return r1_penalty(real_logits, reals), real_logits


def path_length_penalty(
    fake_images: torch.Tensor,
    ws: torch.Tensor,
    mean_path_length: torch.Tensor,
    decay: float = 0.01,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""
    StyleGAN 2's path-length regulariser (Karras et al. 2020): E[(||J_w^T y||_2 - a)^2], where J_w is the Jacobian
    of the images with respect to W, y is Gaussian noise scaled by 1 / sqrt(pixels), and a is a running mean of the
    lengths.

    Args:
        fake_images (`torch.Tensor`): images generated from `ws`, still attached to the graph.
        ws (`torch.Tensor`): the W latents `(batch, num_ws, w_dim)` that produced them (`requires_grad` or part of
            the graph).
        mean_path_length (`torch.Tensor`): the running mean a (a scalar tensor; 0 before the first call).
        decay (`float`): how fast a follows the measured lengths.
        generator (`torch.Generator`, *optional*): source of y.

    Returns:
        `(penalty, new_mean_path_length)`; the new mean is detached, for the caller to keep.
    """
    if fake_images.shape[0] == 0:
        raise ValueError("path_length_penalty needs at least one image")
    pixels = fake_images.shape[-2] * fake_images.shape[-1]
    noise = torch.randn(
        fake_images.shape, generator=generator, device=fake_images.device if generator is None else generator.device
    )
    noise = noise.to(fake_images) / pixels**0.5
    (gradients,) = torch.autograd.grad((fake_images * noise).sum(), ws, create_graph=True)
    lengths = gradients.pow(2).sum(dim=2).mean(dim=1).sqrt()
    new_mean = mean_path_length.detach() + decay * (lengths.detach().mean() - mean_path_length.detach())
    penalty = (lengths - new_mean).pow(2).mean()
    return penalty, new_mean
