"""Loss functions as pure functions: no optimizer, accelerator or random state inside."""

from .gan import (
    GAN_LOSSES,
    augmented_r1_penalty,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    path_length_penalty,
    r1_penalty,
)

__all__ = [
    "GAN_LOSSES",
    "augmented_r1_penalty",
    "discriminator_loss",
    "generator_loss",
    "gradient_penalty",
    "path_length_penalty",
    "r1_penalty",
]
