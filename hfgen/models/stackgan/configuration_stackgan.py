"""Configuration of hfgen's StackGAN (two-stage text-to-image GAN) generator and discriminator."""

from ..configuration_utils import HfgenConfig


class StackGANConfig(HfgenConfig):
    r"""
    Configuration shared by a [`StackGANGenerator`] and its [`StackGANDiscriminator`] (Zhang et al. 2017, "StackGAN:
    Text to Photo-realistic Image Synthesis with Stacked Generative Adversarial Networks").

    Stage I draws a `stage1_resolution` image from noise z and the text; stage II redraws it at `resolution`, reading
    the stage-I image and the text again. Each stage has its own conditioning augmentation (the text embedding mapped
    to a Gaussian whose sample is the stage's condition c) and its own discriminator head. The text embedding is what a
    text encoder outside the model gives for a caption (e.g. the pooled output of a `CLIPTextModel`), so the same
    networks serve a pretrained text encoder or one trained with them.

    Args:
        resolution (`int`, *optional*, defaults to 32):
            Side of stage II's square images, a power of two at least twice `stage1_resolution`.
        stage1_resolution (`int`, *optional*, defaults to 16):
            Side of stage I's square images, a power of two of at least 8.
        num_channels (`int`, *optional*, defaults to 1):
            Image channels.
        text_embedding_dim (`int`, *optional*, defaults to 64):
            Size of the text embedding both networks read (the text encoder's hidden size).
        condition_dim (`int`, *optional*, defaults to 16):
            Size of the condition c drawn by conditioning augmentation (128 in the paper).
        latent_dim (`int`, *optional*, defaults to 32):
            Size of the noise z of stage I (100 in the paper).
        generator_channels (`int`, *optional*, defaults to 128):
            Channels of stage I's 4x4 features; halved at each doubling of the resolution (at least 8).
        stage2_channels (`int`, *optional*, defaults to 64):
            Channels of stage II's features at half of stage I's resolution (where the text joins them, and the
            residual blocks run); halved at each doubling on the way up to `resolution` (at least 8).
        stage2_residual_blocks (`int`, *optional*, defaults to 2):
            Residual blocks of stage II after the text joins the image features (4 in the paper).
        discriminator_channels (`int`, *optional*, defaults to 16):
            Channels of each discriminator's first layer; doubled at each halving of the resolution down to 4x4.
        discriminator_text_dim (`int`, *optional*, defaults to 16):
            Size the discriminators compress the text embedding to before joining it with the image features at 4x4
            (128 in the paper).
    """

    model_type = "hfgen_stackgan"

    resolution: int = 32
    stage1_resolution: int = 16
    num_channels: int = 1
    text_embedding_dim: int = 64
    condition_dim: int = 16
    latent_dim: int = 32
    generator_channels: int = 128
    stage2_channels: int = 64
    stage2_residual_blocks: int = 2
    discriminator_channels: int = 16
    discriminator_text_dim: int = 16

    def __post_init__(self, **kwargs):
        self.check_power_of_two("stage1_resolution", minimum=8)
        self.check_power_of_two("resolution", minimum=16)
        if self.resolution < 2 * self.stage1_resolution:
            raise ValueError(
                f"StackGANConfig.resolution ({self.resolution}) must be at least twice stage1_resolution "
                f"({self.stage1_resolution}): stage II refines stage I's image at a higher resolution"
            )
        for name in (
            "num_channels",
            "text_embedding_dim",
            "condition_dim",
            "latent_dim",
            "generator_channels",
            "stage2_channels",
            "discriminator_channels",
            "discriminator_text_dim",
        ):
            self.check_int(name, minimum=1)
        self.check_int("stage2_residual_blocks", minimum=0)
        super().__post_init__(**kwargs)

    def stage_resolution(self, stage: int) -> int:
        """The side of the images of `stage` (1 or 2)."""
        return self.stage1_resolution if stage == 1 else self.resolution


__all__ = ["StackGANConfig"]
