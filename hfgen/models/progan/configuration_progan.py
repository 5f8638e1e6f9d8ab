"""Configuration of hfgen's ProGAN (progressive growing of GANs) generator and discriminator."""

from ..configuration_utils import HfgenConfig


class ProGANConfig(HfgenConfig):
    r"""
    Configuration shared by a [`ProGANGenerator`] and its [`ProGANDiscriminator`] (Karras et al. 2018).

    Both networks hold a block per resolution from 4x4 up to `resolution`, with an RGB output (generator) and input
    (discriminator) at each; which of them a forward pass uses is the growing state, given at call time
    (`resolution=`, `alpha=`), never stored here: the architecture is the same at every stage of training, and a
    saved model generates at `resolution` by default. Channels at resolution r are
    `min(channel_base // r, channel_max)`, as in the paper (`channel_base=8192`, `channel_max=512` there).

    Args:
        resolution (`int`, *optional*, defaults to 32):
            Side of the square images of the fully grown networks, a power of two of at least 4.
        num_channels (`int`, *optional*, defaults to 1):
            Image channels.
        latent_dim (`int`, *optional*, defaults to 512):
            Size of z; the generator normalises it to unit root mean square (pixel norm) before its first layer.
        num_classes (`int`, *optional*, defaults to 0):
            0 for unconditional; otherwise the generator sees a label embedding next to z (both pixel-normed) and the
            discriminator projects its features onto a label embedding (Miyato & Koyama 2018).
        channel_base (`int`, *optional*, defaults to 8192), channel_max (`int`, *optional*, defaults to 512):
            Channels at resolution r are `min(channel_base // r, channel_max)`.
        mbstd_group_size (`int`, *optional*, defaults to 4), mbstd_num_channels (`int`, *optional*, defaults to 1):
            The discriminator's minibatch standard deviation layer at 4x4: group size and statistics channels.
    """

    model_type = "hfgen_progan"

    resolution: int = 32
    num_channels: int = 1
    latent_dim: int = 512
    num_classes: int = 0
    channel_base: int = 8192
    channel_max: int = 512
    mbstd_group_size: int = 4
    mbstd_num_channels: int = 1

    def __post_init__(self, **kwargs):
        self.check_power_of_two("resolution", minimum=4)
        for name in ("num_channels", "latent_dim", "channel_base", "channel_max", "mbstd_group_size"):
            self.check_int(name, minimum=1)
        self.check_int("num_classes", minimum=0)  # 0: unconditional
        self.check_int("mbstd_num_channels", minimum=1)
        if self.channel_base // self.resolution < 1:
            raise ValueError(
                f"ProGANConfig.channel_base must be at least resolution ({self.resolution}) so that every resolution "
                f"has a channel, got {self.channel_base}"
            )
        if self.channels_at(4) % self.mbstd_num_channels:
            raise ValueError(
                f"ProGANConfig.mbstd_num_channels ({self.mbstd_num_channels}) must divide the channels at 4x4 "
                f"({self.channels_at(4)})"
            )
        super().__post_init__(**kwargs)

    @property
    def is_conditional(self) -> bool:
        return self.num_classes > 0

    @property
    def resolutions(self) -> list[int]:
        """4, 8, ..., `resolution`: the resolutions the networks grow through, one block each."""
        return [2**i for i in range(2, self.resolution.bit_length())]

    def channels_at(self, resolution: int) -> int:
        return min(self.channel_base // resolution, self.channel_max)


__all__ = ["ProGANConfig"]
