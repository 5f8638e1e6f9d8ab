"""hfgen's StyleGAN 1 (Karras et al. 2019) and StyleGAN 2 (Karras et al. 2020) in pure PyTorch.

Nothing is compiled, so the code runs wherever PyTorch does (CPU, CUDA, MPS). With `config.resample_filter` (the
published `[1, 3, 3, 1]`, the default) both networks resample as NVIDIA's StyleGAN 2 does, with FIR filters in plain
PyTorch (`resampling.py`): published weights converted to hfgen mean the same thing. With `resample_filter=None`
(folders saved before the filters became the default), upsampling is bilinear and the discriminator average-pools.

- Mapping network: PixelNorm(z) (and a label embedding when conditional), `mapping_layers` equalised linear layers
  with a learning-rate multiplier, a running average of w for the truncation trick.
- Synthesis network: a learned 4x4 constant, then per resolution two style layers (`"adain"` or `"modulated"`),
  per-layer noise inputs with a learned per-channel strength, and RGB outputs (summed across resolutions by the
  `"skip"` architecture).
- Discriminator: residual (`"resnet"`) or plain blocks, minibatch standard deviation at 4x4, projection onto a
  label embedding when conditional.

All weights use the equalised learning rate (Karras et al. 2018): stored as N(0, 1) / lr_multiplier and scaled by
lr_multiplier / sqrt(fan_in) at run time, so Adam's per-parameter step sizes match across layers.
`EqualizedLinear` and `EqualizedConv2d` subclass `nn.Linear` / `nn.Conv2d`, so PEFT LoRA wraps them
(`LORA_STYLE_TARGETS`). The run-time gain multiplies the layer's *input*, in the module that calls the layer, rather
than its weight: `W (g x)` equals `(g W) x`, so the stored weights mean what they always did, and a LoRA update `B A`
then acts on `g x` both unmerged (`W (g x) + B A (g x)`) and merged into the weight (`(W + B A) (g x)`), so
`merge_and_unload()` keeps the output.
"""

import math
from dataclasses import dataclass
from itertools import pairwise

import torch
import torch.nn.functional as F
from diffusers.utils.torch_utils import randn_tensor
from torch import nn
from transformers import PreTrainedModel  # noqa: F401
from transformers import initialization as init
from transformers.utils import ModelOutput

from ..conditioning import check_class_labels
from ..modeling_utils import HfgenPreTrainedModel
from .configuration_stylegan import StyleGANConfig
from .resampling import downsample2d, fir_filter, upfirdn2d, upsample2d

# `PreTrainedModel` stays imported by that name: diffusers loads a pipeline component by looking a base class it
# knows up in the component's module, whose path pipeline folders record.

LORA_STYLE_TARGETS = r".*(mapping\.layers\.\d+|mapping\.class_embedding|\.affine)"
"""`target_modules` for LoRA on a [`StyleGANGenerator`] (a regular expression, matched by PEFT against full module
names): the mapping network and every layer's style affine, which together decide what each layer is told to draw."""

LEAKY_RELU_GAIN = math.sqrt(2.0)
"""Rescales LeakyReLU(0.2) outputs to keep unit variance through equalised layers, as StyleGAN does."""


@dataclass
class StyleGANGeneratorOutput(ModelOutput):
    """
    Args:
        sample (`torch.Tensor` of shape `(batch, num_channels, resolution, resolution)`): images in [-1, 1] (not
            clamped: StyleGAN's output is unbounded, pipelines clamp).
        ws (`torch.Tensor` of shape `(batch, num_ws, w_dim)`): the w latents each layer received.
    """

    sample: torch.Tensor = None
    ws: torch.Tensor = None


@dataclass
class StyleGANDiscriminatorOutput(ModelOutput):
    """
    Args:
        logits (`torch.Tensor` of shape `(batch,)`): one raw score per image, high for real.
    """

    logits: torch.Tensor = None


