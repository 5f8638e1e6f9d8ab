"""Loss functions as pure functions: no optimizer, accelerator or random state inside."""

from .detection import detection_matching_loss, hungarian_match, sigmoid_focal_loss
from .diffusion import (
    PREDICTION_TYPES,
    denoising_score_matching_loss,
    diffusion_loss,
    diffusion_target,
    min_snr_loss_weights,
    signal_to_noise_ratio,
)
from .gan import (
    GAN_LOSSES,
    augmented_r1_penalty,
    discriminator_loss,
    drift_penalty,
    generator_loss,
    gradient_penalty,
    path_length_penalty,
    r1_penalty,
)
from .translation import cycle_consistency_loss, identity_loss, paired_l1_loss
from .vqgan import adaptive_adversarial_weight, pyramid_l1

__all__ = [
    "PREDICTION_TYPES",
    "denoising_score_matching_loss",
    "diffusion_loss",
    "diffusion_target",
    "min_snr_loss_weights",
    "signal_to_noise_ratio",
    "GAN_LOSSES",
    "augmented_r1_penalty",
    "discriminator_loss",
    "drift_penalty",
    "generator_loss",
    "gradient_penalty",
    "path_length_penalty",
    "r1_penalty",
    "cycle_consistency_loss",
    "identity_loss",
    "paired_l1_loss",
    "adaptive_adversarial_weight",
    "pyramid_l1",
    "detection_matching_loss",
    "hungarian_match",
    "sigmoid_focal_loss",
]
