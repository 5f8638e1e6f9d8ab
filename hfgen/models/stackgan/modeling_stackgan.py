"""hfgen's StackGAN (Zhang et al. 2017, "StackGAN: Text to Photo-realistic Image Synthesis with Stacked Generative
Adversarial Networks"), text to image in two stages.

- Conditioning augmentation: a linear layer maps the text embedding to the mean and log-variance of a Gaussian, and
  the stage's condition is c = mu + sigma * eps. Sampling c (rather than using the embedding itself) gives the
  generator many conditions around each caption, which smooths the conditioning manifold the few captions of a
  dataset leave sparse; a KL term towards N(0, I), returned by the generator, keeps that Gaussian from shrinking.
- Stage I: z and c through a dense layer to 4x4 features, then nearest x2 upsampling and 3x3 convolutions (batch
  norm, ReLU) up to `stage1_resolution`, and a 3x3 convolution to the image (tanh).
- Stage II: the stage-I image encoded down to half its size, joined with its own condition c (replicated over the
  positions), residual blocks, then upsampling blocks up to `resolution`: it corrects and adds detail to stage I's
  image instead of drawing from noise again.
- Discriminators, one per stage: strided 4x4 convolutions down to 4x4 features, joined with the text embedding
  compressed by a linear layer (replicated over the positions), a 3x3 convolution and a 4x4 one to a logit. Trained
  matching-aware (a real image with a wrong caption is a negative), the logit says whether the image is real *and*
  fits the text.

The generator's `condition_noise` is the eps of each stage's conditioning augmentation, drawn by the caller (the
pipeline draws it from the caller's `torch.Generator`); without it each condition is its mean (deterministic).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel  # noqa: F401
from transformers import initialization as init
from transformers.utils import ModelOutput

from ..modeling_utils import HfgenPreTrainedModel
from .configuration_stackgan import StackGANConfig

# `PreTrainedModel` stays imported by that name: diffusers loads a pipeline component by looking a base class it
# knows up in the component's module, whose path pipeline folders record.

LORA_STACKGAN_TARGETS = r".*\.(projection|conv|to_image)"
"""`target_modules` for LoRA on a [`StackGANGenerator`] (a regular expression, matched by PEFT against full module
names): the conditioning augmentations, the input dense layer and every convolution of both stages. Add
`modules_to_save=["norm"]` for the batch norms, which LoRA cannot adapt."""

STAGES = (1, 2)


@dataclass
class StackGANGeneratorOutput(ModelOutput):
    """
    Args:
        sample (`torch.Tensor` of shape `(batch, num_channels, size, size)`):
            The images of the stage asked for, in [-1, 1]: `stage1_resolution` for stage 1, `resolution` for stage 2.
        stage1_sample (`torch.Tensor` of shape `(batch, num_channels, stage1_resolution, stage1_resolution)`):
            Stage I's images (the same as `sample` for stage 1; what stage II refined for stage 2).
        kl_loss (`torch.Tensor` of shape `()`):
            The KL divergence from N(0, I) of the conditioning Gaussians of the stage asked for (the one trained),
            summed over the condition's dimensions and averaged over the batch.
    """

    sample: torch.Tensor = None
    stage1_sample: torch.Tensor = None
    kl_loss: torch.Tensor = None


@dataclass
class StackGANDiscriminatorOutput(ModelOutput):
    """
    Args:
        logits (`torch.Tensor` of shape `(batch,)`):
            One raw score per image and text, high for a real image that fits its text.
    """

    logits: torch.Tensor = None


def check_stage(stage) -> None:
    if isinstance(stage, bool) or stage not in STAGES:
        raise ValueError(f"stage must be 1 (the low-resolution images) or 2 (the refined ones), got {stage!r}")


class StackGANConditioningAugmentation(nn.Module):
    """Text embedding to the mean and log-variance of the condition's Gaussian; a sample of it with noise."""

    def __init__(self, text_embedding_dim: int, condition_dim: int):
        super().__init__()
        self.projection = nn.Linear(text_embedding_dim, 2 * condition_dim)

    def forward(self, text_embeds: torch.Tensor, noise: torch.Tensor | None):
        mean, log_variance = self.projection(text_embeds).chunk(2, dim=1)
        condition = mean if noise is None else mean + torch.exp(0.5 * log_variance) * noise
        # KL(N(mean, sigma^2) || N(0, I)), summed over dimensions, averaged over the batch
        kl = 0.5 * (mean.pow(2) + log_variance.exp() - 1 - log_variance).sum(dim=1).mean()
        return condition, kl


ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.2), "none": nn.Identity}


