"""Configuration of hfgen's vanilla (MLP) GAN and DCGAN, unconditional or class-conditional."""

from ..configuration_utils import HfgenConfig

GAN_ARCHITECTURES = ("mlp", "dcgan")
DISCRIMINATOR_CONDITIONINGS = ("projection", "concat")
DISCRIMINATOR_NORMS = ("batch", "layer", "none")
GENERATOR_UPSAMPLINGS = ("nearest", "transposed", "pixel_shuffle")


class GANConfig(HfgenConfig):
    r"""
    Configuration shared by a [`GANGenerator`] and its [`GANDiscriminator`].

    Args:
        architecture (`str`, *optional*, defaults to `"dcgan"`):
            `"mlp"`: fully connected layers on flattened images (Goodfellow et al. 2014). `"dcgan"`: convolutional
            (Radford et al. 2016): the generator doubles the resolution per block (see `generator_upsampling`), with
            batch norm and ReLU; the discriminator halves it with strided 4x4 convolutions and LeakyReLU(0.2).
        latent_dim (`int`, *optional*, defaults to 64):
            Size of the Gaussian noise z.
        image_size (`int`, *optional*, defaults to 32):
            Side of the square images; a power of two, at least 8, for `"dcgan"`.
        num_channels (`int`, *optional*, defaults to 1):
            Image channels (1 for the built-in digits, 3 for RGB).
        num_classes (`int`, *optional*, defaults to 0):
            0 for an unconditional GAN; otherwise a conditional GAN (Mirza & Osindero 2014) over this many labels:
            the generator sees a learned label embedding next to z.
        class_embedding_dim (`int`, *optional*, defaults to 32):
            Size of the generator's label embedding.
        discriminator_conditioning (`str`, *optional*, defaults to `"projection"`):
            How a conditional discriminator uses the label: `"projection"` (Miyato & Koyama 2018, the inner product
            of a label embedding with the features) or `"concat"` (label maps concatenated to the input).
        generator_hidden_sizes (`list[int]`, *optional*, defaults to `[256, 512]`):
            `"mlp"`: widths of the generator's hidden layers.
        discriminator_hidden_sizes (`list[int]`, *optional*, defaults to `[512, 256]`):
            `"mlp"`: widths of the discriminator's hidden layers.
        generator_channels (`int`, *optional*, defaults to 64):
            `"dcgan"`: channels of the generator's last block; they double per block towards the 4x4 start, up to
            `max_channels`.
        discriminator_channels (`int`, *optional*, defaults to 64):
            `"dcgan"`: channels of the discriminator's first block, doubled per halving up to `max_channels`.
        max_channels (`int`, *optional*, defaults to 256):
            Cap on the channels of any block.
        generator_upsampling (`str`, *optional*, defaults to `"nearest"`):
            `"dcgan"`: how the generator doubles the resolution. `"nearest"`: nearest-neighbour x2 then a 3x3
            convolution, with one more 3x3 convolution to the image at full resolution. `"transposed"`: the paper's
            4x4 stride-2 transposed convolutions, the last one straight to the image (4/9 of the multiply-adds per
            layer, and no full-resolution block); PEFT LoRA cannot reach a transposed convolution. `"pixel_shuffle"`:
            a 3x3 convolution to 4x the channels then a pixel shuffle (sub-pixel convolution, Shi et al. 2016), laid
            out as `"transposed"`: it spans every function a 4x4 stride-2 transposed convolution computes, and is a
            `Conv2d` that LoRA reaches.
        discriminator_norm (`str`, *optional*, defaults to `"batch"`):
            Normalisation in the discriminator: `"batch"` (DCGAN), `"layer"` (the choice for WGAN-GP, whose penalty
            is defined per image and is broken by batch statistics) or `"none"`.
    """

    model_type = "hfgen_gan"

    architecture: str = "dcgan"
    latent_dim: int = 64
    image_size: int = 32
    num_channels: int = 1
    num_classes: int = 0
    class_embedding_dim: int = 32
    discriminator_conditioning: str = "projection"
    generator_hidden_sizes: list[int] | tuple[int, ...] = (256, 512)
    discriminator_hidden_sizes: list[int] | tuple[int, ...] = (512, 256)
    generator_channels: int = 64
    discriminator_channels: int = 64
    max_channels: int = 256
    discriminator_norm: str = "batch"
    generator_upsampling: str = "nearest"

    def __post_init__(self, **kwargs):
        self.generator_hidden_sizes = list(self.generator_hidden_sizes)
        self.discriminator_hidden_sizes = list(self.discriminator_hidden_sizes)
        for name, value, choices in (
            ("architecture", self.architecture, GAN_ARCHITECTURES),
            ("discriminator_conditioning", self.discriminator_conditioning, DISCRIMINATOR_CONDITIONINGS),
            ("discriminator_norm", self.discriminator_norm, DISCRIMINATOR_NORMS),
            ("generator_upsampling", self.generator_upsampling, GENERATOR_UPSAMPLINGS),
        ):
            if value not in choices:
                raise ValueError(f"GANConfig.{name} must be one of {choices}, got {value!r}")
        for name in (
            "latent_dim",
            "image_size",
            "num_channels",
            "class_embedding_dim",
            "generator_channels",
            "discriminator_channels",
            "max_channels",
        ):
            self.check_int(name, minimum=1)
        self.check_int("num_classes", minimum=0)  # 0: unconditional
        # An MLP may have no hidden layer (a linear map from z to pixels); its widths must still be positive.
        self.check_int_list("generator_hidden_sizes", minimum=1, allow_empty=True)
        self.check_int_list("discriminator_hidden_sizes", minimum=1, allow_empty=True)
        if self.architecture == "dcgan":
            # Each block doubles (halves) the resolution from (to) the 4x4 start, and the first block needs 8x8.
            self.check_power_of_two("image_size", minimum=8)
        super().__post_init__(**kwargs)

    @property
    def is_conditional(self) -> bool:
        return self.num_classes > 0

    @property
    def num_resolution_blocks(self) -> int:
        """`"dcgan"`: blocks between the 4x4 start and `image_size` (each doubles or halves the resolution)."""
        return self.image_size.bit_length() - 3

    def generator_block_channels(self) -> list[int]:
        """`"dcgan"`: output channels of the generator's 4x4 start and of each upsampling block, coarse to fine.
        With `"nearest"` upsampling the last block is at full resolution (a 3x3 convolution then makes the image);
        with `"transposed"` / `"pixel_shuffle"` at half resolution (the last upsampling makes the image), as in the
        DCGAN paper: the same channels one resolution finer."""
        channels = [
            min(self.max_channels, self.generator_channels * 2 ** (self.num_resolution_blocks - i))
            for i in range(self.num_resolution_blocks + 1)
        ]
        return channels if self.generator_upsampling == "nearest" else channels[1:]

    def discriminator_block_channels(self) -> list[int]:
        """`"dcgan"`: output channels of each downsampling block of the discriminator, fine to coarse."""
        return [min(self.max_channels, self.discriminator_channels * 2**i) for i in range(self.num_resolution_blocks)]


__all__ = ["GANConfig"]
