"""Diffusion training objectives as pure functions of a scheduler's noise schedule and tensors.

- `diffusion_target`: what the network regresses for a `prediction_type` (Ho et al. 2020's noise, Salimans & Ho
  2022's velocity, or the clean sample).
- `min_snr_loss_weights`: Hang et al. 2023's min-SNR-gamma weighting of the per-timestep losses.
- `diffusion_loss`: the mean squared error, optionally weighted per image.
- `denoising_score_matching_loss`: Song & Ermon 2019's objective for a noise-conditional score network.

The noise schedule comes from a diffusers scheduler (`alphas_cumprod`); nothing here draws random numbers.
"""

import torch
import torch.nn.functional as F

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


def _per_image(values: torch.Tensor, ndim: int) -> torch.Tensor:
    """`values` of shape `(batch,)` reshaped to broadcast over images of `ndim` dimensions."""
    return values.reshape(-1, *([1] * (ndim - 1)))


def diffusion_target(
    prediction_type: str, samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor, alphas_cumprod
) -> torch.Tensor:
    r"""
    The regression target of a network fed x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) noise (a_t: `alphas_cumprod[t]`).

    Args:
        prediction_type (`str`): `"epsilon"` (the noise), `"v_prediction"` (v = sqrt(a_t) noise - sqrt(1 - a_t) x_0)
            or `"sample"` (x_0 itself).
        samples (`torch.Tensor`): the clean images or latents x_0.
        noise (`torch.Tensor`): the noise added to them.
        timesteps (`torch.Tensor` of shape `(batch,)`): the integer timestep of each image.
        alphas_cumprod (`torch.Tensor`): the scheduler's cumulative products of alphas, indexed by timestep.
    """
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "sample":
        return samples
    if prediction_type == "v_prediction":
        alpha_bar = alphas_cumprod.to(device=samples.device, dtype=samples.dtype)[timesteps]
        alpha_bar = _per_image(alpha_bar, samples.ndim)
        return alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * samples
    raise ValueError(f"unknown prediction_type {prediction_type!r}: choose one of {PREDICTION_TYPES}")


def signal_to_noise_ratio(timesteps: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """SNR(t) = a_t / (1 - a_t) of each timestep."""
    alpha_bar = alphas_cumprod.to(timesteps.device)[timesteps].float()
    return alpha_bar / (1 - alpha_bar)


def min_snr_loss_weights(
    timesteps: torch.Tensor, alphas_cumprod: torch.Tensor, gamma: float, prediction_type: str
) -> torch.Tensor:
    r"""
    Per-image weights of the min-SNR-gamma strategy (Hang et al. 2023): the loss on x_0 is weighted by
    min(SNR(t), gamma), which stops the many easy low-noise timesteps from dominating training. Expressed for the
    target actually regressed: min(SNR, gamma) / SNR for noise, min(SNR, gamma) / (SNR + 1) for velocity,
    min(SNR, gamma) for x_0. Returns a tensor of shape `(batch,)`.
    """
    snr = signal_to_noise_ratio(timesteps, alphas_cumprod)
    clipped = torch.clamp(snr, max=gamma)
    if prediction_type == "epsilon":
        return clipped / snr
    if prediction_type == "v_prediction":
        return clipped / (snr + 1)
    if prediction_type == "sample":
        return clipped
    raise ValueError(f"unknown prediction_type {prediction_type!r}: choose one of {PREDICTION_TYPES}")


def diffusion_loss(
    prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean squared error between `prediction` and `target`; with `weights` (one per image), the per-image mean
    errors are weighted before averaging over the batch."""
    if weights is None:
        return F.mse_loss(prediction.float(), target.float())
    per_image = F.mse_loss(prediction.float(), target.float(), reduction="none").flatten(1).mean(dim=1)
    return (per_image * weights).mean()


def denoising_score_matching_loss(
    scaled_score: torch.Tensor, noise: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    r"""
    Denoising score matching over noise levels (Song & Ermon 2019, with their weighting lambda(sigma) = sigma^2).

    For x_sigma = x + sigma z the score of the perturbed data is -z / sigma, so
    sigma^2 ||s(x_sigma, sigma) + z / sigma||^2 = ||sigma s(x_sigma, sigma) + z||^2. `scaled_score` is sigma times
    the network's score (what a `UNet2DModel` with Fourier time embedding computes before its final division by
    sigma), `noise` is z. Averaged over the pixels (the paper sums them: the same gradients up to a constant, which
    Adam ignores, but readable losses and gradient norms that `--max_grad_norm` can clip as for DDPM) and the batch;
    with `weights`, per image.
    """
    per_image = (scaled_score.float() + noise.float()).square().flatten(1).mean(dim=1)
    if weights is not None:
        per_image = per_image * weights
    return per_image.mean()
