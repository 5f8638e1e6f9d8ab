"""hfgen's convolutional variational autoencoder (Kingma & Welling 2014; beta-VAE, Higgins et al. 2017).

The interface matches diffusers' `AutoencoderKL`: `encode(x).latent_dist` is a diagonal Gaussian with
`sample(generator=...)`, `mode()` and `kl()`, `decode(z).sample` is the image, and `config.scaling_factor` scales
latents for a diffusion model. `forward` adds what training needs: the reconstruction and the loss terms.

LoRA (PEFT) reaches every `nn.Conv2d`; the recommended decoder targets are listed in `LORA_DECODER_TARGETS`.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from torch import nn
from transformers import PreTrainedModel  # noqa: F401
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.utils import ModelOutput

from ..modeling_utils import HfgenPreTrainedModel
from .configuration_vae import VAEConfig

# `PreTrainedModel` stays imported by that name: diffusers loads a pipeline component by looking a base class it
# knows up in the component's module, whose path pipeline folders record.

LORA_DECODER_TARGETS = ["decoder.conv_in", "conv1", "conv2", "upsample.conv", "decoder.conv_out"]
"""`target_modules` for LoRA on the decoder; use with `exclude_modules=r"encoder\\..*"` (see tests/models)."""


@dataclass
class VAEEncoderOutput(ModelOutput):
    """
    Args:
        latent_dist (`DiagonalGaussianDistribution`):
            Posterior q(z|x): mean and log-variance of shape `(batch, latent_channels, latent_size, latent_size)`.
    """

    latent_dist: DiagonalGaussianDistribution = None


@dataclass
class VAEDecoderOutput(ModelOutput):
    """
    Args:
        sample (`torch.FloatTensor` of shape `(batch, out_channels, height, width)`):
            Decoded images, in the range of the training data ([-1, 1] for hfgen's scripts).
    """

    sample: torch.FloatTensor = None


@dataclass
class VAEOutput(ModelOutput):
    """
    Args:
        loss (`torch.FloatTensor` of shape `()`):
            `reconstruction_loss + config.kl_weight * kl_loss`, the negative ELBO when `kl_weight` is 1.
        reconstruction_loss (`torch.FloatTensor` of shape `()`):
            Per-image sum of squared (or absolute) errors, averaged over the batch.
        kl_loss (`torch.FloatTensor` of shape `()`):
            KL(q(z|x) || N(0, I)) per image, averaged over the batch.
        sample (`torch.FloatTensor` of shape `(batch, out_channels, height, width)`):
            The reconstruction.
        latent_dist (`DiagonalGaussianDistribution`):
            The posterior the reconstruction was decoded from.
    """

    loss: torch.FloatTensor = None
    reconstruction_loss: torch.FloatTensor = None
    kl_loss: torch.FloatTensor = None
    sample: torch.FloatTensor = None
    latent_dist: DiagonalGaussianDistribution = None


class VAEResnetBlock(GradientCheckpointingLayer):
    """GroupNorm -> SiLU -> 3x3 conv, twice, with a 1x1 projection on the skip path when the width changes."""

    def __init__(self, in_channels: int, out_channels: int, norm_num_groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(norm_num_groups, in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.norm2 = nn.GroupNorm(norm_num_groups, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, kernel_size=1) if in_channels != out_channels else None

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        residual = hidden_states if self.skip is None else self.skip(hidden_states)
        hidden_states = self.conv1(F.silu(self.norm1(hidden_states)))
        hidden_states = self.conv2(F.silu(self.norm2(hidden_states)))
        return residual + hidden_states


class VAEDownsample(nn.Module):
    """Strided 3x3 convolution: halves height and width."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=1)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.conv(hidden_states)


class VAEUpsample(nn.Module):
    """Nearest-neighbour upsampling then a 3x3 convolution (not a transposed conv, so LoRA can reach it)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(hidden_states, scale_factor=2.0, mode="nearest"))


class VAEEncoderLevel(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, num_layers: int, norm_num_groups: int, downsample: bool):
        super().__init__()
        self.resnets = nn.ModuleList(
            VAEResnetBlock(in_channels if i == 0 else out_channels, out_channels, norm_num_groups)
            for i in range(num_layers)
        )
        self.downsample = VAEDownsample(out_channels) if downsample else None

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        for resnet in self.resnets:
            hidden_states = resnet(hidden_states)
        if self.downsample is not None:
            hidden_states = self.downsample(hidden_states)
        return hidden_states


class VAEDecoderLevel(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, num_layers: int, norm_num_groups: int, upsample: bool):
        super().__init__()
        self.resnets = nn.ModuleList(
            VAEResnetBlock(in_channels if i == 0 else out_channels, out_channels, norm_num_groups)
            for i in range(num_layers)
        )
        self.upsample = VAEUpsample(out_channels) if upsample else None

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        for resnet in self.resnets:
            hidden_states = resnet(hidden_states)
        if self.upsample is not None:
            hidden_states = self.upsample(hidden_states)
        return hidden_states


class VAEEncoder(nn.Module):
    """Images to the mean and log-variance of q(z|x), stacked on the channel axis."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        channels = config.block_out_channels
        self.conv_in = nn.Conv2d(config.in_channels, channels[0], kernel_size=3, padding=1)
        self.levels = nn.ModuleList(
            VAEEncoderLevel(
                channels[max(i - 1, 0)],
                channels[i],
                config.layers_per_block,
                config.norm_num_groups,
                downsample=i < len(channels) - 1,
            )
            for i in range(len(channels))
        )
        self.mid = VAEResnetBlock(channels[-1], channels[-1], config.norm_num_groups)
        self.norm_out = nn.GroupNorm(config.norm_num_groups, channels[-1])
        self.conv_out = nn.Conv2d(channels[-1], 2 * config.latent_channels, kernel_size=3, padding=1)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        # 1. lift the pixels to features
        hidden_states = self.conv_in(pixel_values)
        # 2. residual levels, each but the last halving the resolution
        for level in self.levels:
            hidden_states = level(hidden_states)
        # 3. middle block, then project to mean and log-variance
        hidden_states = self.mid(hidden_states)
        return self.conv_out(F.silu(self.norm_out(hidden_states)))


class VAEDecoder(nn.Module):
    """Latents back to images: the encoder mirrored, with nearest-neighbour upsampling."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        channels = list(reversed(config.block_out_channels))
        self.conv_in = nn.Conv2d(config.latent_channels, channels[0], kernel_size=3, padding=1)
        self.mid = VAEResnetBlock(channels[0], channels[0], config.norm_num_groups)
        self.levels = nn.ModuleList(
            VAEDecoderLevel(
                channels[max(i - 1, 0)],
                channels[i],
                config.layers_per_block,
                config.norm_num_groups,
                upsample=i < len(channels) - 1,
            )
            for i in range(len(channels))
        )
        self.norm_out = nn.GroupNorm(config.norm_num_groups, channels[-1])
        self.conv_out = nn.Conv2d(channels[-1], config.out_channels, kernel_size=3, padding=1)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        # 1. lift the latent to features and run the middle block
        hidden_states = self.mid(self.conv_in(latents))
        # 2. residual levels, each but the last doubling the resolution
        for level in self.levels:
            hidden_states = level(hidden_states)
        # 3. project to pixels
        return self.conv_out(F.silu(self.norm_out(hidden_states)))


class VAEPreTrainedModel(HfgenPreTrainedModel):
    config: VAEConfig
    config_class = VAEConfig
    base_model_prefix = "vae"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _no_split_modules = ("VAEResnetBlock",)

    def _init_weights(self, module):
        # PyTorch's own default (uniform in +-1/sqrt(fan_in)): transformers' default N(0, 0.02) is meant for
        # transformers and starves a deep conv stack without attention of signal.
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            fan_in = module.weight[0].numel()
            bound = 1.0 / math.sqrt(fan_in)
            init.uniform_(module.weight, -bound, bound)
            if module.bias is not None:
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.GroupNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)


class VAEModel(VAEPreTrainedModel):
    """Convolutional VAE with a diagonal Gaussian posterior over a spatial latent and a beta-weighted KL term.

    Example:

    ```python
    >>> import torch, hfgen
    >>> vae = hfgen.VAEModel(hfgen.VAEConfig(in_channels=1, sample_size=32))
    >>> images = torch.rand(2, 1, 32, 32) * 2 - 1
    >>> posterior = vae.encode(images).latent_dist                        # (2, 4, 8, 8) mean / log-variance
    >>> recon = vae.decode(posterior.sample(generator=torch.Generator().manual_seed(0))).sample
    >>> loss = vae(images, sample_posterior=True).loss                    # reconstruction + kl_weight * KL
    ```
    """

    def __init__(self, config: VAEConfig):
        super().__init__(config)
        self.encoder = VAEEncoder(config)
        self.decoder = VAEDecoder(config)
        self.post_init()

    def _check_pixels(self, pixel_values: torch.Tensor) -> None:
        expected = self.config.in_channels
        downsampling = 2 ** (len(self.config.block_out_channels) - 1)
        if pixel_values.ndim != 4 or pixel_values.shape[1] != expected:
            raise ValueError(
                f"pixel_values must have shape (batch, {expected}, height, width), got {tuple(pixel_values.shape)}"
            )
        if pixel_values.shape[2] % downsampling or pixel_values.shape[3] % downsampling:
            raise ValueError(
                f"height and width of pixel_values {tuple(pixel_values.shape)} must be divisible by {downsampling}"
            )

    def encode(self, pixel_values: torch.Tensor, return_dict: bool | None = None):
        r"""
        Encode images to the posterior q(z|x).

        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch, in_channels, height, width)`):
                Images, in the range the VAE is trained on ([-1, 1] in hfgen's scripts).
            return_dict (`bool`, *optional*):
                Return a [`VAEEncoderOutput`] (default: `config.return_dict`) or the tuple `(latent_dist,)`.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        self._check_pixels(pixel_values)
        latent_dist = DiagonalGaussianDistribution(self.encoder(pixel_values))
        return VAEEncoderOutput(latent_dist=latent_dist) if return_dict else (latent_dist,)

    def decode(self, latents: torch.Tensor, return_dict: bool | None = None):
        r"""
        Decode latents to images.

        Args:
            latents (`torch.FloatTensor` of shape `(batch, latent_channels, height, width)`):
                Latents, e.g. `encode(x).latent_dist.sample()` (unscaled: divide a diffusion model's latents by
                `config.scaling_factor` first).
            return_dict (`bool`, *optional*):
                Return a [`VAEDecoderOutput`] (default: `config.return_dict`) or the tuple `(sample,)`.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if latents.ndim != 4 or latents.shape[1] != self.config.latent_channels:
            raise ValueError(
                f"latents must have shape (batch, {self.config.latent_channels}, height, width), "
                f"got {tuple(latents.shape)}"
            )
        sample = self.decoder(latents)
        return VAEDecoderOutput(sample=sample) if return_dict else (sample,)

    def reconstruction_loss(self, reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-image sum of the pixel errors, averaged over the batch (negative log-likelihood up to constants)."""
        errors = (
            (reconstruction - target).pow(2)
            if self.config.reconstruction_loss == "mse"
            else (reconstruction - target).abs()
        )
        return errors.flatten(1).sum(dim=1).mean()

    def forward(
        self,
        pixel_values: torch.Tensor,
        sample_posterior: bool = False,
        generator: torch.Generator | None = None,
        return_dict: bool | None = None,
    ):
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch, in_channels, height, width)`):
                Images, in the range the VAE is trained on ([-1, 1] in hfgen's scripts).
            sample_posterior (`bool`, *optional*, defaults to `False`):
                Decode a reparameterised sample of q(z|x) (what training needs: pass `True`) or, by default, its mean,
                so that evaluation is deterministic, as in diffusers' `AutoencoderKL`.
            generator (`torch.Generator`, *optional*):
                Source of the posterior sample's noise when `sample_posterior=True`, for reproducible results.
            return_dict (`bool`, *optional*):
                Return a [`VAEOutput`] (default: `config.return_dict`) or the tuple
                `(loss, reconstruction_loss, kl_loss, sample, latent_dist)`.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        # 1. posterior q(z|x)
        (latent_dist,) = self.encode(pixel_values, return_dict=False)
        # 2. reparameterised sample (or the mean) and its reconstruction
        latents = latent_dist.sample(generator=generator) if sample_posterior else latent_dist.mode()
        (reconstruction,) = self.decode(latents, return_dict=False)
        # 3. loss terms: reconstruction + beta * KL to the standard normal prior
        reconstruction_loss = self.reconstruction_loss(reconstruction, pixel_values)
        kl_loss = latent_dist.kl().mean()
        loss = reconstruction_loss + self.config.kl_weight * kl_loss
        if not return_dict:
            return (loss, reconstruction_loss, kl_loss, reconstruction, latent_dist)
        return VAEOutput(
            loss=loss,
            reconstruction_loss=reconstruction_loss,
            kl_loss=kl_loss,
            sample=reconstruction,
            latent_dist=latent_dist,
        )


__all__ = ["VAEDecoderOutput", "VAEEncoderOutput", "VAEModel", "VAEOutput", "VAEPreTrainedModel"]
