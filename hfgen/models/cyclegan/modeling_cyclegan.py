"""hfgen's image-to-image translation networks: the ResNet generator of CycleGAN (Zhu et al. 2017, after Johnson et
al. 2016), the U-Net generator of pix2pix (Isola et al. 2017), and the PatchGAN and per-pixel discriminators.

Both networks are `PreTrainedModel`s over one [`CycleGANConfig`]. Upsampling is a nearest-neighbour x2 followed by a
convolution by default, so every layer with weights is an `nn.Conv2d` that PEFT LoRA reaches
(`LORA_GENERATOR_TARGETS`); batch norms go to `modules_to_save`. The losses live in `hfgen.losses`.
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel  # noqa: F401
from transformers import initialization as init
from transformers.utils import ModelOutput

from ..modeling_utils import HfgenPreTrainedModel
from .configuration_cyclegan import CycleGANConfig

# `PreTrainedModel` stays imported by that name: diffusers loads a pipeline component by looking a base class it
# knows up in the component's module, whose path pipeline folders record.

LORA_GENERATOR_TARGETS = r"(.*\.)?conv(_\w+)?"
"""`target_modules` for LoRA on a [`CycleGANGenerator`]: every convolution (PEFT matches full module names). Add
`modules_to_save=["norm"]` for batch norms."""


@dataclass
class CycleGANGeneratorOutput(ModelOutput):
    """
    Args:
        sample (`torch.Tensor` of shape `(batch, out_channels, height, width)`): the translated images in [-1, 1].
    """

    sample: torch.Tensor | None = None


@dataclass
class CycleGANDiscriminatorOutput(ModelOutput):
    """
    Args:
        logits (`torch.Tensor` of shape `(batch, 1, patches_high, patches_wide)`): one raw score per patch (per pixel
            for the `"pixel"` discriminator).
    """

    logits: torch.Tensor | None = None


def normalization(norm: str, channels: int) -> nn.Module:
    if norm == "instance":
        return nn.InstanceNorm2d(channels)  # no affine scale and no running statistics, as in CycleGAN
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Identity()


class CycleGANPreTrainedModel(HfgenPreTrainedModel):
    config: CycleGANConfig
    config_class = CycleGANConfig
    main_input_name = "pixel_values"
    input_modalities = ("image",)

    def _init_weights(self, module):
        # The papers' initialisation: N(0, 0.02) weights, batch norm scales N(1, 0.02).
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            init.normal_(module.weight, mean=1.0, std=0.02)
            init.zeros_(module.bias)
            init.zeros_(module.running_mean)
            init.ones_(module.running_var)
            init.zeros_(module.num_batches_tracked)


def pad(hidden_states: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """Pad before a convolution rather than inside it: a LoRA adapter's own convolution, which pads with zeros, then
    sees the same padded input as the layer it adapts, and merging it changes nothing."""
    if mode == "zeros":
        return nn.functional.pad(hidden_states, (size,) * 4)
    return nn.functional.pad(hidden_states, (size,) * 4, mode=mode)


class Upsample(nn.Module):
    """x2 upsampling to `out_channels`: nearest neighbour then a 3x3 convolution, or a transposed convolution."""

    def __init__(self, in_channels: int, out_channels: int, upsampling: str, bias: bool, padding_mode: str, kernel=3):
        super().__init__()
        self.upsampling = upsampling
        self.padding_mode = padding_mode
        if upsampling == "nearest":
            self.conv = nn.Conv2d(in_channels, out_channels, 3, bias=bias)
        elif kernel == 3:  # the ResNet generator's
            self.conv = nn.ConvTranspose2d(in_channels, out_channels, 3, 2, padding=1, output_padding=1, bias=bias)
        else:  # the U-Net's
            self.conv = nn.ConvTranspose2d(in_channels, out_channels, 4, 2, padding=1, bias=bias)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.upsampling == "nearest":
            hidden_states = nn.functional.interpolate(hidden_states, scale_factor=2.0, mode="nearest")
            hidden_states = pad(hidden_states, 1, self.padding_mode)
        return self.conv(hidden_states)


class ResidualBlock(nn.Module):
    """Two reflection-padded 3x3 convolutions with normalisation and a skip connection (Johnson et al.)."""

    def __init__(self, channels: int, norm: str, use_dropout: bool, bias: bool):
        super().__init__()
        self.conv_1 = nn.Conv2d(channels, channels, 3, bias=bias)
        self.norm_1 = normalization(norm, channels)
        self.dropout = nn.Dropout(0.5) if use_dropout else nn.Identity()
        self.conv_2 = nn.Conv2d(channels, channels, 3, bias=bias)
        self.norm_2 = normalization(norm, channels)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        residual = self.dropout(torch.relu(self.norm_1(self.conv_1(pad(hidden_states, 1, "reflect")))))
        return hidden_states + self.norm_2(self.conv_2(pad(residual, 1, "reflect")))


class CycleGANGenerator(CycleGANPreTrainedModel):
    r"""
    Translates images of domain A (`config.in_channels`) to domain B (`config.out_channels`), both in [-1, 1], at
    any size divisible by `config.generator_stride`.
    """

    def __init__(self, config: CycleGANConfig):
        super().__init__(config)
        bias = config.norm != "batch"  # a batch norm's shift makes a bias redundant
        if config.generator_architecture == "resnet":
            self._build_resnet(config, bias)
        else:
            self._build_unet(config, bias)
        self.post_init()

    def _build_resnet(self, config: CycleGANConfig, bias: bool) -> None:
        channels = config.generator_channels
        self.conv_in = nn.Conv2d(config.in_channels, channels, 7, bias=bias)
        self.norm_in = normalization(config.norm, channels)
        self.down = nn.ModuleList()
        self.down_norms = nn.ModuleList()
        for level in range(2):
            width = channels * 2**level
            self.down.append(nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=bias))
            self.down_norms.append(normalization(config.norm, 2 * width))
        width = channels * 4
        self.blocks = nn.ModuleList(
            ResidualBlock(width, config.norm, config.use_dropout, bias) for _ in range(config.num_residual_blocks)
        )
        self.up = nn.ModuleList()
        self.up_norms = nn.ModuleList()
        for level in (2, 1):
            self.up.append(
                Upsample(channels * 2**level, channels * 2 ** (level - 1), config.upsampling, bias, "reflect")
            )
            self.up_norms.append(normalization(config.norm, channels * 2 ** (level - 1)))
        self.conv_out = nn.Conv2d(channels, config.out_channels, 7)

    def _build_unet(self, config: CycleGANConfig, bias: bool) -> None:
        levels = config.unet_num_downs
        widths = [min(config.generator_channels * 2**level, config.generator_channels * 8) for level in range(levels)]
        self.encoders = nn.ModuleList()
        self.encoder_norms = nn.ModuleList()
        for level, width in enumerate(widths):
            in_width = config.in_channels if level == 0 else widths[level - 1]
            self.encoders.append(nn.Conv2d(in_width, width, 4, stride=2, padding=1, bias=bias))
            # neither the first level (the image) nor the 1x1 innermost one is normalised, as in pix2pix
            inner = 0 < level < levels - 1
            self.encoder_norms.append(normalization(config.norm, width) if inner else nn.Identity())
        self.decoders = nn.ModuleList()
        self.decoder_norms = nn.ModuleList()
        self.decoder_dropouts = nn.ModuleList()
        for level in range(levels - 1, 0, -1):
            in_width = widths[level] if level == levels - 1 else 2 * widths[level]
            self.decoders.append(Upsample(in_width, widths[level - 1], config.upsampling, bias, "zeros", kernel=4))
            self.decoder_norms.append(normalization(config.norm, widths[level - 1]))
            # pix2pix's dropout: the three decoder levels nearest the bottleneck
            noisy = config.use_dropout and level >= levels - 3
            self.decoder_dropouts.append(nn.Dropout(0.5) if noisy else nn.Identity())
        self.final_up = Upsample(2 * widths[0], config.out_channels, config.upsampling, True, "zeros", kernel=4)

    def check_size(self, pixel_values: torch.Tensor) -> None:
        stride = self.config.generator_stride
        height, width = pixel_values.shape[-2:]
        if pixel_values.ndim != 4 or pixel_values.shape[1] != self.config.in_channels:
            raise ValueError(
                f"pixel_values must have shape (batch, {self.config.in_channels}, height, width), got "
                f"{tuple(pixel_values.shape)}"
            )
        if height % stride or width % stride:
            raise ValueError(
                f"images of {width}x{height} pixels: this generator needs sides divisible by {stride} (its "
                f"downsampling); resize or pad them, e.g. to {(width + stride - 1) // stride * stride}x"
                f"{(height + stride - 1) // stride * stride}"
            )

    def forward(self, pixel_values: torch.Tensor, return_dict: bool | None = None):
        r"""
        Args:
            pixel_values (`torch.Tensor` of shape `(batch, in_channels, height, width)`):
                Images of domain A in [-1, 1].
            return_dict (`bool`, *optional*):
                Return a [`CycleGANGeneratorOutput`] instead of a tuple.
        """
        self.check_size(pixel_values)
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if self.config.generator_architecture == "resnet":
            sample = self._resnet(pixel_values)
        else:
            sample = self._unet(pixel_values)
        if not return_dict:
            return (sample,)
        return CycleGANGeneratorOutput(sample=sample)

    def _resnet(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = torch.relu(self.norm_in(self.conv_in(pad(hidden_states, 3, "reflect"))))
        for conv, norm in zip(self.down, self.down_norms, strict=True):
            hidden_states = torch.relu(norm(conv(hidden_states)))
        for block in self.blocks:
            hidden_states = block(hidden_states)
        for up, norm in zip(self.up, self.up_norms, strict=True):
            hidden_states = torch.relu(norm(up(hidden_states)))
        return torch.tanh(self.conv_out(pad(hidden_states, 3, "reflect")))

    def _unet(self, hidden_states: torch.Tensor) -> torch.Tensor:
        skips = []
        for level, (conv, norm) in enumerate(zip(self.encoders, self.encoder_norms, strict=True)):
            if level > 0:
                hidden_states = nn.functional.leaky_relu(hidden_states, 0.2)
            hidden_states = norm(conv(hidden_states))
            skips.append(hidden_states)
        skips.pop()  # the innermost level has no mirror
        for up, norm, dropout in zip(self.decoders, self.decoder_norms, self.decoder_dropouts, strict=True):
            hidden_states = dropout(norm(up(torch.relu(hidden_states))))
            hidden_states = torch.cat([skips.pop(), hidden_states], dim=1)
        return torch.tanh(self.final_up(torch.relu(hidden_states)))


class CycleGANDiscriminator(CycleGANPreTrainedModel):
    r"""
    Scores images of domain B (with their domain-A input first along the channels when
    `config.conditional_discriminator`): a map of raw logits, one per overlapping patch (PatchGAN) or per pixel.
    """

    def __init__(self, config: CycleGANConfig):
        super().__init__(config)
        bias = config.norm != "batch"
        channels, in_channels = config.discriminator_channels, config.discriminator_in_channels
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        if config.discriminator_architecture == "pixel":
            widths, kernel, strides = [channels, 2 * channels], 1, [1, 1]
        else:
            widths = [channels * min(2**layer, 8) for layer in range(config.discriminator_layers + 1)]
            kernel, strides = 4, [2] * config.discriminator_layers + [1]
        for layer, (width, stride) in enumerate(zip(widths, strides, strict=True)):
            previous = in_channels if layer == 0 else widths[layer - 1]
            padding = 1 if kernel == 4 else 0
            self.convs.append(
                nn.Conv2d(previous, width, kernel, stride=stride, padding=padding, bias=bias or layer == 0)
            )
            # the first layer sees the image itself and is not normalised
            self.norms.append(normalization(config.norm, width) if layer > 0 else nn.Identity())
        self.conv_out = nn.Conv2d(widths[-1], 1, kernel, padding=1 if kernel == 4 else 0)
        self.post_init()

    def forward(self, pixel_values: torch.Tensor, return_dict: bool | None = None):
        r"""
        Args:
            pixel_values (`torch.Tensor` of shape `(batch, discriminator_in_channels, height, width)`):
                Images in [-1, 1] (for a conditional discriminator, the input and the output image concatenated).
            return_dict (`bool`, *optional*):
                Return a [`CycleGANDiscriminatorOutput`] instead of a tuple.
        """
        expected = self.config.discriminator_in_channels
        if pixel_values.ndim != 4 or pixel_values.shape[1] != expected:
            raise ValueError(
                f"pixel_values must have shape (batch, {expected}, height, width), got {tuple(pixel_values.shape)}"
            )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        hidden_states = pixel_values
        for conv, norm in zip(self.convs, self.norms, strict=True):
            hidden_states = nn.functional.leaky_relu(norm(conv(hidden_states)), 0.2)
        logits = self.conv_out(hidden_states)
        if not return_dict:
            return (logits,)
        return CycleGANDiscriminatorOutput(logits=logits)


__all__ = [
    "LORA_GENERATOR_TARGETS",
    "CycleGANDiscriminator",
    "CycleGANDiscriminatorOutput",
    "CycleGANGenerator",
    "CycleGANGeneratorOutput",
    "CycleGANPreTrainedModel",
]
