"""Configuration of hfgen's StyleGAN 1 / 2 / 3 generator and discriminator."""

from ..configuration_utils import HfgenConfig

STYLE_BLOCKS = ("modulated", "adain")
GENERATOR_ARCHITECTURES = ("skip", "plain", "alias_free")
EQUIVARIANCES = ("translation", "rotation")
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
            RGB output at the final resolution (StyleGAN 1 after progressive growing has finished). `"alias_free"`:
            StyleGAN 3's synthesis network (Karras et al. 2021, see `alias_free.py`): Fourier features instead of the
            constant, `num_synthesis_layers` modulated layers with filtered leaky ReLUs, no noise inputs (needs
            `use_noise=False` and `style_block="modulated"`); the mapping network and the discriminator stay
            StyleGAN 2's, as in NVIDIA's StyleGAN 3. Channels of layer i are
            `min(round(channel_base / 2 / cutoff_i), channel_max)`, NVIDIA's rule.
        discriminator_architecture (`str`, *optional*, defaults to `"resnet"`):
            `"resnet"`: residual blocks (StyleGAN 2). `"plain"`: two convolutions per resolution, no skips.
        channel_base (`int`, *optional*, defaults to 8192), channel_max (`int`, *optional*, defaults to 256):
            Channels at resolution r are `min(channel_base // r, channel_max)`.
        use_noise (`bool`, *optional*, defaults to `True`):
            Per-layer noise inputs, scaled by a learned strength per channel.
        mbstd_group_size (`int`, *optional*, defaults to 4), mbstd_num_channels (`int`, *optional*, defaults to 1):
            Minibatch standard deviation layer of the discriminator (Karras et al. 2018): group size and number of
            statistics channels appended at 4x4.
        resample_filter (`list[int]`, *optional*, defaults to `[1, 3, 3, 1]`):
            The taps of the FIR filter of every up- and downsampling, as in the published StyleGAN 2 networks: a
            modulated convolution with upsampling is a transposed convolution followed by this filter, the RGB
            outputs are upsampled with it, and the discriminator filters before its strided convolutions (see
            `resampling.py`). `None`: bilinear upsampling before the convolution and average pooling in the
            discriminator, as hfgen's StyleGAN 2 did before; a folder whose `config.json` has no `resample_filter`
            was trained that way, and loads so.
        conv_clamp (`float`, *optional*):
            Clamp every synthesis layer's activations and RGB outputs to [-conv_clamp, conv_clamp], as NVIDIA's
            StyleGAN2-ADA networks trained with `conv_clamp=256` do. `None`: no clamp.
        equivariance (`str`, *optional*, defaults to `"translation"`):
            `"alias_free"` only. `"translation"` (StyleGAN3-T): 3x3 convolutions and separable Kaiser lowpass filters.
            `"rotation"` (StyleGAN3-R): 1x1 convolutions and radially symmetric (jinc) downsampling filters in the
            layers that are not critically sampled. (NVIDIA's StyleGAN3-R also doubles the generator's channel_base
            and channel_max; here they are whatever the config says.)
        num_synthesis_layers (`int`, *optional*, defaults to 14):
            `"alias_free"` only: synthesis layers between the Fourier features and the RGB layer; ws are
            `num_synthesis_layers + 2` (the Fourier features' transform and the RGB layer take one each).
        num_critical_layers (`int`, *optional*, defaults to 2):
            `"alias_free"` only: the last layers, critically sampled (cutoff at half the sampling rate, the image's
            own Nyquist frequency).
        first_cutoff (`float`, *optional*, defaults to 2.0), first_stopband (`float`, *optional*, defaults to 2**2.1):
            `"alias_free"` only: cutoff and minimum stopband frequency of the first layer (cycles per image); the
            cutoffs and stopbands grow geometrically to `resolution / 2` and `resolution / 2 * last_stopband_ratio`.
        last_stopband_ratio (`float`, *optional*, defaults to 2**0.3):
            `"alias_free"` only: the last layer's minimum stopband relative to its cutoff.
        margin_size (`int`, *optional*, defaults to 10):
            `"alias_free"` only: pixels computed beyond the image on every side by the layers that are not critically
            sampled, so that the image's edges see no padding.
        output_scale (`float`, *optional*, defaults to 0.25):
            `"alias_free"` only: the RGB layer's output is multiplied by it.
        filter_size (`int`, *optional*, defaults to 6):
            `"alias_free"` only: taps of the resampling filters per factor of resampling (12 for x2).
        lrelu_upsampling (`int`, *optional*, defaults to 2):
            `"alias_free"` only: the leaky ReLU runs at this many times the layer's sampling rate (so the frequencies
            it creates above the band can be filtered out before downsampling).
        magnitude_ema_beta (`float`, *optional*, defaults to 0.999):
            `"alias_free"` only: decay of each layer's running mean of squared inputs, tracked in training mode; the
            layer divides its input by its square root (NVIDIA trains with `0.5 ** (batch_size / 20000)`).
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
    resample_filter: list[int] | tuple[int, ...] | None = (1, 3, 3, 1)
    conv_clamp: float | None = None
    equivariance: str = "translation"
    num_synthesis_layers: int = 14
    num_critical_layers: int = 2
    first_cutoff: float = 2.0
    first_stopband: float = 2**2.1
    last_stopband_ratio: float = 2**0.3
    margin_size: int = 10
    output_scale: float = 0.25
    filter_size: int = 6
    lrelu_upsampling: int = 2
    magnitude_ema_beta: float = 0.999

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
        if self.generator_architecture == "alias_free":
            self.check_alias_free()
        super().__post_init__(**kwargs)

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs):
        # Every path that reads a saved config.json comes here (`from_pretrained`, the Auto classes, pipelines).
        # A saved config always has a model_type; one without `resample_filter` predates the FIR default and its
        # weights were trained with bilinear upsampling and average pooling, so it keeps them.
        if "model_type" in config_dict and "resample_filter" not in config_dict:
            config_dict = {**config_dict, "resample_filter": None}
        return super().from_dict(config_dict, **kwargs)

    def check_alias_free(self) -> None:
        """The StyleGAN 3 fields, checked only when `generator_architecture="alias_free"` reads them."""
        if self.equivariance not in EQUIVARIANCES:
            raise ValueError(f"StyleGANConfig.equivariance must be one of {EQUIVARIANCES}, got {self.equivariance!r}")
        if self.style_block != "modulated":
            raise ValueError("StyleGANConfig.style_block must be 'modulated' with generator_architecture='alias_free'")
        if self.use_noise:
            raise ValueError(
                "StyleGANConfig.use_noise must be False with generator_architecture='alias_free' (StyleGAN 3 has no "
                "noise inputs)"
            )
        for name in ("num_synthesis_layers", "filter_size", "lrelu_upsampling"):
            self.check_int(name, minimum=1)
        self.check_int("num_critical_layers", minimum=0)
        self.check_int("margin_size", minimum=0)
        if self.num_critical_layers >= self.num_synthesis_layers:
            raise ValueError(
                f"StyleGANConfig.num_critical_layers={self.num_critical_layers} must be below num_synthesis_layers="
                f"{self.num_synthesis_layers}"
            )
        if not 0 < self.first_cutoff < self.first_stopband:
            raise ValueError(
                f"StyleGANConfig needs 0 < first_cutoff < first_stopband, got {self.first_cutoff} and "
                f"{self.first_stopband}"
            )
        if not self.first_cutoff <= self.resolution / 2:
            raise ValueError(
                f"StyleGANConfig.first_cutoff={self.first_cutoff} must not exceed resolution / 2 = "
                f"{self.resolution / 2}"
            )
        if not self.last_stopband_ratio >= 1:
            raise ValueError(f"StyleGANConfig.last_stopband_ratio must be >= 1, got {self.last_stopband_ratio}")
        if not self.output_scale > 0:
            raise ValueError(f"StyleGANConfig.output_scale must be > 0, got {self.output_scale}")
        if not 0 <= self.magnitude_ema_beta < 1:
            raise ValueError(f"StyleGANConfig.magnitude_ema_beta must lie in [0, 1), got {self.magnitude_ema_beta}")

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
        output (the RGB output of every other resolution shares the w of the next layer, as in StyleGAN 2); for
        `"alias_free"`, one for the Fourier features, one per layer and one for the RGB layer."""
        if self.generator_architecture == "alias_free":
            return self.num_synthesis_layers + 2
        return 2 * len(self.resolutions)

    def channels_at(self, resolution: int) -> int:
        return max(1, min(self.channel_base // resolution, self.channel_max))


__all__ = ["StyleGANConfig"]
