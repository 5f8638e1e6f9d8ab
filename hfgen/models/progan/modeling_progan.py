"""hfgen's ProGAN (Karras et al. 2018, "Progressive Growing of GANs for Improved Quality, Stability, and Variation").

- Generator: pixel-normed z (and a label embedding when conditional), a 4x4 block from a dense layer, then per
  resolution a nearest x2 upsampling and two 3x3 convolutions, each followed by LeakyReLU(0.2) and pixel norm, and
  a 1x1 RGB output ("toRGB") at every resolution.
- Discriminator: a 1x1 RGB input ("fromRGB") at every resolution, per resolution two 3x3 convolutions and x2 average
  pooling, then minibatch standard deviation, a 3x3 convolution and two dense layers at 4x4.

Every layer exists from the start, so the optimizers hold every parameter for the whole run; what grows is the part
of the networks a forward pass uses, given as arguments: `resolution` (the stage's resolution, default the full one)
and `alpha` in [0, 1], the fade-in of the stage's new block. During a fade-in the generator blends the upsampled RGB
output of the resolution below (weight 1 - alpha) with the new block's (weight alpha), and the discriminator the
features of the 2x average-pooled image read by the lower resolution's fromRGB with those of the new block.

All weights use the equalised learning rate, with the layers StyleGAN shares (`EqualizedLinear`, `EqualizedConv2d`,
`PixelNorm`, `MinibatchStdDev`, the plain discriminator block): the run-time gain multiplies each layer's input in
the module that calls it, so PEFT LoRA wraps the layers and merges exactly (`LORA_PROGAN_TARGETS`).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel  # noqa: F401
from transformers import initialization as init
from transformers.utils import ModelOutput

from ..conditioning import check_class_labels
from ..modeling_utils import HfgenPreTrainedModel
from ..stylegan.modeling_stylegan import (
    DiscriminatorBlock,
    EqualizedConv2d,
    EqualizedLinear,
    MinibatchStdDev,
    PixelNorm,
    leaky_relu,
)
from .configuration_progan import ProGANConfig

# `PreTrainedModel` stays imported by that name: diffusers loads a pipeline component by looking a base class it
# knows up in the component's module, whose path pipeline folders record.

LORA_PROGAN_TARGETS = r".*(class_embedding|input_block\.(dense|conv)|blocks\.\d+\.conv\d|to_images\.\d+)"
"""`target_modules` for LoRA on a [`ProGANGenerator`] (a regular expression, matched by PEFT against full module
names): every equalised layer of the generator, the RGB outputs included."""


@dataclass
class ProGANGeneratorOutput(ModelOutput):
    """
    Args:
        sample (`torch.Tensor` of shape `(batch, num_channels, resolution, resolution)`):
            Images in about [-1, 1] at the resolution asked for (not clamped: ProGAN's RGB output is linear, as in
            the paper; pipelines clamp).
    """

    sample: torch.Tensor = None


@dataclass
class ProGANDiscriminatorOutput(ModelOutput):
    """
    Args:
        logits (`torch.Tensor` of shape `(batch,)`):
            One raw score per image (a WGAN critic's score in the paper's training), high for real.
    """

    logits: torch.Tensor = None


def growing_level(config: ProGANConfig, resolution: int | None, alpha: float) -> int:
    """The index of the stage's resolution in `config.resolutions` (0 for 4x4), after checking the growing state."""
    resolution = config.resolution if resolution is None else resolution
    if resolution not in config.resolutions:
        raise ValueError(f"resolution must be one of {config.resolutions} (the model's stages), got {resolution!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be a number in [0, 1] (the fade-in of the stage's new block), got {alpha!r}")
    level = config.resolutions.index(resolution)
    if level == 0 and alpha < 1:
        raise ValueError("alpha < 1 fades in from the resolution below, and 4x4 has none: pass alpha=1 at 4x4")
    return level


class ProGANInputBlock(nn.Module):
    """z to 4x4 features: a dense layer, then a 3x3 convolution, each followed by LeakyReLU(0.2) and pixel norm."""

    def __init__(self, input_size: int, channels: int):
        super().__init__()
        self.dense = EqualizedLinear(input_size, channels * 16)
        self.conv = EqualizedConv2d(channels, channels, 3)
        self.normalize = PixelNorm()
        # Equalised learning rate: the gains scale each layer's input (see `EqualizedLinear`); kept here because PEFT
        # replaces a targeted layer by a wrapper.
        self.dense_gain, self.conv_gain = self.dense.weight_gain, self.conv.weight_gain

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden = self.dense(hidden_states * self.dense_gain).view(hidden_states.shape[0], -1, 4, 4)
        hidden = self.normalize(leaky_relu(hidden))
        return self.normalize(leaky_relu(self.conv(hidden * self.conv_gain)))