def leaky_relu(hidden_states: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(hidden_states, 0.2) * LEAKY_RELU_GAIN


def clamp_activations(hidden_states: torch.Tensor, conv_clamp: float | None) -> torch.Tensor:
    """`hidden_states` clamped to [-conv_clamp, conv_clamp] (NVIDIA's `conv_clamp`), or as they are for None."""
    return hidden_states if conv_clamp is None else hidden_states.clamp(-conv_clamp, conv_clamp)


class EqualizedLinear(nn.Linear):
    """Linear layer with the equalised learning rate: weights stored as N(0, 1) / lr_multiplier, biases as
    bias_init / lr_multiplier.

    It computes `weight_gain * x @ weight.T + lr_multiplier * bias` when called on `x * weight_gain`, with
    `weight_gain = lr_multiplier / sqrt(in_features)`: the caller scales the input (`layer(x * gain)`, the gain read
    from `weight_gain` when the layer is built), so that a PEFT LoRA adapter wrapping this layer sees the scaled input
    too and merges exactly (see the module docstring). The bias multiplier stays inside: LoRA leaves biases alone.
    """

    def __init__(self, in_features: int, out_features: int, lr_multiplier: float = 1.0, bias_init: float = 0.0):
        super().__init__(in_features, out_features)
        self.lr_multiplier = lr_multiplier
        self.bias_init = bias_init
        self.weight_gain = lr_multiplier / math.sqrt(in_features)

    def forward(self, scaled_input: torch.Tensor) -> torch.Tensor:
        return F.linear(scaled_input, self.weight, self.bias * self.lr_multiplier)


class EqualizedConv2d(nn.Conv2d):
    """Convolution with the equalised learning rate (same padding): weights stored as N(0, 1).

    A plain convolution of its input: the caller multiplies the input by `weight_gain = 1 / sqrt(fan_in)` (see
    [`EqualizedLinear`]); zero padding commutes with that scaling, and the bias is added unscaled, as before.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride=1,
        padding=None,
        *args,
        bias: bool = True,
        **kwargs,
    ):
        # nn.Conv2d's signature, with "same" padding by default: PEFT builds its LoRA convolutions by calling the
        # targeted layer's class as it would call nn.Conv2d.
        if padding is None:
            sizes = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
            padding = tuple(size // 2 for size in sizes)
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, *args, bias=bias, **kwargs)
        self.weight_gain = 1.0 / math.sqrt(self.weight[0].numel())


class PixelNorm(nn.Module):
    """Scales each vector to unit root mean square (Karras et al. 2018)."""

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return hidden_states * torch.rsqrt(hidden_states.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class NoiseInjection(nn.Module):
    """Adds single-channel Gaussian noise, scaled by a learned strength per feature channel (initially 0)."""

    def __init__(self, channels: int):
        super().__init__()
        self.strength = nn.Parameter(torch.zeros(channels))

    def forward(self, hidden_states: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return hidden_states + self.strength[None, :, None, None] * noise


class MappingNetwork(nn.Module):
    """z (and a label) to w, with the running average of w that truncation pulls towards."""

    def __init__(self, config: StyleGANConfig):
        super().__init__()
        self.normalize = PixelNorm()
        input_size = config.latent_dim
        if config.is_conditional:
            self.class_embedding = EqualizedLinear(config.num_classes, config.w_dim)
            self.class_embedding_gain = self.class_embedding.weight_gain
            input_size += config.w_dim
        sizes = [input_size] + [config.w_dim] * config.mapping_layers
        self.layers = nn.ModuleList(
            EqualizedLinear(a, b, lr_multiplier=config.mapping_lr_multiplier) for a, b in pairwise(sizes)
        )
        # Kept here, not read from the layers at run time: PEFT replaces a targeted layer by a wrapper.
        self.layer_gains = [layer.weight_gain for layer in self.layers]
        self.register_buffer("w_avg", torch.zeros(config.w_dim))
        self.w_avg_beta = config.w_avg_beta
        self.num_classes = config.num_classes

    def forward(self, latents: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.normalize(latents)
        if labels is not None:
            one_hot = F.one_hot(labels, self.num_classes).to(latents.dtype)
            label_embedding = self.class_embedding(one_hot * self.class_embedding_gain)
            hidden = torch.cat([hidden, self.normalize(label_embedding)], dim=1)
        for layer, gain in zip(self.layers, self.layer_gains, strict=True):
            hidden = leaky_relu(layer(hidden * gain))
        if self.training:
            # Tracked in the forward pass, as StyleGAN does; DDP broadcasts buffers from the main process.
            with torch.no_grad():
                self.w_avg.copy_(
                    torch.lerp(hidden.detach().mean(dim=0).to(self.w_avg.dtype), self.w_avg, self.w_avg_beta)
                )
        return hidden


class ModulatedConv2d(nn.Module):
    """StyleGAN 2's modulated convolution: w scales the weights per input channel and, with `demodulate`, the
    weights of each output channel are rescaled to unit norm (replacing AdaIN's instance norm)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, w_dim: int, demodulate: bool = True):
        super().__init__()
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)  # styles start at 1: the plain conv
        self.affine_gain = self.affine.weight_gain
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.demodulate = demodulate
        self.padding = kernel_size // 2

    def forward(
        self, hidden_states: torch.Tensor, w: torch.Tensor, resample_filter: torch.Tensor | None = None
    ) -> torch.Tensor:
        """With `resample_filter`, the output is twice the input's size: a transposed convolution of stride 2, then
        the FIR filter (gain 4 for the inserted zeros), as NVIDIA's networks upsample inside the convolution."""
        styles = self.affine(w * self.affine_gain)  # (batch, in_channels)
        weight = self.weight / math.sqrt(self.weight[0].numel())
        # Scaling the input channels by the styles, convolving with the shared weights, then scaling the output
        # channels by the demodulation coefficients equals convolving each image with its own modulated weights, and
        # runs as one ordinary convolution (much faster than a grouped one per image on CPUs).
        modulated = hidden_states * styles[:, :, None, None]
        if resample_filter is None:
            output = F.conv2d(modulated, weight, padding=self.padding)
        else:
            output = F.conv_transpose2d(modulated, weight.transpose(0, 1), stride=2)
            # the transposed convolution's output is larger than 2x by kernel - 1 pixels; the filter's padding
            # (cropping when negative) centres it on the input grid, as "same" padding would
            kernel, taps = weight.shape[-1], resample_filter.shape[-1]
            before = self.padding + (taps + 1) // 2 - (kernel - 1)
            after = self.padding + (taps - 2) // 2 - (kernel - 2)
            output = upfirdn2d(output, resample_filter, padding=(before, after, before, after), gain=4)
        if self.demodulate:
            # |s_i w_oikl|^2 summed over i, k, l = sum_i s_i^2 (sum_kl w_oikl^2): one (batch, in) x (in, out) product
            # instead of building the (batch, out, in, k, k) modulated weights
            modulated_norms = styles.square() @ weight.square().sum(dim=(2, 3)).T
            output = output * torch.rsqrt(modulated_norms + 1e-8)[:, :, None, None]
        return output


class StyleLayer(nn.Module):
    """One synthesis layer: optional x2 upsampling, a style-controlled 3x3 convolution, noise, bias, activation."""

    def __init__(self, in_channels: int, out_channels: int, resolution: int, config: StyleGANConfig, upsample: bool):
        super().__init__()
        self.upsample = upsample
        self.style_block = config.style_block
        if config.style_block == "modulated":
            self.conv = ModulatedConv2d(in_channels, out_channels, 3, config.w_dim)
        else:
            self.conv = EqualizedConv2d(in_channels, out_channels, 3, bias=False)
            self.conv_gain = self.conv.weight_gain
            self.instance_norm = nn.InstanceNorm2d(out_channels)
            # AdaIN's per-channel scale and bias; the scale is applied as (1 + s), so the layer starts as plain IN.
            self.affine = EqualizedLinear(config.w_dim, 2 * out_channels)
            self.affine_gain = self.affine.weight_gain
        self.noise = NoiseInjection(out_channels) if config.use_noise else None
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.resolution = resolution
        self.conv_clamp = config.conv_clamp
        if config.resample_filter is not None:
            self.register_buffer("resample_filter", fir_filter(config.resample_filter), persistent=False)
        else:
            self.resample_filter = None

    def forward(self, hidden_states: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        fir_upsampling = self.upsample and self.resample_filter is not None
        if self.upsample and not fir_upsampling:
            hidden_states = F.interpolate(hidden_states, scale_factor=2, mode="bilinear", align_corners=False)
        if self.style_block == "modulated":
            hidden_states = self.conv(hidden_states, w, self.resample_filter if fir_upsampling else None)
        else:
            if fir_upsampling:
                hidden_states = upsample2d(hidden_states, self.resample_filter)
            hidden_states = self.conv(hidden_states * self.conv_gain)
        if self.noise is not None and noise is not None:
            hidden_states = self.noise(hidden_states, noise)
        hidden_states = leaky_relu(hidden_states + self.bias[None, :, None, None])
        hidden_states = clamp_activations(hidden_states, self.conv_clamp)
        if self.style_block == "adain":
            scale, shift = self.affine(w * self.affine_gain)[:, :, None, None].chunk(2, dim=1)
            hidden_states = self.instance_norm(hidden_states) * (1 + scale) + shift
        return hidden_states


class ToImage(nn.Module):
    """1x1 convolution to image channels: modulated without demodulation (StyleGAN 2) or plain (StyleGAN 1)."""

    def __init__(self, in_channels: int, config: StyleGANConfig):
        super().__init__()
        self.modulated = config.style_block == "modulated"
        if self.modulated:
            self.conv = ModulatedConv2d(in_channels, config.num_channels, 1, config.w_dim, demodulate=False)
        else:
            self.conv = EqualizedConv2d(in_channels, config.num_channels, 1, bias=False)
            self.conv_gain = self.conv.weight_gain
        self.bias = nn.Parameter(torch.zeros(config.num_channels))
        self.conv_clamp = config.conv_clamp

    def forward(self, hidden_states: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        output = self.conv(hidden_states, w) if self.modulated else self.conv(hidden_states * self.conv_gain)
        output = output + self.bias[None, :, None, None]
        return clamp_activations(output, self.conv_clamp)


class SynthesisBlock(nn.Module):
    """All layers of one resolution: the 4x4 block holds the learned constant and one layer, the others two."""

    def __init__(self, resolution: int, config: StyleGANConfig, is_last: bool):
        super().__init__()
        channels = config.channels_at(resolution)
        self.is_first = resolution == 4
        if self.is_first:
            self.constant = nn.Parameter(torch.randn(channels, 4, 4))
            self.layers = nn.ModuleList([StyleLayer(channels, channels, 4, config, upsample=False)])
        else:
            previous = config.channels_at(resolution // 2)
            self.layers = nn.ModuleList(
                [
                    StyleLayer(previous, channels, resolution, config, upsample=True),
                    StyleLayer(channels, channels, resolution, config, upsample=False),
                ]
            )
        has_image_output = config.generator_architecture == "skip" or is_last
        self.to_image = ToImage(channels, config) if has_image_output else None
        self.resolution = resolution


class SynthesisNetwork(nn.Module):
    """ws `(batch, num_ws, w_dim)` to images."""

    def __init__(self, config: StyleGANConfig):
        super().__init__()
        resolutions = config.resolutions
        self.blocks = nn.ModuleList(SynthesisBlock(r, config, is_last=r == resolutions[-1]) for r in resolutions)
        self.use_noise = config.use_noise
        # Fixed noise of every layer, for noise_mode="const": saved with the model, so a reloaded model draws the
        # same images.
        for index, resolution in enumerate(self.layer_resolutions()):
            self.register_buffer(f"noise_const_{index}", torch.randn(1, 1, resolution, resolution))
        if config.resample_filter is not None:
            self.register_buffer("resample_filter", fir_filter(config.resample_filter), persistent=False)
        else:
            self.resample_filter = None

    def layer_resolutions(self) -> list[int]:
        return [layer.resolution for block in self.blocks for layer in block.layers]

    def noise_shapes(self, batch_size: int) -> list[tuple[int, ...]]:
        """Shapes of the per-layer noise maps, for callers that draw them from their own generator."""
        return [(batch_size, 1, r, r) for r in self.layer_resolutions()]

    def forward(
        self,
        ws: torch.Tensor,
        noise_mode: str = "random",
        noise: list[torch.Tensor] | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
    ):
        if noise_mode not in ("random", "const", "none"):
            raise ValueError(f"noise_mode must be 'random', 'const' or 'none', got {noise_mode!r}")
        batch = ws.shape[0]
        num_layers = len(self.layer_resolutions())
        if noise is not None and len(noise) != num_layers:
            raise ValueError(f"noise must hold {num_layers} maps (one per layer), got {len(noise)}")
        if isinstance(generator, list) and len(generator) != batch:
            raise ValueError(f"got {len(generator)} generators for a batch of {batch}: give one per image, or one")
        w_index, layer_index, image = 0, 0, None
        hidden = None
        for block in self.blocks:
            if block.is_first:
                hidden = block.constant[None].expand(batch, -1, -1, -1)
            for layer in block.layers:
                if noise is not None:
                    layer_noise = noise[layer_index]
                elif not self.use_noise or noise_mode == "none":
                    layer_noise = None
                elif noise_mode == "const":
                    layer_noise = getattr(self, f"noise_const_{layer_index}")
                else:
                    # From `generator` when given (a list: one per image), so a seeded call is reproducible and the
                    # global RNG is left alone; drawn layer by layer, in the order of `noise_shapes`.
                    layer_noise = randn_tensor(
                        (batch, 1, layer.resolution, layer.resolution),
                        generator=generator,
                        device=ws.device,
                        dtype=ws.dtype,
                    )
                hidden = layer(hidden, ws[:, w_index], layer_noise)
                w_index += 1
                layer_index += 1
            if block.to_image is not None:
                # The RGB output uses the w of the next layer (the last one has its own), as in StyleGAN 2.
                block_image = block.to_image(hidden, ws[:, w_index])
                if image is not None:
                    if self.resample_filter is not None:
                        image = upsample2d(image, self.resample_filter)
                    else:
                        image = F.interpolate(image, scale_factor=2, mode="bilinear", align_corners=False)
                    block_image = block_image + image
                image = block_image
        return image


class StyleGANPreTrainedModel(HfgenPreTrainedModel):
    config: StyleGANConfig
    config_class = StyleGANConfig
    input_modalities = ("image",)

    def _init_weights(self, module):
        from .alias_free import init_alias_free_module  # StyleGAN 3's layers, built on this module's

        # Equalised learning rate: N(0, 1) weights (divided by the lr multiplier), scaled at run time.
        # Buffers too: a model built on the meta device, or loaded from a file that lacks them, gets them only here.
        if init_alias_free_module(module, init):
            pass
        elif isinstance(module, MappingNetwork):
            init.zeros_(module.w_avg)  # the truncation centre before any w has been tracked
        elif isinstance(module, SynthesisNetwork):
            for index in range(len(module.layer_resolutions())):
                init.normal_(getattr(module, f"noise_const_{index}"), mean=0.0, std=1.0)
        elif isinstance(module, EqualizedLinear):
            init.normal_(module.weight, mean=0.0, std=1.0 / module.lr_multiplier)
            init.constant_(module.bias, module.bias_init / module.lr_multiplier)
        elif isinstance(module, EqualizedConv2d):
            init.normal_(module.weight, mean=0.0, std=1.0)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, ModulatedConv2d):
            init.normal_(module.weight, mean=0.0, std=1.0)
        elif isinstance(module, SynthesisBlock) and module.is_first:
            init.normal_(module.constant, mean=0.0, std=1.0)
        elif isinstance(module, NoiseInjection):
            init.zeros_(module.strength)
        elif isinstance(module, (StyleLayer, ToImage)):
            init.zeros_(module.bias)
        if getattr(module, "resample_filter", None) is not None:  # not saved: rebuilt from the config
            init.copy_(module.resample_filter, fir_filter(self.config.resample_filter))
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=1.0)


def mix_styles(ws: torch.Tensor, other_ws: torch.Tensor, crossover_layer: int) -> torch.Tensor:
    """Style mixing: layers before `crossover_layer` keep `ws`, the rest take `other_ws`."""
    if ws.shape != other_ws.shape:
        raise ValueError(f"ws and other_ws differ in shape: {tuple(ws.shape)} vs {tuple(other_ws.shape)}")
    if not 0 <= crossover_layer <= ws.shape[1]:
        raise ValueError(f"crossover_layer must lie in [0, {ws.shape[1]}], got {crossover_layer}")
    return torch.cat([ws[:, :crossover_layer], other_ws[:, crossover_layer:]], dim=1)


class StyleGANGenerator(StyleGANPreTrainedModel):
    """Mapping network and synthesis network.

    Example:

    ```python
    >>> import torch, hfgen
    >>> config = hfgen.StyleGANConfig(resolution=16, latent_dim=32, w_dim=32, mapping_layers=2, channel_base=256,
    ...                               channel_max=32)
    >>> stylegan = hfgen.StyleGANGenerator(config)
    >>> stylegan(torch.randn(2, 32), truncation_psi=0.7).sample.shape
    torch.Size([2, 1, 16, 16])
    ```
    """

    base_model_prefix = "stylegan"
    main_input_name = "latents"

    def __init__(self, config: StyleGANConfig):
        super().__init__(config)
        self.mapping = MappingNetwork(config)
        if config.generator_architecture == "alias_free":
            from .alias_free import AliasFreeSynthesisNetwork  # StyleGAN 3, built on this module's layers

            self.synthesis = AliasFreeSynthesisNetwork(config)
        else:
            self.synthesis = SynthesisNetwork(config)
        self.post_init()

    @property
    def num_ws(self) -> int:
        return self.config.num_ws

    def map(
        self,
        latents: torch.Tensor,
        labels: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
    ) -> torch.Tensor:
        """z to ws `(batch, num_ws, w_dim)`, with the truncation trick: w_avg + psi * (w - w_avg) on the first
        `truncation_cutoff` layers (all layers if None)."""
        if latents.ndim != 2 or latents.shape[1] != self.config.latent_dim:
            raise ValueError(f"latents must have shape (batch, {self.config.latent_dim}), got {tuple(latents.shape)}")
        check_class_labels(self.config.num_classes, labels, latents.shape[0], "StyleGAN")
        w = self.mapping(latents, labels)
        ws = w[:, None].repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            w_avg = self.mapping.w_avg.to(ws.dtype)
            ws[:, :cutoff] = torch.lerp(w_avg, ws[:, :cutoff], truncation_psi)
        return ws

    def synthesize(
        self,
        ws: torch.Tensor,
        noise_mode: str = "random",
        noise: list[torch.Tensor] | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
    ) -> torch.Tensor:
        r"""
        ws to images.

        Args:
            ws (`torch.FloatTensor` of shape `(batch, num_ws, w_dim)`):
                One w per layer, e.g. from [`~StyleGANGenerator.map`].
            noise_mode (`str`, *optional*, defaults to `"random"`):
                Per-layer noise inputs: `"random"` (fresh Gaussian noise), `"const"` (the fixed maps saved with the
                model, for repeatable images) or `"none"`. An `"alias_free"` (StyleGAN 3) generator has no noise
                inputs: every mode draws the same image.
            noise (`list[torch.FloatTensor]`, *optional*):
                Noise maps of the shapes `synthesis.noise_shapes(batch)`, one per layer; overrides `noise_mode`
                (none for `"alias_free"`: `noise_shapes` is empty and given maps are refused).
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*):
                Source of the `"random"` noise (a list: one generator per image). Without it the noise comes from
                PyTorch's global RNG.

        Returns:
            `torch.FloatTensor` of shape `(batch, num_channels, resolution, resolution)`.
        """
        expected = (self.num_ws, self.config.w_dim)
        if ws.ndim != 3 or tuple(ws.shape[1:]) != expected:
            raise ValueError(f"ws must have shape (batch, {expected[0]}, {expected[1]}), got {tuple(ws.shape)}")
        return self.synthesis(ws, noise_mode=noise_mode, noise=noise, generator=generator)

    def forward(
        self,
        latents: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        ws: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "random",
        noise: list[torch.Tensor] | None = None,
        mixing_latents: torch.Tensor | None = None,
        crossover_layer: int | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        return_dict: bool | None = None,
    ):
        r"""
        Images from z (`latents`, with `labels` when conditional) or directly from `ws`.

        Args:
            latents (`torch.FloatTensor` of shape `(batch, latent_dim)`, *optional*):
                z; pass exactly one of `latents` and `ws`.
            labels (`torch.LongTensor` of shape `(batch,)`, *optional*):
                Class labels in `[0, num_classes)`; required by a conditional generator.
            ws (`torch.FloatTensor` of shape `(batch, num_ws, w_dim)`, *optional*):
                Styles, skipping the mapping network.
            truncation_psi (`float`, *optional*, defaults to 1.0), truncation_cutoff (`int`, *optional*):
                Truncation trick, see [`~StyleGANGenerator.map`].
            noise_mode (`str`, *optional*, defaults to `"random"`), noise (`list[torch.FloatTensor]`, *optional*):
                Per-layer noise inputs, see [`~StyleGANGenerator.synthesize`].
            mixing_latents (`torch.FloatTensor` of shape `(batch, latent_dim)`, *optional*),
            crossover_layer (`int`, *optional*):
                Style mixing (a regulariser in training): the layers from `crossover_layer` on take the styles of
                `mixing_latents`.
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*):
                Source of the `"random"` noise, so that a seeded call is reproducible and leaves the global RNG alone.
            return_dict (`bool`, *optional*):
                Return a [`StyleGANGeneratorOutput`] (default: `config.return_dict`) or the tuple `(sample, ws)`.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if (latents is None) == (ws is None):
            raise ValueError("pass exactly one of `latents` (z) and `ws`")
        if (mixing_latents is None) != (crossover_layer is None):
            raise ValueError("style mixing needs both `mixing_latents` and `crossover_layer`")
        if ws is None:
            ws = self.map(latents, labels, truncation_psi, truncation_cutoff)
            if mixing_latents is not None:
                ws = mix_styles(
                    ws, self.map(mixing_latents, labels, truncation_psi, truncation_cutoff), crossover_layer
                )
        elif mixing_latents is not None:
            raise ValueError("style mixing applies to `latents`, not to given `ws`")
        sample = self.synthesize(ws, noise_mode=noise_mode, noise=noise, generator=generator)
        if not return_dict:
            return (sample, ws)
        return StyleGANGeneratorOutput(sample=sample, ws=ws)


class MinibatchStdDev(nn.Module):
    """Appends the standard deviation of features across a group of images (Karras et al. 2018), so the
    discriminator can see a lack of variety."""

    def __init__(self, group_size: int, num_channels: int):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = hidden_states.shape
        group = min(self.group_size, batch)
        while batch % group:  # the largest group size that divides the batch
            group -= 1
        statistics = hidden_states.reshape(group, -1, self.num_channels, channels // self.num_channels, height, width)
        statistics = statistics - statistics.mean(dim=0)
        statistics = (statistics.pow(2).mean(dim=0) + 1e-8).sqrt()
        statistics = statistics.mean(dim=(2, 3, 4))  # (batch / group, num_channels)
        statistics = statistics.reshape(-1, self.num_channels, 1, 1).repeat(group, 1, height, width)
        return torch.cat([hidden_states, statistics], dim=1)


class DiscriminatorBlock(nn.Module):
    """Two 3x3 convolutions, the second halving the resolution; `"resnet"` adds a 1x1 skip, scaled by 1/sqrt(2).

    With a FIR `resample_filter` (StyleGAN 2 as published) the second convolution filters its input and runs with
    stride 2, and the skip filters and keeps every other pixel (`downsample2d`); without it (hfgen's first StyleGAN
    2), both average-pool by 2. `conv_clamp` bounds both convolutions' activations, as in NVIDIA's discriminator.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        residual: bool,
        resample_filter=None,
        conv_clamp: float | None = None,
    ):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.conv0 = EqualizedConv2d(in_channels, in_channels, 3)
        if resample_filter is None:
            self.conv1 = EqualizedConv2d(in_channels, out_channels, 3)
            self.resample_filter = None
        else:
            self.conv1 = EqualizedConv2d(in_channels, out_channels, 3, stride=2, padding=0)
            self.register_buffer("resample_filter", fir_filter(resample_filter), persistent=False)
            # The filter's padding plus the convolution's own: a 3x3 convolution of stride 2 then sees the filtered
            # image exactly where a "same" convolution would.
            taps = len(resample_filter)
            self.conv1_padding = (1 + (taps - 1) // 2, 1 + (taps - 2) // 2) * 2
        self.skip = EqualizedConv2d(in_channels, out_channels, 1, bias=False) if residual else None
        # Equalised learning rate: the gains scale each convolution's input (see `EqualizedLinear`).
        self.conv0_gain, self.conv1_gain = self.conv0.weight_gain, self.conv1.weight_gain
        self.skip_gain = self.skip.weight_gain if residual else None

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        output = clamp_activations(leaky_relu(self.conv0(hidden_states * self.conv0_gain)), self.conv_clamp)
        if self.resample_filter is None:
            output = F.avg_pool2d(leaky_relu(self.conv1(output * self.conv1_gain)), 2)
            downsampled = F.avg_pool2d(hidden_states, 2) if self.skip is not None else None
        else:
            filtered = upfirdn2d(output, self.resample_filter, padding=self.conv1_padding)
            output = clamp_activations(leaky_relu(self.conv1(filtered * self.conv1_gain)), self.conv_clamp)
            downsampled = downsample2d(hidden_states, self.resample_filter) if self.skip is not None else None
        if self.skip is not None:
            output = (output + self.skip(downsampled * self.skip_gain)) * math.sqrt(0.5)
        return output


class StyleGANDiscriminator(StyleGANPreTrainedModel):
    """Scores images (and `labels` when conditional): one logit per image."""

    base_model_prefix = "discriminator"
    main_input_name = "pixel_values"

    def __init__(self, config: StyleGANConfig):
        super().__init__(config)
        resolutions = config.resolutions[::-1]  # top resolution down to 4
        self.from_image = EqualizedConv2d(config.num_channels, config.channels_at(resolutions[0]), 1)
        residual = config.discriminator_architecture == "resnet"
        self.blocks = nn.ModuleList(
            DiscriminatorBlock(
                config.channels_at(r), config.channels_at(r // 2), residual, config.resample_filter, config.conv_clamp
            )
            for r in resolutions[:-1]
        )
        channels = config.channels_at(4)
        self.minibatch_std = MinibatchStdDev(config.mbstd_group_size, config.mbstd_num_channels)
        self.conv = EqualizedConv2d(channels + config.mbstd_num_channels, channels, 3)
        self.fc = EqualizedLinear(channels * 16, channels)
        self.output = EqualizedLinear(channels, 1)
        # Equalised learning rate: the gains scale each layer's input (see `EqualizedLinear`).
        self.from_image_gain, self.conv_gain = self.from_image.weight_gain, self.conv.weight_gain
        self.fc_gain, self.output_gain = self.fc.weight_gain, self.output.weight_gain
        if config.is_conditional:
            self.class_projection = nn.Embedding(config.num_classes, channels)
        self.post_init()

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, return_dict: bool | None = None):
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch, num_channels, resolution, resolution)`):
                Images in [-1, 1].
            labels (`torch.LongTensor` of shape `(batch,)`, *optional*):
                Class labels in `[0, num_classes)`; required by a conditional discriminator.
            return_dict (`bool`, *optional*):
                Return a [`StyleGANDiscriminatorOutput`] (default: `config.return_dict`) or the tuple `(logits,)`.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        config = self.config
        expected = (config.num_channels, config.resolution, config.resolution)
        if pixel_values.ndim != 4 or tuple(pixel_values.shape[1:]) != expected:
            raise ValueError(
                f"pixel_values must have shape (batch, {', '.join(map(str, expected))}), got "
                f"{tuple(pixel_values.shape)}"
            )
        check_class_labels(config.num_classes, labels, pixel_values.shape[0], "StyleGAN")
        # 1. image to features, then residual (or plain) blocks down to 4x4
        hidden = clamp_activations(leaky_relu(self.from_image(pixel_values * self.from_image_gain)), config.conv_clamp)
        for block in self.blocks:
            hidden = block(hidden)
        # 2. minibatch standard deviation, last convolution and fully connected layers
        hidden = clamp_activations(
            leaky_relu(self.conv(self.minibatch_std(hidden) * self.conv_gain)), config.conv_clamp
        )
        hidden = leaky_relu(self.fc(hidden.flatten(1) * self.fc_gain))
        logits = self.output(hidden * self.output_gain).squeeze(1)
        if config.is_conditional:
            # Projection discriminator (Miyato & Koyama 2018), normalised by sqrt(dim) as in StyleGAN2-ADA.
            logits = logits + (self.class_projection(labels) * hidden).sum(dim=1) / math.sqrt(hidden.shape[1])
        if not return_dict:
            return (logits,)
        return StyleGANDiscriminatorOutput(logits=logits)


__all__ = [
    "LORA_STYLE_TARGETS",
    "StyleGANDiscriminator",
    "StyleGANDiscriminatorOutput",
    "StyleGANGenerator",
    "StyleGANGeneratorOutput",
    "StyleGANPreTrainedModel",
    "mix_styles",
]
