"""Configuration of hfgen's StyleGAN 1 / StyleGAN 2 generator and discriminator."""

from ..configuration_utils import HfgenConfig

STYLE_BLOCKS = ("modulated", "adain")
GENERATOR_ARCHITECTURES = ("skip", "plain")
DISCRIMINATOR_ARCHITECTURES = ("resnet", "plain")


class StyleGANConfig(HfgenConfig):
    r"""
    Configuration shared by a [`StyleGANGenerator`] and its [`StyleGANDiscriminator`].

    Channels per resolution follow StyleGAN 2: `min(channel_base // resolution, channel_max)`.

    Args:
        resolution (`int`, *optional*, defaults to 32):
            Side of the square images, a power of two of at least 8.
        num_channels (`int`, *optional*, defaults to 1):
            Image channels.
        latent_dim (`int`, *optional*, defaults to 512):
            Size of z.
        w_dim (`int`, *optional*, defaults to 512):
            Size of the intermediate latent w.
        num_classes (`int`, *optional*, defaults to 0):
            0 for unconditional; otherwise the mapping network also sees a label embedding (as in StyleGAN2-ADA) and
            the discriminator projects onto a label embedding.
        mapping_layers (`int`, *optional*, defaults to 8):
            Fully connected layers of the mapping network.
        mapping_lr_multiplier (`float`, *optional*, defaults to 0.01):
            Learning-rate multiplier of the mapping network (equalised learning rate scales it at run time).
        w_avg_beta (`float`, *optional*, defaults to 0.995):
            Decay of the running average of w tracked during training, the centre of the truncation trick.
        style_block (`str`, *optional*, defaults to `"modulated"`):
            `"adain"`: StyleGAN 1 layers (convolution, noise, instance norm, then a per-channel scale and bias from
            w). `"modulated"`: StyleGAN 2 layers (w scales the convolution weights per input channel, then the
            weights are demodulated to unit output variance).
        generator_architecture (`str`, *optional*, defaults to `"skip"`):
            `"skip"`: StyleGAN 2's generator, which sums upsampled RGB outputs of every resolution. `"plain"`: one
            RGB output at the final resolution (StyleGAN 1 after progressive growing has finished).
        discriminator_architecture (`str`, *optional*, defaults to `"resnet"`):
            `"resnet"`: residual blocks (StyleGAN 2). `"plain"`: two convolutions per resolution, no skips.
        channel_base (`int`, *optional*, defaults to 8192), channel_max (`int`, *optional*, defaults to 256):
            Channels at resolution r are `min(channel_base // r, channel_max)`.
        use_noise (`bool`, *optional*, defaults to `True`):
            Per-layer noise inputs, scaled by a learned strength per channel.
        mbstd_group_size (`int`, *optional*, defaults to 4), mbstd_num_channels (`int`, *optional*, defaults to 1):
            Minibatch standard deviation layer of the discriminator (Karras et al. 2018): group size and number of
            statistics channels appended at 4x4.
        resample_filter (`list[int]`, *optional*):
            The taps of the FIR filter of the generator's upsampling, as published StyleGAN 2 networks have it
            (`[1, 3, 3, 1]`: a modulated convolution with upsampling is a transposed convolution followed by this
            filter, and the RGB outputs are upsampled with it; see `resampling.py`). `None`: bilinear upsampling
            before the convolution, hfgen's first StyleGAN 2.
        conv_clamp (`float`, *optional*):
            Clamp every synthesis layer's activations and RGB outputs to [-conv_clamp, conv_clamp], as NVIDIA's
            StyleGAN2-ADA networks trained with `conv_clamp=256` do. `None`: no clamp.
    """

    model_type = "hfgen_stylegan"

    resolution: int = 32
    num_channels: int = 1
    latent_dim: int = 512
    w_dim: int = 512
    num_classes: int = 0
    mapping_layers: int = 8
    mapping_lr_multiplier: float = 0.01
    w_avg_beta: float = 0.995
    style_block: str = "modulated"
    generator_architecture: str = "skip"
    discriminator_architecture: str = "resnet"
    channel_base: int = 8192
    channel_max: int = 256
    use_noise: bool = True
    mbstd_group_size: int = 4
    mbstd_num_channels: int = 1
    resample_filter: list[int] | tuple[int, ...] | None = None
    conv_clamp: float | None = None

    def __post_init__(self, **kwargs):
        for name, value, choices in (
            ("style_block", self.style_block, STYLE_BLOCKS),
            ("generator_architecture", self.generator_architecture, GENERATOR_ARCHITECTURES),
            ("discriminator_architecture", self.discriminator_architecture, DISCRIMINATOR_ARCHITECTURES),
        ):
            if value not in choices:
                raise ValueError(f"StyleGANConfig.{name} must be one of {choices}, got {value!r}")
        # The synthesis network doubles the resolution per block from a 4x4 constant, and the first block is 8x8.
        self.check_power_of_two("resolution", minimum=8)
        for name in (
            "num_channels",
            "latent_dim",
            "w_dim",
            "mapping_layers",
            "channel_base",
            "channel_max",
            "mbstd_group_size",
            "mbstd_num_channels",
        ):
            self.check_int(name, minimum=1)
        self.check_int("num_classes", minimum=0)  # 0: unconditional
        if self.channels_at(4) % self.mbstd_num_channels:
            raise ValueError(
                f"StyleGANConfig.mbstd_num_channels={self.mbstd_num_channels} must divide the {self.channels_at(4)} "
                "channels at 4x4 (min(channel_base // 4, channel_max)), which the statistics are split over"
            )
        if self.resample_filter is not None:
            self.resample_filter = list(self.resample_filter)
            if not self.resample_filter or sum(self.resample_filter) == 0:
                raise ValueError(
                    f"StyleGANConfig.resample_filter must be FIR taps with a non-zero sum (e.g. [1, 3, 3, 1]), got "
                    f"{self.resample_filter!r}"
                )
        if self.conv_clamp is not None and not self.conv_clamp > 0:
            raise ValueError(f"StyleGANConfig.conv_clamp must be > 0 or None, got {self.conv_clamp}")
        if not 0 <= self.w_avg_beta < 1:
            raise ValueError(f"StyleGANConfig.w_avg_beta must lie in [0, 1), got {self.w_avg_beta}")
        if not self.mapping_lr_multiplier > 0:
            raise ValueError(f"StyleGANConfig.mapping_lr_multiplier must be > 0, got {self.mapping_lr_multiplier}")
        super().__post_init__(**kwargs)

    @property
    def is_conditional(self) -> bool:
        return self.num_classes > 0

    @property
    def resolutions(self) -> list[int]:
        """Resolutions of the synthesis blocks, 4 up to `resolution`."""
        return [2**i for i in range(2, self.resolution.bit_length())]

    @property
    def num_ws(self) -> int:
        """How many w vectors the synthesis network takes: one per convolution layer, plus one for the last RGB
        output (the RGB output of every other resolution shares the w of the next layer, as in StyleGAN 2)."""
        return 2 * len(self.resolutions)

    def channels_at(self, resolution: int) -> int:
        return max(1, min(self.channel_base // resolution, self.channel_max))


__all__ = ["StyleGANConfig"]