class StackGANConvBlock(nn.Module):
    """A convolution, batch norm and an activation (ReLU in the generator, LeakyReLU(0.2) in the discriminators);
    with `upsample`, a nearest x2 upsampling first."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        upsample: bool = False,
        activation: str = "relu",
    ):
        super().__init__()
        self.upsample = upsample
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(out_channels)
        self.activation = ACTIVATIONS[activation]()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            hidden_states = F.interpolate(hidden_states, scale_factor=2, mode="nearest")
        return self.activation(self.norm(self.conv(hidden_states)))


class StackGANResidualBlock(nn.Module):
    """Two 3x3 convolutions with batch norm, added to the input (the paper's stage-II residual block)."""

    def __init__(self, channels: int):
        super().__init__()
        self.block0 = StackGANConvBlock(channels, channels)
        self.block1 = StackGANConvBlock(channels, channels, activation="none")

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        residual = self.block1(self.block0(hidden_states))
        return F.relu(hidden_states + residual)


class StackGANStage1(nn.Module):
    """z and the text to stage I's image."""

    def __init__(self, config: StackGANConfig):
        super().__init__()
        self.conditioning = StackGANConditioningAugmentation(config.text_embedding_dim, config.condition_dim)
        channels = config.generator_channels
        self.projection = nn.Linear(config.latent_dim + config.condition_dim, channels * 16, bias=False)
        self.norm = nn.BatchNorm1d(channels * 16)
        blocks, size = [], 4
        while size < config.stage1_resolution:
            blocks.append(StackGANConvBlock(channels, max(channels // 2, 8), upsample=True))
            channels, size = max(channels // 2, 8), size * 2
        self.blocks = nn.ModuleList(blocks)
        self.to_image = nn.Conv2d(channels, config.num_channels, 3, padding=1)

    def forward(self, latents, text_embeds, noise):
        condition, kl = self.conditioning(text_embeds, noise)
        hidden = F.relu(self.norm(self.projection(torch.cat([latents, condition], dim=1))))
        hidden = hidden.view(latents.shape[0], -1, 4, 4)
        for block in self.blocks:
            hidden = block(hidden)
        return torch.tanh(self.to_image(hidden)), kl


class StackGANStage2(nn.Module):
    """Stage I's image and the text to the refined image at full resolution."""

    def __init__(self, config: StackGANConfig):
        super().__init__()
        self.conditioning = StackGANConditioningAugmentation(config.text_embedding_dim, config.condition_dim)
        channels = config.stage2_channels
        # 1. encoder: the image's features at half of stage I's resolution (no norm on the image itself, as in DCGAN)
        self.conv = nn.Conv2d(config.num_channels, max(channels // 2, 8), 3, padding=1)
        self.downsample = StackGANConvBlock(max(channels // 2, 8), channels, kernel_size=4, stride=2)
        # 2. the condition joins the features, then residual blocks
        self.joint = StackGANConvBlock(channels + config.condition_dim, channels)
        self.residual_blocks = nn.ModuleList(
            StackGANResidualBlock(channels) for _ in range(config.stage2_residual_blocks)
        )
        # 3. upsampling to the full resolution
        blocks, size = [], config.stage1_resolution // 2
        while size < config.resolution:
            blocks.append(StackGANConvBlock(channels, max(channels // 2, 8), upsample=True))
            channels, size = max(channels // 2, 8), size * 2
        self.blocks = nn.ModuleList(blocks)
        self.to_image = nn.Conv2d(channels, config.num_channels, 3, padding=1)

    def forward(self, stage1_images, text_embeds, noise):
        condition, kl = self.conditioning(text_embeds, noise)
        hidden = self.downsample(F.relu(self.conv(stage1_images)))
        condition_map = condition[:, :, None, None].expand(-1, -1, *hidden.shape[2:])
        hidden = self.joint(torch.cat([hidden, condition_map], dim=1))
        for block in self.residual_blocks:
            hidden = block(hidden)
        for block in self.blocks:
            hidden = block(hidden)
        return torch.tanh(self.to_image(hidden)), kl


class StackGANDiscriminatorHead(nn.Module):
    """One stage's matching-aware discriminator: image features at 4x4 joined with the compressed text embedding."""

    def __init__(self, config: StackGANConfig, resolution: int):
        super().__init__()
        channels = config.discriminator_channels
        # no batch norm on the first layer, as in DCGAN's discriminator
        self.conv = nn.Conv2d(config.num_channels, channels, 4, stride=2, padding=1)
        blocks, size = [], resolution // 2
        while size > 4:
            blocks.append(StackGANConvBlock(channels, channels * 2, 4, stride=2, activation="leaky_relu"))
            channels, size = channels * 2, size // 2
        self.blocks = nn.ModuleList(blocks)
        self.projection = nn.Linear(config.text_embedding_dim, config.discriminator_text_dim)
        self.joint = StackGANConvBlock(channels + config.discriminator_text_dim, channels, activation="leaky_relu")
        self.output = nn.Conv2d(channels, 1, 4)

    def forward(self, pixel_values, text_embeds):
        hidden = F.leaky_relu(self.conv(pixel_values), 0.2)
        for block in self.blocks:
            hidden = block(hidden)
        text = F.leaky_relu(self.projection(text_embeds), 0.2)
        hidden = torch.cat([hidden, text[:, :, None, None].expand(-1, -1, 4, 4)], dim=1)
        hidden = self.joint(hidden)
        return self.output(hidden).flatten()


class StackGANPreTrainedModel(HfgenPreTrainedModel):
    config: StackGANConfig
    config_class = StackGANConfig
    input_modalities = ("image", "text")

    def _init_weights(self, module):
        # DCGAN's initialisation (Radford et al. 2016), as StackGAN's reference code: N(0, 0.02) weights, batch norm
        # scales N(1, 0.02); the running statistics (buffers) start as those of a unit normal.
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            init.normal_(module.weight, mean=1.0, std=0.02)
            init.zeros_(module.bias)
            init.zeros_(module.running_mean)
            init.ones_(module.running_var)
            init.zeros_(module.num_batches_tracked)

    def check_text_embeds(self, text_embeds: torch.Tensor) -> None:
        dim = self.config.text_embedding_dim
        if text_embeds.ndim != 2 or text_embeds.shape[1] != dim:
            raise ValueError(
                f"text_embeds must have shape (batch, {dim}) (the text encoder's pooled output), got "
                f"{tuple(text_embeds.shape)}"
            )


class StackGANGenerator(StackGANPreTrainedModel):
    """Maps a text embedding and Gaussian noise to images: stage I at low resolution, stage II refining it.

    Example:

    ```python
    >>> import torch, hfgen
    >>> config = hfgen.StackGANConfig(resolution=32, stage1_resolution=16, text_embedding_dim=8)
    >>> generator = hfgen.StackGANGenerator(config)
    >>> text, z = torch.randn(4, 8), torch.randn(4, config.latent_dim)
    >>> noise = torch.randn(4, 2, config.condition_dim)  # eps of each stage's conditioning augmentation
    >>> output = generator(text, z, condition_noise=noise)
    >>> output.sample.shape, output.stage1_sample.shape
    (torch.Size([4, 1, 32, 32]), torch.Size([4, 1, 16, 16]))
    ```
    """

    base_model_prefix = "generator"
    main_input_name = "text_embeds"

    def __init__(self, config: StackGANConfig):
        super().__init__(config)
        self.stage1 = StackGANStage1(config)
        self.stage2 = StackGANStage2(config)
        self.post_init()

    def forward(
        self,
        text_embeds: torch.Tensor,
        latents: torch.Tensor,
        condition_noise: torch.Tensor | None = None,
        stage: int = 2,
        return_dict: bool | None = None,
    ):
        r"""
        Args:
            text_embeds (`torch.FloatTensor` of shape `(batch, text_embedding_dim)`):
                The text encoder's embedding of each image's caption.
            latents (`torch.FloatTensor` of shape `(batch, latent_dim)`):
                Gaussian noise z of stage I.
            condition_noise (`torch.FloatTensor` of shape `(batch, 2, condition_dim)`, *optional*):
                Standard normal eps of each stage's conditioning augmentation (`[:, 0]` stage I's, `[:, 1]` stage
                II's, unused for `stage=1`): c = mu + sigma * eps. Without it each condition is its mean mu.
            stage (`int`, *optional*, defaults to 2):
                1: stage I's images alone; 2: stage I's, refined by stage II.
            return_dict (`bool`, *optional*):
                Return a [`StackGANGeneratorOutput`] (default: `config.return_dict`) or the tuple
                `(sample, stage1_sample, kl_loss)`.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        config = self.config
        check_stage(stage)
        self.check_text_embeds(text_embeds)
        batch = text_embeds.shape[0]
        if latents.shape != (batch, config.latent_dim):
            raise ValueError(f"latents must have shape ({batch}, {config.latent_dim}), got {tuple(latents.shape)}")
        if condition_noise is not None and condition_noise.shape != (batch, 2, config.condition_dim):
            raise ValueError(
                f"condition_noise must have shape ({batch}, 2, {config.condition_dim}) (one eps per stage), got "
                f"{tuple(condition_noise.shape)}"
            )
        noise = [None, None] if condition_noise is None else condition_noise.unbind(dim=1)
        # 1. stage I: z and the first condition to the low-resolution image
        stage1_sample, kl_loss = self.stage1(latents, text_embeds, noise[0])
        sample = stage1_sample
        # 2. stage II: the image refined at full resolution, reading the text again through its own condition
        if stage == 2:
            sample, kl_loss = self.stage2(stage1_sample, text_embeds, noise[1])
        if not return_dict:
            return (sample, stage1_sample, kl_loss)
        return StackGANGeneratorOutput(sample=sample, stage1_sample=stage1_sample, kl_loss=kl_loss)


class StackGANDiscriminator(StackGANPreTrainedModel):
    """Scores images with texts, one matching-aware discriminator per stage: one logit per (image, text) pair."""

    base_model_prefix = "discriminator"
    main_input_name = "pixel_values"

    def __init__(self, config: StackGANConfig):
        super().__init__(config)
        self.stage1 = StackGANDiscriminatorHead(config, config.stage1_resolution)
        self.stage2 = StackGANDiscriminatorHead(config, config.resolution)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        text_embeds: torch.Tensor,
        stage: int = 2,
        return_dict: bool | None = None,
    ):
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch, num_channels, size, size)`):
                Images in [-1, 1] at the stage's resolution.
            text_embeds (`torch.FloatTensor` of shape `(batch, text_embedding_dim)`):
                The text each image is scored with.
            stage (`int`, *optional*, defaults to 2):
                Which stage's discriminator scores them: 1 for `stage1_resolution` images, 2 for `resolution` ones.
            return_dict (`bool`, *optional*):
                Return a [`StackGANDiscriminatorOutput`] (default: `config.return_dict`) or the tuple `(logits,)`.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        check_stage(stage)
        self.check_text_embeds(text_embeds)
        size = self.config.stage_resolution(stage)
        expected = (text_embeds.shape[0], self.config.num_channels, size, size)
        if tuple(pixel_values.shape) != expected:
            raise ValueError(
                f"pixel_values must have shape {expected} for stage {stage} (one image per text), got "
                f"{tuple(pixel_values.shape)}"
            )
        head = self.stage1 if stage == 1 else self.stage2
        logits = head(pixel_values, text_embeds)
        if not return_dict:
            return (logits,)
        return StackGANDiscriminatorOutput(logits=logits)


__all__ = [
    "LORA_STACKGAN_TARGETS",
    "StackGANDiscriminator",
    "StackGANDiscriminatorOutput",
    "StackGANGenerator",
    "StackGANGeneratorOutput",
    "StackGANPreTrainedModel",
]