class ProGANGeneratorBlock(nn.Module):
    """Nearest-neighbour x2, then two 3x3 convolutions, each followed by LeakyReLU(0.2) and pixel norm."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv0 = EqualizedConv2d(in_channels, out_channels, 3)
        self.conv1 = EqualizedConv2d(out_channels, out_channels, 3)
        self.normalize = PixelNorm()
        self.conv0_gain, self.conv1_gain = self.conv0.weight_gain, self.conv1.weight_gain

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden = F.interpolate(hidden_states, scale_factor=2, mode="nearest")
        hidden = self.normalize(leaky_relu(self.conv0(hidden * self.conv0_gain)))
        return self.normalize(leaky_relu(self.conv1(hidden * self.conv1_gain)))


class ProGANPreTrainedModel(HfgenPreTrainedModel):
    config: ProGANConfig
    config_class = ProGANConfig
    input_modalities = ("image",)

    def _init_weights(self, module):
        # Equalised learning rate: N(0, 1) weights, zero biases, scaled at run time.
        if isinstance(module, EqualizedLinear):
            init.normal_(module.weight, mean=0.0, std=1.0 / module.lr_multiplier)
            init.constant_(module.bias, module.bias_init / module.lr_multiplier)
        elif isinstance(module, EqualizedConv2d):
            init.normal_(module.weight, mean=0.0, std=1.0)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=1.0)


class ProGANGenerator(ProGANPreTrainedModel):
    """Maps Gaussian noise `latents` (and `labels` when conditional) to images, at any stage of growing.

    Example:

    ```python
    >>> import torch, hfgen
    >>> generator = hfgen.ProGANGenerator(hfgen.ProGANConfig(resolution=16, latent_dim=32, channel_max=32))
    >>> z = torch.randn(4, 32)
    >>> generator(z).sample.shape  # fully grown
    torch.Size([4, 1, 16, 16])
    >>> generator(z, resolution=8, alpha=0.5).sample.shape  # halfway through fading in the 8x8 block
    torch.Size([4, 1, 8, 8])
    ```
    """

    base_model_prefix = "generator"
    main_input_name = "latents"

    def __init__(self, config: ProGANConfig):
        super().__init__(config)
        self.normalize = PixelNorm()
        input_size = config.latent_dim
        if config.is_conditional:
            # A one-hot label through an equalised dense layer, pixel-normed like z and set beside it.
            self.class_embedding = EqualizedLinear(config.num_classes, config.latent_dim)
            self.class_embedding_gain = self.class_embedding.weight_gain
            input_size += config.latent_dim
        resolutions = config.resolutions
        self.input_block = ProGANInputBlock(input_size, config.channels_at(4))
        # blocks[k] makes resolution resolutions[k + 1] from resolutions[k]; to_images[k] reads resolutions[k]
        self.blocks = nn.ModuleList(
            ProGANGeneratorBlock(config.channels_at(r // 2), config.channels_at(r)) for r in resolutions[1:]
        )
        self.to_images = nn.ModuleList(
            EqualizedConv2d(config.channels_at(r), config.num_channels, 1) for r in resolutions
        )
        self.to_image_gains = [layer.weight_gain for layer in self.to_images]
        self.post_init()

    def forward(
        self,
        latents: torch.Tensor,
        labels: torch.Tensor | None = None,
        resolution: int | None = None,
        alpha: float = 1.0,
        return_dict: bool | None = None,
    ):
        r"""
        Args:
            latents (`torch.FloatTensor` of shape `(batch, latent_dim)`):
                Gaussian noise z.
            labels (`torch.LongTensor` of shape `(batch,)`, *optional*):
                Class labels in `[0, num_classes)`; required by a conditional generator, refused by an unconditional
                one.
            resolution (`int`, *optional*):
                The growing stage: images are made at this resolution, one of `config.resolutions`, by the blocks up
                to it. Defaults to `config.resolution` (the fully grown generator).
            alpha (`float`, *optional*, defaults to 1.0):
                Fade-in of the stage's block: the output is `(1 - alpha)` times the upsampled RGB output of the
                resolution below plus `alpha` times the block's own. 1 uses the block alone.
            return_dict (`bool`, *optional*):
                Return a [`ProGANGeneratorOutput`] (default: `config.return_dict`) or the tuple `(sample,)`.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        config = self.config
        if latents.ndim != 2 or latents.shape[1] != config.latent_dim:
            raise ValueError(f"latents must have shape (batch, {config.latent_dim}), got {tuple(latents.shape)}")
        check_class_labels(config.num_classes, labels, latents.shape[0], "ProGAN")
        level = growing_level(config, resolution, alpha)
        # 1. pixel norm of z, and of the label embedding beside it
        hidden = self.normalize(latents)
        if config.is_conditional:
            one_hot = F.one_hot(labels, config.num_classes).to(latents.dtype)
            label_embedding = self.class_embedding(one_hot * self.class_embedding_gain)
            hidden = torch.cat([hidden, self.normalize(label_embedding)], dim=1)
        # 2. the 4x4 block, then the blocks up to the stage's resolution (the features below it kept for the fade-in)
        hidden = self.input_block(hidden)
        below = hidden
        for block in self.blocks[:level]:
            below, hidden = hidden, block(hidden)
        # 3. the stage's RGB output; while fading in, blended with the upsampled RGB output of the resolution below
        sample = self.to_images[level](hidden * self.to_image_gains[level])
        if alpha < 1:
            faded = self.to_images[level - 1](below * self.to_image_gains[level - 1])
            sample = torch.lerp(F.interpolate(faded, scale_factor=2, mode="nearest"), sample, alpha)
        if not return_dict:
            return (sample,)
        return ProGANGeneratorOutput(sample=sample)


