"""hfgen's vanilla GAN (MLP) and DCGAN generator and discriminator, optionally class-conditional.

Both networks are `PreTrainedModel`s over one [`GANConfig`]: a Hub folder holds the generator at its root and,
optionally, the discriminator in `discriminator/` (for fine-tuning). The losses live in `hfgen.losses`.

Every layer of the generator is an `nn.Linear`, `nn.Conv2d` or `nn.Embedding`, so PEFT LoRA reaches all of them
(`LORA_GENERATOR_TARGETS`); batch norm layers go to `modules_to_save`.
"""

from dataclasses import dataclass
from itertools import pairwise

import torch
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedModel  # noqa: F401
from transformers import initialization as init
from transformers.utils import ModelOutput

from ..conditioning import check_class_labels
from ..modeling_utils import HfgenPreTrainedModel
from .configuration_gan import GANConfig

# `PreTrainedModel` stays imported by that name: diffusers loads a pipeline component by looking a base class it
# knows up in the component's module, whose path pipeline folders record.

LORA_GENERATOR_TARGETS = r"(.*\.)?(input_projection|conv|to_image|layers\.\d+)"
"""`target_modules` for LoRA on a [`GANGenerator`] (DCGAN and MLP): a regular expression, which PEFT matches against
full module names, so that it reaches each linear layer of the MLP's `layers` list and not the list itself (a plain
name `"layers"` would). Add `modules_to_save=["norm", "input_norm"]` for DCGAN's batch norms, which LoRA cannot
adapt."""


@dataclass
class GANGeneratorOutput(ModelOutput):
    """
    Args:
        sample (`torch.Tensor` of shape `(batch, num_channels, image_size, image_size)`):
            Generated images in [-1, 1].
    """

    sample: torch.Tensor = None


@dataclass
class GANDiscriminatorOutput(ModelOutput):
    """
    Args:
        logits (`torch.Tensor` of shape `(batch,)`):
            One raw score per image (real if high); the losses in `hfgen.losses` take these.
    """

    logits: torch.Tensor = None


class ClassProjection(nn.Embedding):
    """Label embedding of a projection discriminator (Miyato & Koyama 2018): its inner product with the features is
    added to the logit."""


class GANPreTrainedModel(HfgenPreTrainedModel):
    config: GANConfig
    config_class = GANConfig
    main_input_name = "latents"
    input_modalities = ("image",)

    def _init_weights(self, module):
        # DCGAN's initialisation (Radford et al. 2016): N(0, 0.02) weights, batch norm scales N(1, 0.02). The MLP GAN
        # keeps PyTorch's default (uniform in +-1/sqrt(fan_in)): N(0, 0.02) starves a stack of wide linear layers.
        if isinstance(module, nn.Linear) and self.config.architecture == "mlp":
            bound = 1.0 / module.in_features**0.5
            init.uniform_(module.weight, -bound, bound)
            init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, ClassProjection):
            init.normal_(module.weight, mean=0.0, std=0.02)  # starts near the unconditional discriminator
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=1.0)  # on the scale of z, which it sits next to
        elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d)):
            init.normal_(module.weight, mean=1.0, std=0.02)
            init.zeros_(module.bias)
            # The running statistics are buffers: a model built on the meta device, or loaded from a file that lacks
            # them, gets them only from here. They start as those of a unit normal, as in PyTorch.
            init.zeros_(module.running_mean)
            init.ones_(module.running_var)
            init.zeros_(module.num_batches_tracked)
        elif isinstance(module, nn.GroupNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)


def upsampling_convolution(in_channels: int, out_channels: int, upsampling: str, bias: bool) -> nn.Module:
    """The layer that doubles the resolution (see `GANConfig.generator_upsampling`): a 3x3 convolution after a
    nearest x2 (`"nearest"`), a 4x4 stride-2 transposed convolution (`"transposed"`), or a 3x3 convolution to four
    times the channels that `double_resolution` then pixel-shuffles (`"pixel_shuffle"`)."""
    if upsampling == "transposed":
        return nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=bias)
    factor = 4 if upsampling == "pixel_shuffle" else 1
    return nn.Conv2d(in_channels, out_channels * factor, 3, padding=1, bias=bias)


