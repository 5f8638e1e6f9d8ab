"""Configuration of hfgen's convolutional variational autoencoder (VAE / beta-VAE)."""

from ..configuration_utils import HfgenConfig


class VAEConfig(HfgenConfig):
    r"""
    Configuration of a [`VAEModel`]: a convolutional encoder to a diagonal Gaussian posterior over a spatial latent,
    and a convolutional decoder back to pixels. The latent has `latent_channels` channels and side
    `sample_size / 2 ** (len(block_out_channels) - 1)`, the same layout as diffusers' `AutoencoderKL`, so a trained
    VAE can serve as the first stage of latent diffusion.

    Args:
        in_channels (`int`, *optional*, defaults to 3):
            Channels of the input images (1 for greyscale such as the built-in digits, 3 for RGB).
        out_channels (`int`, *optional*):
            Channels of the reconstruction; defaults to `in_channels`.
        sample_size (`int`, *optional*, defaults to 32):
            Side of the square images the VAE is trained on; used to sample from the prior.
        block_out_channels (`list[int]`, *optional*, defaults to `[32, 64, 128]`):
            Feature channels of each resolution level. Every level but the last halves the resolution.
        layers_per_block (`int`, *optional*, defaults to 1):
            Residual blocks per resolution level, in the encoder and in the decoder.
        latent_channels (`int`, *optional*, defaults to 4):
            Channels of the latent.
        norm_num_groups (`int`, *optional*, defaults to 8):
            Groups of the GroupNorm layers; must divide every entry of `block_out_channels`.
        kl_weight (`float`, *optional*, defaults to 1.0):
            Weight beta on the KL term of the loss: 1.0 is the ELBO of a VAE, larger values give a beta-VAE.
        reconstruction_loss (`str`, *optional*, defaults to `"mse"`):
            `"mse"` (Gaussian decoder) or `"l1"` (Laplace decoder); summed over pixels, averaged over the batch.
        scaling_factor (`float`, *optional*, defaults to 1.0):
            Multiplier that brings latents to unit variance before a diffusion model sees them, as in
            `AutoencoderKL`: `latents = vae.encode(x).latent_dist.sample() * vae.config.scaling_factor`.
    """

    model_type = "hfgen_vae"

    in_channels: int = 3
    out_channels: int | None = None
    sample_size: int = 32
    block_out_channels: list[int] | tuple[int, ...] = (32, 64, 128)
    layers_per_block: int = 1
    latent_channels: int = 4
    norm_num_groups: int = 8
    kl_weight: float = 1.0
    reconstruction_loss: str = "mse"
    scaling_factor: float = 1.0

    def __post_init__(self, **kwargs):
        self.block_out_channels = list(self.block_out_channels)
        if self.out_channels is None:
            self.out_channels = self.in_channels
        for name in (
            "in_channels",
            "out_channels",
            "sample_size",
            "layers_per_block",
            "latent_channels",
            "norm_num_groups",
        ):
            self.check_int(name, minimum=1)
        self.check_int_list("block_out_channels", minimum=1)
        for channels in self.block_out_channels:
            if channels % self.norm_num_groups != 0:
                raise ValueError(
                    f"VAEConfig.norm_num_groups={self.norm_num_groups} must divide every entry of "
                    f"block_out_channels={self.block_out_channels}"
                )
        downsampling = 2 ** (len(self.block_out_channels) - 1)
        if self.sample_size % downsampling != 0:
            raise ValueError(
                f"VAEConfig.sample_size={self.sample_size} must be divisible by {downsampling}, the downsampling of "
                f"{len(self.block_out_channels)} levels"
            )
        if self.reconstruction_loss not in ("mse", "l1"):
            raise ValueError(f"VAEConfig.reconstruction_loss must be 'mse' or 'l1', got {self.reconstruction_loss!r}")
        if not self.kl_weight >= 0:
            raise ValueError(f"VAEConfig.kl_weight must be >= 0, got {self.kl_weight}")
        if not self.scaling_factor > 0:
            raise ValueError(f"VAEConfig.scaling_factor must be > 0, got {self.scaling_factor}")
        super().__post_init__(**kwargs)

    @property
    def latent_size(self) -> int:
        """Side of the latent: `sample_size` divided by the encoder's downsampling."""
        return self.sample_size // 2 ** (len(self.block_out_channels) - 1)


__all__ = ["VAEConfig"]