class ProGANDiscriminator(ProGANPreTrainedModel):
    """Scores images (and their `labels` when conditional) at any stage of growing: one logit per image."""

    base_model_prefix = "discriminator"
    main_input_name = "pixel_values"

    def __init__(self, config: ProGANConfig):
        super().__init__(config)
        resolutions = config.resolutions
        # from_images[k] reads resolutions[k]; blocks[k] takes resolutions[k + 1] down to resolutions[k]
        self.from_images = nn.ModuleList(
            EqualizedConv2d(config.num_channels, config.channels_at(r), 1) for r in resolutions
        )
        self.from_image_gains = [layer.weight_gain for layer in self.from_images]
        self.blocks = nn.ModuleList(
            DiscriminatorBlock(config.channels_at(r), config.channels_at(r // 2), residual=False)
            for r in resolutions[1:]
        )
        channels = config.channels_at(4)
        self.minibatch_std = MinibatchStdDev(config.mbstd_group_size, config.mbstd_num_channels)
        self.conv = EqualizedConv2d(channels + config.mbstd_num_channels, channels, 3)
        self.fc = EqualizedLinear(channels * 16, channels)
        self.output = EqualizedLinear(channels, 1)
        self.conv_gain, self.fc_gain, self.output_gain = (
            self.conv.weight_gain,
            self.fc.weight_gain,
            self.output.weight_gain,
        )
        if config.is_conditional:
            self.class_projection = nn.Embedding(config.num_classes, channels)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        resolution: int | None = None,
        alpha: float = 1.0,
        return_dict: bool | None = None,
    ):
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch, num_channels, resolution, resolution)`):
                Images in [-1, 1], at the stage's resolution.
            labels (`torch.LongTensor` of shape `(batch,)`, *optional*):
                Class labels in `[0, num_classes)`; required by a conditional discriminator.
            resolution (`int`, *optional*):
                The growing stage, one of `config.resolutions`; defaults to `config.resolution`.
            alpha (`float`, *optional*, defaults to 1.0):
                Fade-in of the stage's block: its features are blended, with weight `alpha`, with those of the
                2x average-pooled image read at the resolution below (weight `1 - alpha`).
            return_dict (`bool`, *optional*):
                Return a [`ProGANDiscriminatorOutput`] (default: `config.return_dict`) or the tuple `(logits,)`.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        config = self.config
        level = growing_level(config, resolution, alpha)
        size = config.resolutions[level]
        expected = (config.num_channels, size, size)
        if pixel_values.ndim != 4 or tuple(pixel_values.shape[1:]) != expected:
            raise ValueError(
                f"pixel_values must have shape (batch, {', '.join(map(str, expected))}) at resolution {size}, got "
                f"{tuple(pixel_values.shape)}"
            )
        check_class_labels(config.num_classes, labels, pixel_values.shape[0], "ProGAN")
        # 1. the stage's fromRGB and block; while fading in, blended with the pooled image read at the resolution below
        hidden = leaky_relu(self.from_images[level](pixel_values * self.from_image_gains[level]))
        if level > 0:
            hidden = self.blocks[level - 1](hidden)
            if alpha < 1:
                pooled = F.avg_pool2d(pixel_values, 2) * self.from_image_gains[level - 1]
                hidden = torch.lerp(leaky_relu(self.from_images[level - 1](pooled)), hidden, alpha)
        # 2. the blocks below, down to 4x4
        for block in reversed(self.blocks[: max(level - 1, 0)]):
            hidden = block(hidden)
        # 3. minibatch standard deviation, the last convolution and the dense layers
        hidden = leaky_relu(self.conv(self.minibatch_std(hidden) * self.conv_gain))
        hidden = leaky_relu(self.fc(hidden.flatten(1) * self.fc_gain))
        logits = self.output(hidden * self.output_gain).squeeze(1)
        if config.is_conditional:
            # Projection discriminator (Miyato & Koyama 2018), normalised by sqrt(dim) as in StyleGAN2-ADA.
            logits = logits + (self.class_projection(labels) * hidden).sum(dim=1) / hidden.shape[1] ** 0.5
        if not return_dict:
            return (logits,)
        return ProGANDiscriminatorOutput(logits=logits)


__all__ = [
    "LORA_PROGAN_TARGETS",
    "ProGANDiscriminator",
    "ProGANDiscriminatorOutput",
    "ProGANGenerator",
    "ProGANGeneratorOutput",
    "ProGANPreTrainedModel",
]
