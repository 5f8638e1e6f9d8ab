"""GAN losses and regularisers against values worked out by hand and against autograd on toy functions."""

import math

import pytest
import torch

from hfgen.losses import (
    GAN_LOSSES,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    path_length_penalty,
    r1_penalty,
)

REAL = torch.tensor([2.0, -1.0])
FAKE = torch.tensor([0.5, -3.0])


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_minimax_discriminator_loss_is_the_negative_log_likelihood_of_the_seed_formula():
    # D maximises log D(x) + log(1 - D(G(z))) with D = sigmoid(logit).
    sigmoid = torch.sigmoid
    expected = -(torch.log(sigmoid(REAL)).mean() + torch.log(1 - sigmoid(FAKE)).mean())
    assert discriminator_loss(REAL, FAKE, "minimax").item() == pytest.approx(expected.item(), rel=1e-6)
    by_hand = (softplus(-2.0) + softplus(1.0)) / 2 + (softplus(0.5) + softplus(-3.0)) / 2
    assert discriminator_loss(REAL, FAKE, "non-saturating").item() == pytest.approx(by_hand, rel=1e-6)


def test_generator_losses_by_hand():
    # minimax: mean log(1 - sigmoid(f)) = -mean softplus(f)
    assert generator_loss(FAKE, "minimax").item() == pytest.approx(-(softplus(0.5) + softplus(-3.0)) / 2, rel=1e-6)
    # non-saturating: -mean log sigmoid(f) = mean softplus(-f)
    assert generator_loss(FAKE, "non-saturating").item() == pytest.approx(
        (softplus(-0.5) + softplus(3.0)) / 2, rel=1e-6
    )
    # LSGAN: mean (f - 1)^2 / 2 = ((-0.5)^2 + (-4)^2) / 4
    assert generator_loss(FAKE, "lsgan").item() == pytest.approx((0.25 + 16.0) / 4)
    for name in ("wgan", "wgan-gp", "hinge"):
        assert generator_loss(FAKE, name).item() == pytest.approx(1.25)


def test_discriminator_losses_by_hand():
    # LSGAN: ((2-1)^2 + (-1-1)^2) / 4 + (0.5^2 + 3^2) / 4
    assert discriminator_loss(REAL, FAKE, "lsgan").item() == pytest.approx((1 + 4) / 4 + (0.25 + 9) / 4)
    # WGAN: mean fake - mean real = -1.25 - 0.5
    assert discriminator_loss(REAL, FAKE, "wgan").item() == pytest.approx(-1.75)
    assert discriminator_loss(REAL, FAKE, "wgan-gp").item() == pytest.approx(-1.75)
    # hinge: mean relu(1 - real) = (0 + 2) / 2, mean relu(1 + fake) = (1.5 + 0) / 2
    assert discriminator_loss(REAL, FAKE, "hinge").item() == pytest.approx(1.0 + 0.75)


def test_non_saturating_generator_gets_a_gradient_where_minimax_saturates():
    # D confidently rejects the sample (logit -10): minimax's gradient nearly vanishes, non-saturating's does not.
    gradients = {}
    for name in ("minimax", "non-saturating"):
        logit = torch.tensor([-10.0], requires_grad=True)
        generator_loss(logit, name).backward()
        gradients[name] = logit.grad.abs().item()
    assert gradients["minimax"] < 1e-4 < 0.99 < gradients["non-saturating"]


def test_unknown_loss_names_fail_clearly():
    assert "wgan-gp" in GAN_LOSSES
    with pytest.raises(ValueError, match="unknown GAN loss 'wasserstein'"):
        discriminator_loss(REAL, FAKE, "wasserstein")
    with pytest.raises(ValueError, match="unknown GAN loss"):
        generator_loss(FAKE, "bce")


def test_gradient_penalty_of_a_linear_critic_is_closed_form():
    # critic(x) = <a, x>: its gradient is a everywhere, so the penalty is weight * (||a|| - 1)^2 for any t.
    a = torch.tensor([3.0, 4.0, 0.0, 0.0]).reshape(1, 1, 2, 2)

    def critic(images):
        return (images * a).flatten(1).sum(1)

    real, fake = torch.randn(5, 1, 2, 2), torch.randn(5, 1, 2, 2)
    penalty = gradient_penalty(critic, real, fake, weight=10.0, generator=torch.Generator().manual_seed(0))
    assert penalty.item() == pytest.approx(10.0 * (5.0 - 1.0) ** 2, rel=1e-6)


def test_gradient_penalty_matches_autograd_at_the_interpolates_and_trains_the_critic():
    # critic(x) = sum(w * x^2): gradient 2 w x, evaluated at x_hat = t real + (1 - t) fake with the same t.
    weight = torch.tensor([[[[0.5, -1.0], [2.0, 0.25]]]], requires_grad=True)

    def critic(images):
        return (weight * images**2).flatten(1).sum(1)

    real, fake = torch.randn(4, 1, 2, 2), torch.randn(4, 1, 2, 2)
    penalty = gradient_penalty(critic, real, fake, weight=10.0, generator=torch.Generator().manual_seed(3))
    t = torch.rand(4, 1, 1, 1, generator=torch.Generator().manual_seed(3))
    x_hat = t * real + (1 - t) * fake
    norms = (2 * weight.detach() * x_hat).flatten(1).norm(dim=1)
    assert penalty.item() == pytest.approx((10.0 * (norms - 1) ** 2).mean().item(), rel=1e-5)
    penalty.backward()  # create_graph=True: the penalty reaches the critic's parameters
    assert weight.grad is not None and weight.grad.abs().sum() > 0


def test_gradient_penalty_rejects_mismatched_batches():
    with pytest.raises(ValueError, match="real and fake batches differ in shape"):
        gradient_penalty(lambda x: x.sum((1, 2, 3)), torch.zeros(2, 1, 4, 4), torch.zeros(3, 1, 4, 4))


def test_r1_penalty_of_a_quadratic_discriminator():
    # D(x) = sum(x^2) / 2: gradient x, so R1 = mean over images of ||x||^2.
    images = torch.randn(3, 1, 4, 4).requires_grad_(True)
    logits = (images**2).flatten(1).sum(1) / 2
    expected = images.detach().flatten(1).pow(2).sum(1).mean()
    assert r1_penalty(logits, images).item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match="requires_grad_"):
        r1_penalty(logits.detach(), images.detach())


def test_path_length_penalty_of_a_linear_generator():
    # images = c * sum over ws of w (broadcast to pixels): J^T y = c * sum(y) per w entry, so the length is closed
    # form.
    batch, num_ws, w_dim, size = 2, 3, 4, 2
    ws = torch.randn(batch, num_ws, w_dim, requires_grad=True)
    c = 1.5
    images = c * ws.sum(dim=(1, 2))[:, None, None, None].expand(batch, 1, size, size)
    generator = torch.Generator().manual_seed(0)
    penalty, mean = path_length_penalty(images, ws, torch.tensor(0.0), decay=0.5, generator=generator)
    noise = torch.randn(batch, 1, size, size, generator=torch.Generator().manual_seed(0)) / size
    # d(sum images * noise)/d ws[b, i, j] = c * sum(noise[b]) for every (i, j)
    per_entry = c * noise.flatten(1).sum(1)
    lengths = ((per_entry**2) * w_dim).sqrt()  # sqrt(mean over num_ws of the sum over w_dim of squares)
    expected_mean = 0.5 * lengths.mean()
    assert mean.item() == pytest.approx(expected_mean.item(), rel=1e-5)
    assert penalty.item() == pytest.approx(((lengths - expected_mean) ** 2).mean().item(), rel=1e-5)
