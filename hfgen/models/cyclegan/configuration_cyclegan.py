"""Configuration of hfgen's image-to-image translation networks: CycleGAN (unpaired, Zhu et al. 2017) and pix2pix
(paired, Isola et al. 2017) generators and their PatchGAN or per-pixel discriminators."""

from ..configuration_utils import HfgenConfig

GENERATOR_ARCHITECTURES = ("resnet", "unet")
DISCRIMINATOR_ARCHITECTURES = ("patch", "pixel")
NORMS = ("instance", "batch", "none")
UPSAMPLINGS = ("nearest", "transposed")


class CycleGANConfig(HfgenConfig):
    r"""
    Configuration of a translation generator from domain A to domain B and of the discriminator that judges domain B
    (a CycleGAN builds a second pair for B to A with [`reversed`]).

    Args:
        in_channels (`int`, *optional*, defaults to 3):
            Channels of the generator's input images (domain A).
        out_channels (`int`, *optional*, defaults to 3):
            Channels of its output images (domain B), which the discriminator judges.
        generator_architecture (`str`, *optional*, defaults to `"resnet"`):
            `"resnet"`: Johnson et al.'s network as CycleGAN uses it: a 7x7 convolution, two stride-2 downsamplings,
            `num_residual_blocks` residual blocks, two upsamplings and a 7x7 convolution to the image, with
            reflection padding; images must be divisible by 4. `"unet"`: pix2pix's U-Net with `unet_num_downs`
            stride-2 4x4 convolutions down to 1x1 at `2 ** unet_num_downs` pixels and skip connections between
            mirrored levels; images must be divisible by `2 ** unet_num_downs`.
        num_residual_blocks (`int`, *optional*, defaults to 9):
            `"resnet"`: 9 for 256-pixel images, 6 for 128 (the paper's choices).
        unet_num_downs (`int`, *optional*, defaults to 8):
            `"unet"`: 8 for 256-pixel images (down to 1x1), 7 for 128, 5 for 32.
        generator_channels (`int`, *optional*, defaults to 64):
            Channels of the generator's first layer (ngf); doubled per downsampling, up to 8 times for the U-Net.
        discriminator_architecture (`str`, *optional*, defaults to `"patch"`):
            `"patch"`: the PatchGAN, a stack of 4x4 convolutions scoring overlapping patches (70x70 pixels with 3
            layers); `"pixel"`: 1x1 convolutions scoring every pixel on its own.
        discriminator_layers (`int`, *optional*, defaults to 3):
            `"patch"`: stride-2 convolutions of the PatchGAN (3 gives the 70x70 receptive field, see
            [`patch_receptive_field`]).
        discriminator_channels (`int`, *optional*, defaults to 64):
            Channels of the discriminator's first layer (ndf), doubled per layer up to 8 times.
        conditional_discriminator (`bool`, *optional*, defaults to `False`):
            pix2pix's discriminator judges (input, output) pairs: it takes `in_channels + out_channels` channels.
        norm (`str`, *optional*, defaults to `"instance"`):
            `"instance"` (CycleGAN; no learned scale, no running statistics), `"batch"` (pix2pix's paper) or
            `"none"`.
        use_dropout (`bool`, *optional*, defaults to `False`):
            Dropout of 0.5 in the residual blocks, or in the U-Net's innermost decoder levels (pix2pix's noise).
        upsampling (`str`, *optional*, defaults to `"nearest"`):
            `"nearest"`: nearest-neighbour x2 then a 3x3 convolution, which PEFT LoRA reaches and which avoids the
            checkerboard artefacts of `"transposed"` (the papers' transposed convolutions, which LoRA cannot adapt).
    """

    model_type = "hfgen_cyclegan"

    in_channels: int = 3
    out_channels: int = 3
    generator_architecture: str = "resnet"
    num_residual_blocks: int = 9
    unet_num_downs: int = 8
    generator_channels: int = 64
    discriminator_architecture: str = "patch"
    discriminator_layers: int = 3
    discriminator_channels: int = 64
    conditional_discriminator: bool = False
    norm: str = "instance"
    use_dropout: bool = False
    upsampling: str = "nearest"

    def __post_init__(self, **kwargs):
        for name, choices in (
            ("generator_architecture", GENERATOR_ARCHITECTURES),
            ("discriminator_architecture", DISCRIMINATOR_ARCHITECTURES),
            ("norm", NORMS),
            ("upsampling", UPSAMPLINGS),
        ):
            if getattr(self, name) not in choices:
                raise ValueError(f"CycleGANConfig.{name} must be one of {choices}, got {getattr(self, name)!r}")
        for name in ("in_channels", "out_channels", "generator_channels", "discriminator_channels"):
            self.check_int(name, minimum=1)
        self.check_int("num_residual_blocks", minimum=0)
        self.check_int("unet_num_downs", minimum=2)
        self.check_int("discriminator_layers", minimum=1)
        super().__post_init__(**kwargs)

    @property
    def generator_stride(self) -> int:
        """Image sides must be multiples of this: the generator's total downsampling."""
        return 4 if self.generator_architecture == "resnet" else 2**self.unet_num_downs

    @property
    def discriminator_in_channels(self) -> int:
        return self.out_channels + (self.in_channels if self.conditional_discriminator else 0)

    def reversed(self) -> "CycleGANConfig":
        """The configuration of the opposite direction (B to A): the channels swapped, everything else kept."""
        return type(self).from_dict(
            {**self.to_dict(), "in_channels": self.out_channels, "out_channels": self.in_channels}
        )


def patch_receptive_field(num_layers: int) -> int:
    """Side in pixels of the patch each PatchGAN output scores: `num_layers` stride-2 4x4 convolutions, then two
    stride-1 4x4 ones (70 for 3 layers, as in pix2pix and CycleGAN)."""
    field = 1
    for stride in reversed([2] * num_layers + [1, 1]):
        field = field * stride + (4 - stride)
    return field


__all__ = ["CycleGANConfig", "patch_receptive_field"]