def double_resolution(convolution: nn.Module, hidden_states: torch.Tensor, upsampling: str) -> torch.Tensor:
    """Apply an `upsampling_convolution`, doubling the resolution."""
    if upsampling == "nearest":
        return convolution(F.interpolate(hidden_states, scale_factor=2, mode="nearest"))
    if upsampling == "pixel_shuffle":
        return F.pixel_shuffle(convolution(hidden_states), 2)
    return convolution(hidden_states)


class GANUpsampleBlock(nn.Module):
    """Twice the resolution (`GANConfig.generator_upsampling`), batch norm, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, upsampling: str = "nearest"):
        super().__init__()
        self.upsampling = upsampling
        self.conv = upsampling_convolution(in_channels, out_channels, upsampling, bias=False)
        self.norm = nn.BatchNorm2d(out_channels)
        # In place (here and in every GAN activation): batch norm, convolutions and linear layers keep their inputs,
        # not their outputs, for the backward pass, so overwriting the output saves a memory pass per layer.
        self.activation = nn.ReLU(inplace=True)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.activation(self.norm(double_resolution(self.conv, hidden_states, self.upsampling)))


class GANDownsampleBlock(nn.Module):
    """Strided 4x4 convolution (halves the resolution), optional normalisation, LeakyReLU(0.2)."""

    def __init__(self, in_channels: int, out_channels: int, norm: str):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1, bias=norm == "none")
        if norm == "batch":
            self.norm = nn.BatchNorm2d(out_channels)
        elif norm == "layer":
            self.norm = nn.GroupNorm(1, out_channels)  # one group: normalises each image over (C, H, W)
        else:
            self.norm = nn.Identity()
        self.activation = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.activation(self.norm(self.conv(hidden_states)))


class GANGenerator(GANPreTrainedModel):
    """Maps Gaussian noise `latents` (and `labels` when conditional) to images in [-1, 1].

    Example:

    ```python
    >>> import torch, hfgen
    >>> generator = hfgen.GANGenerator(hfgen.GANConfig(architecture="dcgan", num_classes=10))
    >>> z = torch.randn(4, generator.config.latent_dim)
    >>> generator(z, labels=torch.tensor([0, 1, 2, 3])).sample.shape
    torch.Size([4, 1, 32, 32])
    ```
    """

    base_model_prefix = "generator"

    def __init__(self, config: GANConfig):
        super().__init__(config)
        input_size = config.latent_dim
        if config.is_conditional:
            self.class_embedding = nn.Embedding(config.num_classes, config.class_embedding_dim)
            input_size += config.class_embedding_dim
        image_shape = (config.num_channels, config.image_size, config.image_size)
        if config.architecture == "mlp":
            sizes = [input_size] + config.generator_hidden_sizes
            self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(sizes))
            self.activation = nn.LeakyReLU(0.2, inplace=True)
            self.to_image = nn.Linear(sizes[-1], image_shape[0] * image_shape[1] * image_shape[2])
        else:
            channels = config.generator_block_channels()
            self.input_projection = nn.Linear(input_size, channels[0] * 16, bias=False)
            self.input_norm = nn.BatchNorm2d(channels[0])
            self.activation = nn.ReLU(inplace=True)
            upsampling = config.generator_upsampling
            self.blocks = nn.ModuleList(GANUpsampleBlock(a, b, upsampling) for a, b in pairwise(channels))
            if upsampling == "nearest":
                self.to_image = nn.Conv2d(channels[-1], config.num_channels, 3, padding=1)
            else:  # the last upsampling makes the image, as in the DCGAN paper
                self.to_image = upsampling_convolution(channels[-1], config.num_channels, upsampling, bias=True)
        self.post_init()

    def forward(self, latents: torch.Tensor, labels: torch.Tensor | None = None, return_dict: bool | None = None):
        r"""
        Args:
            latents (`torch.FloatTensor` of shape `(batch, latent_dim)`):
                Gaussian noise z.
            labels (`torch.LongTensor` of shape `(batch,)`, *optional*):
                Class labels in `[0, num_classes)`; required by a conditional generator, refused by an unconditional
                one.
            return_dict (`bool`, *optional*):
                Return a [`GANGeneratorOutput`] (default: `config.return_dict`) or the tuple `(sample,)`.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        config = self.config
        if latents.ndim != 2 or latents.shape[1] != config.latent_dim:
            raise ValueError(f"latents must have shape (batch, {config.latent_dim}), got {tuple(latents.shape)}")
        check_class_labels(config.num_classes, labels, latents.shape[0], "GAN")
        hidden = latents
        if config.is_conditional:
            hidden = torch.cat([hidden, self.class_embedding(labels)], dim=1)
        if config.architecture == "mlp":
            for layer in self.layers:
                hidden = self.activation(layer(hidden))
            sample = torch.tanh(self.to_image(hidden)).view(
                -1, config.num_channels, config.image_size, config.image_size
            )
        else:
            hidden = self.input_projection(hidden).view(latents.shape[0], -1, 4, 4)
            hidden = self.activation(self.input_norm(hidden))
            for block in self.blocks:
                hidden = block(hidden)
            if config.generator_upsampling == "nearest":
                sample = torch.tanh(self.to_image(hidden))
            else:
                sample = torch.tanh(double_resolution(self.to_image, hidden, config.generator_upsampling))
        if not return_dict:
            return (sample,)
        return GANGeneratorOutput(sample=sample)


