"""Diffusion objectives against the formulas worked out by hand and against iterating the one-step process."""

import math

import pytest
import torch
from diffusers import DDPMScheduler

from hfgen.losses import (
    denoising_score_matching_loss,
    diffusion_loss,
    diffusion_target,
    min_snr_loss_weights,
    signal_to_noise_ratio,
)


@pytest.mark.parametrize("beta_schedule", ["linear", "squaredcos_cap_v2", "scaled_linear"])
def test_closed_form_forward_noising_equals_iterating_the_one_step_process(beta_schedule):
    # q(x_t | x_0) in closed form (what training samples from) must be the distribution of t applications of
    # q(x_s | x_{s-1}) = N(sqrt(1 - beta_s) x_{s-1}, beta_s I). Iterating with fresh noise gives the same Gaussian:
    # compare the mean and variance of many chains with the closed form's.
    scheduler = DDPMScheduler(num_train_timesteps=50, beta_schedule=beta_schedule)
    generator = torch.Generator().manual_seed(0)
    x0 = torch.full((20000,), 0.7)
    t = 37
    x = x0.clone()
    for s in range(t + 1):
        beta = scheduler.betas[s]
        x = (1 - beta).sqrt() * x + beta.sqrt() * torch.randn(x.shape, generator=generator)
    alpha_bar = scheduler.alphas_cumprod[t]
    closed = scheduler.add_noise(x0, torch.randn(x0.shape, generator=generator), torch.tensor([t]))
    assert math.isclose(x.mean().item(), (alpha_bar.sqrt() * 0.7).item(), abs_tol=0.02)
    assert math.isclose(x.var().item(), (1 - alpha_bar).item(), rel_tol=0.03)
    assert math.isclose(closed.mean().item(), x.mean().item(), abs_tol=0.03)
    assert math.isclose(closed.var().item(), x.var().item(), rel_tol=0.05)
    # and the deterministic part: with zero noise every step just scales by sqrt(1 - beta)
    product = torch.prod((1 - scheduler.betas[: t + 1]).sqrt())
    assert torch.allclose(product, alpha_bar.sqrt())


def test_targets_of_each_prediction_type():
    scheduler = DDPMScheduler(num_train_timesteps=100)
    samples, noise = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    timesteps = torch.tensor([0, 50, 99])
    alphas_cumprod = scheduler.alphas_cumprod
    assert torch.equal(diffusion_target("epsilon", samples, noise, timesteps, alphas_cumprod), noise)
    assert torch.equal(diffusion_target("sample", samples, noise, timesteps, alphas_cumprod), samples)
    velocity = diffusion_target("v_prediction", samples, noise, timesteps, alphas_cumprod)
    assert torch.allclose(velocity, scheduler.get_velocity(samples, noise, timesteps), atol=1e-6)
    a = alphas_cumprod[50]
    assert torch.allclose(velocity[1], a.sqrt() * noise[1] - (1 - a).sqrt() * samples[1], atol=1e-6)
    with pytest.raises(ValueError, match="unknown prediction_type 'score'"):
        diffusion_target("score", samples, noise, timesteps, alphas_cumprod)


def test_min_snr_weights():
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    timesteps = torch.tensor([0, 300, 999])
    snr = signal_to_noise_ratio(timesteps, scheduler.alphas_cumprod)
    a = scheduler.alphas_cumprod[timesteps]
    assert torch.allclose(snr, a / (1 - a))
    gamma = 5.0
    clipped = torch.minimum(snr, torch.tensor(gamma))
    epsilon = min_snr_loss_weights(timesteps, scheduler.alphas_cumprod, gamma, "epsilon")
    assert torch.allclose(epsilon, clipped / snr)
    # early timesteps (SNR far above gamma) are weighted down; late ones (SNR below gamma) keep weight 1
    assert epsilon[0] < 0.01 and epsilon[2] == 1
    velocity = min_snr_loss_weights(timesteps, scheduler.alphas_cumprod, gamma, "v_prediction")
    assert torch.allclose(velocity, clipped / (snr + 1))
    assert torch.allclose(min_snr_loss_weights(timesteps, scheduler.alphas_cumprod, gamma, "sample"), clipped)


def test_weighted_and_unweighted_losses():
    prediction = torch.zeros(2, 1, 2, 2)
    target = torch.stack([torch.ones(1, 2, 2), 2 * torch.ones(1, 2, 2)])
    assert diffusion_loss(prediction, target).item() == pytest.approx((1 + 4) / 2)
    weights = torch.tensor([1.0, 0.0])
    assert diffusion_loss(prediction, target, weights).item() == pytest.approx(1 / 2)


def test_denoising_score_matching_is_zero_for_the_true_score():
    # For x + sigma z, the score of the perturbation kernel at the sample is -z / sigma: sigma times it is -z.
    noise = torch.randn(4, 1, 3, 3)
    assert denoising_score_matching_loss(-noise, noise).item() == 0
    assert denoising_score_matching_loss(torch.zeros_like(noise), noise).item() == pytest.approx(
        noise.square().flatten(1).mean(1).mean().item()
    )
