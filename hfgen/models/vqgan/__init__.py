"""What hfgen adds to `diffusers.VQModel` to train a VQ-GAN: quantisation with its loss terms apart and code-usage
statistics (`codebook.py`), EMA codebook updates (`codebook_ema.py`), restarts of dead codes (`code_restarts.py`), a
perceptual loss through a transformers backbone (`perceptual.py`), the GPT-2 token prior's format (`prior.py`), and
the training step's forward and codebook update (`training.py`).
The autoencoder itself is diffusers' `VQModel`, the discriminator hfgen's PatchGAN (`CycleGANDiscriminator`)."""

from .code_restarts import DeadCodeRestarts
from .codebook import (
    QuantizerOutput,
    code_counts,
    codebook_perplexity,
    nearest_codes,
    quantize,
    unused_code_share,
)
from .codebook_ema import EMACodebook
from .perceptual import PerceptualLoss, load_perceptual_loss
from .prior import code_sequences, prior_config, start_token
from .training import VQGANAutoencoder, update_codebook

__all__ = [
    "DeadCodeRestarts",
    "EMACodebook",
    "PerceptualLoss",
    "QuantizerOutput",
    "VQGANAutoencoder",
    "code_counts",
    "code_sequences",
    "codebook_perplexity",
    "load_perceptual_loss",
    "nearest_codes",
    "prior_config",
    "quantize",
    "start_token",
    "unused_code_share",
    "update_codebook",
]