class GANDiscriminator(GANPreTrainedModel):
    """Scores images (and their `labels` when conditional): one logit per image, high for real."""

    base_model_prefix = "discriminator"
    main_input_name = "pixel_values"

    def __init__(self, config: GANConfig):
        super().__init__(config)
        in_channels = config.num_channels
        conditioning = config.discriminator_conditioning if config.is_conditional else None
        if conditioning == "concat":
            # Label maps as extra input channels (conv) or extra input features (MLP).
            self.class_embedding = nn.Embedding(config.num_classes, config.class_embedding_dim)
            in_channels += config.class_embedding_dim
        if config.architecture == "mlp":
            input_size = config.num_channels * config.image_size**2
            if conditioning == "concat":
                input_size += config.class_embedding_dim
            sizes = [input_size] + config.discriminator_hidden_sizes
            self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(sizes))
            self.activation = nn.LeakyReLU(0.2, inplace=True)
            feature_size = sizes[-1]
        else:
            channels = config.discriminator_block_channels()
            # DCGAN leaves the first block without normalisation.
            norms = ["none"] + [config.discriminator_norm] * (len(channels) - 1)
            self.blocks = nn.ModuleList(
                GANDownsampleBlock(a, b, norm)
                for a, b, norm in zip([in_channels] + channels[:-1], channels, norms, strict=True)
            )
            feature_size = channels[-1] * 16
        self.output = nn.Linear(feature_size, 1)
        if conditioning == "projection":
            self.class_projection = ClassProjection(config.num_classes, feature_size)
        self.post_init()

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, return_dict: bool | None = None):
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch, num_channels, image_size, image_size)`):
                Images in [-1, 1].
            labels (`torch.LongTensor` of shape `(batch,)`, *optional*):
                Class labels in `[0, num_classes)`; required by a conditional discriminator.
            return_dict (`bool`, *optional*):
                Return a [`GANDiscriminatorOutput`] (default: `config.return_dict`) or the tuple `(logits,)`.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        config = self.config
        expected = (config.num_channels, config.image_size, config.image_size)
        if pixel_values.ndim != 4 or tuple(pixel_values.shape[1:]) != expected:
            raise ValueError(
                f"pixel_values must have shape (batch, {', '.join(map(str, expected))}), got "
                f"{tuple(pixel_values.shape)}"
            )
        check_class_labels(config.num_classes, labels, pixel_values.shape[0], "GAN")
        conditioning = config.discriminator_conditioning if config.is_conditional else None
        hidden = pixel_values
        if config.architecture == "mlp":
            hidden = hidden.flatten(1)
            if conditioning == "concat":
                hidden = torch.cat([hidden, self.class_embedding(labels)], dim=1)
            for layer in self.layers:
                hidden = self.activation(layer(hidden))
        else:
            if conditioning == "concat":
                label_maps = self.class_embedding(labels)[:, :, None, None].expand(-1, -1, *hidden.shape[2:])
                hidden = torch.cat([hidden, label_maps], dim=1)
            for block in self.blocks:
                hidden = block(hidden)
            hidden = hidden.flatten(1)
        logits = self.output(hidden).squeeze(1)
        if conditioning == "projection":
            logits = logits + (self.class_projection(labels) * hidden).sum(dim=1)
        if not return_dict:
            return (logits,)
        return GANDiscriminatorOutput(logits=logits)


__all__ = ["GANDiscriminator", "GANDiscriminatorOutput", "GANGenerator", "GANGeneratorOutput", "GANPreTrainedModel"]
