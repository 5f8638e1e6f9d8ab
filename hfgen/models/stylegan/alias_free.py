"""StyleGAN 3's alias-free synthesis network (Karras et al. 2021, "Alias-Free Generative Adversarial Networks"), in
plain PyTorch on any device.

StyleGAN 2's layers let the image depend on absolute pixel positions (the constant input, zero padding, aliasing in
upsampling and in the point-wise non-linearities), so details stick to the screen instead of moving with objects.
StyleGAN 3 treats every feature map as samples of a band-limited continuous signal:

- the input is Fourier features: sinusoids of fixed random frequencies inside the first layer's band, rotated and
  translated by a transform that w drives (and by a `transform` buffer a user may set, e.g. to pan the image);
- every layer has its own sampling rate, cutoff and stopband, on a schedule (`alias_free_layout`): cutoffs grow
  geometrically from `first_cutoff` to the image's Nyquist frequency, the last `num_critical_layers` layers are
  critically sampled, and the others compute a margin of `margin_size` pixels around the image;
- each layer is a modulated convolution then a *filtered* leaky ReLU: upsample `lrelu_upsampling` times with a
  lowpass filter, add the bias, leaky ReLU, clamp, lowpass and downsample to the output rate, so the frequencies the
  non-linearity creates above the band are removed instead of folding back as aliases. The filters are Kaiser-window
  designs (`scipy.signal.firwin`); the rotation-equivariant config (StyleGAN3-R) uses 1x1 convolutions and radially
  symmetric (jinc) downsampling filters;
- each layer divides its input by the square root of a running mean of its squared input (tracked in training
  mode), and the RGB layer's output is scaled by `output_scale`.

The conventions (padding, filter normalisation, where the gains go) are those of NVIDIA's published networks, so
their weights converted to hfgen draw the same images (`conversion.py`). The resampling computes exactly
`resampling.upfirdn2d` (tested), as strided convolutions that skip the inserted zeros and the dropped samples. There
are no noise inputs.
"""

import math

import numpy as np
import scipy.signal
import scipy.special
import torch
import torch.nn.functional as F
from torch import nn

from .configuration_stylegan import StyleGANConfig
from .modeling_stylegan import EqualizedLinear

LEAKY_RELU_SLOPE = 0.2


def design_lowpass_filter(
    num_taps: int, cutoff: float, transition_width: float, sampling_rate: float, radial: bool = False
) -> torch.Tensor | None:
    """A lowpass filter of `num_taps` taps passing frequencies below `cutoff`, with a Kaiser window whose transition
    band is `transition_width` wide (frequencies in cycles per unit at `sampling_rate` samples per unit).

    Separable: the 1-D taps of `scipy.signal.firwin` (summing to 1), applied along rows and columns. `radial`: a 2-D
    radially symmetric filter, the jinc function (the 2-D ideal lowpass) times the outer product of the Kaiser window
    that gives the same attenuation, normalised to sum 1. One tap is no filter: None.
    """
    if num_taps < 1:
        raise ValueError(f"a lowpass filter needs at least one tap, got {num_taps}")
    if num_taps == 1:
        return None
    if not radial:
        taps = scipy.signal.firwin(numtaps=num_taps, cutoff=cutoff, width=transition_width, fs=sampling_rate)
        return torch.as_tensor(taps, dtype=torch.float32)
    positions = (np.arange(num_taps) - (num_taps - 1) / 2) / sampling_rate
    radius = np.hypot(positions[None, :], positions[:, None])
    # jinc: the inverse Fourier transform of a disc of radius `cutoff` (up to a constant the normalisation removes);
    # its value at the centre (an odd number of taps) is the limit, `cutoff`
    safe_radius = np.where(radius > 0, radius, 1.0)
    kernel = np.where(radius > 0, scipy.special.j1(2 * np.pi * cutoff * safe_radius) / (np.pi * safe_radius), cutoff)
    attenuation = scipy.signal.kaiser_atten(num_taps, transition_width / (sampling_rate / 2))
    window = np.kaiser(num_taps, scipy.signal.kaiser_beta(attenuation))
    kernel = kernel * np.outer(window, window)
    return torch.as_tensor(kernel / kernel.sum(), dtype=torch.float32)


def alias_free_layout(config: StyleGANConfig) -> dict[str, np.ndarray]:
    """The schedule of the synthesis layers, index 0 being the Fourier features and index `num_synthesis_layers` the
    RGB layer: per index its `cutoff` and minimum `stopband` (geometric from the first layer's to the last's, constant
    over the critically sampled layers), `sampling_rate` (the power of two at least twice the stopband, at most the
    resolution), the transition band's `half_width`, the `size` in pixels (the sampling rate plus the margins; the
    image's size for the last two) and the `channels`."""
    count = config.num_synthesis_layers
    last_cutoff = config.resolution / 2
    last_stopband = last_cutoff * config.last_stopband_ratio
    progress = np.minimum(np.arange(count + 1) / (count - config.num_critical_layers), 1)
    cutoffs = config.first_cutoff * (last_cutoff / config.first_cutoff) ** progress
    stopbands = config.first_stopband * (last_stopband / config.first_stopband) ** progress
    sampling_rates = np.exp2(np.ceil(np.log2(np.minimum(2 * stopbands, config.resolution))))
    half_widths = np.maximum(stopbands, sampling_rates / 2) - cutoffs
    sizes = sampling_rates + 2 * config.margin_size
    sizes[-2:] = config.resolution
    channels = np.rint(np.minimum(config.channel_base / 2 / cutoffs, config.channel_max))
    channels[-1] = config.num_channels
    return dict(
        cutoff=cutoffs,
        stopband=stopbands,
        sampling_rate=sampling_rates,
        half_width=half_widths,
        size=sizes.astype(np.int64),
        channels=channels.astype(np.int64),
    )


def random_frequencies(channels: int, bandwidth: float) -> torch.Tensor:
    """`(channels, 2)` frequencies drawn uniformly from the disc of radius `bandwidth` (global RNG: called while a
    model is initialised)."""
    angles = torch.rand(channels) * (2 * math.pi)
    radii = torch.rand(channels).sqrt() * bandwidth  # uniform over the area: P(radius < r) = (r / bandwidth)^2
    return torch.stack([angles.cos(), angles.sin()], dim=1) * radii[:, None]


class FourierFeatures(nn.Module):
    """The synthesis input: `channels` sinusoids of fixed frequencies (`frequencies`, `phases`) sampled on a
    `size` x `size` grid at `sampling_rate` pixels per unit, turned by a rotation and translation that w gives, then
    mixed by a learned `channels` x `channels` matrix.

    `transform` (3x3, identity by default) is applied on top, in the same inverse sense: setting its translation to
    `(dx, dy)` shifts the drawn content by `(-dx, -dy)` image units (one unit is the image's width), its rotation
    rotates it; frequencies that a transform pushes past the band are faded out.
    """

    def __init__(self, w_dim: int, channels: int, size: int, sampling_rate: float, bandwidth: float):
        super().__init__()
        self.size, self.sampling_rate, self.bandwidth = size, float(sampling_rate), float(bandwidth)
        # (cos, sin) of a rotation and a translation, from w; initialised to the identity (see `_init_weights`)
        self.affine = EqualizedLinear(w_dim, 4)
        self.affine_gain = self.affine.weight_gain
        self.weight = nn.Parameter(torch.randn(channels, channels))
        self.register_buffer("transform", torch.eye(3))
        self.register_buffer("frequencies", random_frequencies(channels, bandwidth))
        self.register_buffer("phases", torch.rand(channels) - 0.5)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        # 1. the transform from w: a rotation (normalised (cos, sin)) and a translation, both inverse, then the user's
        params = self.affine(w * self.affine_gain)
        params = params / params[:, :2].norm(dim=1, keepdim=True)
        cos, sin, shift = params[:, 0], params[:, 1], params[:, 2:]
        rotation = torch.stack([torch.stack([cos, -sin], dim=1), torch.stack([sin, cos], dim=1)], dim=1)
        user_linear, user_offset = self.transform[:2, :2], self.transform[:2, 2]
        linear = rotation @ user_linear  # (batch, 2, 2)
        offset = (rotation @ (user_offset - shift)[:, :, None]).squeeze(2)  # (batch, 2)
        # 2. sinusoid frequencies and phases in image coordinates
        phases = self.phases + offset @ self.frequencies.T  # (batch, channels)
        frequencies = self.frequencies @ linear  # (batch, channels, 2)
        # fade out what the transform moved beyond the band (never more than the sampling rate can hold)
        amplitudes = 1 - (frequencies.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)
        amplitudes = amplitudes.clamp(0, 1)
        # 3. sample at the pixel centres, the image spanning [-size / 2, size / 2] / sampling_rate
        coordinates = (
            torch.arange(self.size, device=w.device, dtype=w.dtype) + 0.5 - self.size / 2
        ) / self.sampling_rate
        x_phase = coordinates[None, :, None] * frequencies[:, None, :, 0]  # (batch, width, channels)
        y_phase = coordinates[None, :, None] * frequencies[:, None, :, 1]  # (batch, height, channels)
        features = torch.sin(2 * math.pi * (y_phase[:, :, None] + x_phase[:, None, :] + phases[:, None, None]))
        features = features * amplitudes[:, None, None]
        # 4. the learned channel mixing, to (batch, channels, size, size)
        features = features @ (self.weight / math.sqrt(self.weight.shape[0])).T
        return features.permute(0, 3, 1, 2)


class AliasFreeLayer(nn.Module):
    """One synthesis layer: modulated convolution, then the filtered leaky ReLU that takes the signal from
    `in_sampling_rate` to `out_sampling_rate` (or, as the RGB layer, a 1x1 modulated convolution without
    demodulation, bias and clamp only)."""

    def __init__(self, config: StyleGANConfig, layout: dict, index: int):
        super().__init__()
        previous = max(index - 1, 0)
        self.is_to_image = index == config.num_synthesis_layers
        self.is_critically_sampled = index >= config.num_synthesis_layers - config.num_critical_layers
        self.in_channels, self.out_channels = int(layout["channels"][previous]), int(layout["channels"][index])
        self.in_size, self.out_size = int(layout["size"][previous]), int(layout["size"][index])
        in_rate, out_rate = int(layout["sampling_rate"][previous]), int(layout["sampling_rate"][index])
        self.kernel_size = 1 if self.is_to_image or config.equivariance == "rotation" else 3
        self.conv_clamp = config.conv_clamp
        self.magnitude_ema_beta = config.magnitude_ema_beta

        self.affine = EqualizedLinear(config.w_dim, self.in_channels, bias_init=1.0)  # styles start at 1
        self.affine_gain = self.affine.weight_gain
        self.weight = nn.Parameter(
            torch.randn(self.out_channels, self.in_channels, self.kernel_size, self.kernel_size)
        )
        self.bias = nn.Parameter(torch.zeros(self.out_channels))
        self.register_buffer("magnitude_ema", torch.ones(()))

        # Resampling: up to the leaky ReLU's rate, then down to the output's; each filter's taps and design are kept
        # so that `_init_weights` can rebuild them (they are not saved: they follow from the config).
        temporary_rate = max(in_rate, out_rate) * (1 if self.is_to_image else config.lrelu_upsampling)
        self.up_factor, self.down_factor = temporary_rate // in_rate, temporary_rate // out_rate
        up_taps = config.filter_size * self.up_factor if self.up_factor > 1 and not self.is_to_image else 1
        down_taps = config.filter_size * self.down_factor if self.down_factor > 1 and not self.is_to_image else 1
        radial = config.equivariance == "rotation" and not self.is_critically_sampled
        self.filter_designs = {
            "up_filter": (up_taps, layout["cutoff"][previous], 2 * layout["half_width"][previous], temporary_rate),
            "down_filter": (
                down_taps,
                layout["cutoff"][index],
                2 * layout["half_width"][index],
                temporary_rate,
                radial,
            ),
        }
        for name, design in self.filter_designs.items():
            self.register_buffer(name, design_lowpass_filter(*design), persistent=False)

        # Padding of the upsampled signal so that the output has `out_size` pixels with its samples centred as the
        # continuous signal's (NVIDIA's "symmetric interpretation"): the output size before downsampling, minus the
        # upsampled input's, plus what the two filters take off.
        total = (self.out_size - 1) * self.down_factor + 1
        total -= (self.in_size + self.kernel_size - 1) * self.up_factor
        total += up_taps + down_taps - 2
        before = (total + self.up_factor) // 2
        self.padding = (before, total - before, before, total - before)
        self.gain = 1.0 if self.is_to_image else math.sqrt(2.0)
        self.slope = 1.0 if self.is_to_image else LEAKY_RELU_SLOPE

    def forward(self, hidden_states: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if hidden_states.shape[1:] != (self.in_channels, self.in_size, self.in_size):
            raise ValueError(
                f"the layer takes (batch, {self.in_channels}, {self.in_size}, {self.in_size}), got "
                f"{tuple(hidden_states.shape)}"
            )
        # 1. input magnitude, tracked in training (as StyleGAN's w average is)
        if self.training:
            with torch.no_grad():
                magnitude = hidden_states.detach().float().square().mean()
                self.magnitude_ema.copy_(torch.lerp(magnitude, self.magnitude_ema, self.magnitude_ema_beta))
        input_gain = self.magnitude_ema.rsqrt()
        # 2. modulated convolution ("full" padding: the filtered leaky ReLU's padding crops it), run as one ordinary
        # convolution of the style-scaled input; demodulation rescales each output channel to unit norm
        styles = self.affine(w * self.affine_gain)
        if self.is_to_image:
            styles = styles / math.sqrt(self.in_channels * self.kernel_size**2)
        output = F.conv2d(hidden_states * styles[:, :, None, None], self.weight, padding=self.kernel_size - 1)
        scale = input_gain
        if not self.is_to_image:
            norms = styles.square() @ self.weight.square().sum(dim=(2, 3)).T  # (batch, out_channels)
            scale = torch.rsqrt(norms + 1e-8)[:, :, None, None] * input_gain
        output = output * scale
        # 3. filtered leaky ReLU: bias, upsample, leaky ReLU (gain, clamp), downsample
        output = output + self.bias[None, :, None, None]
        output = upsample_filter(output, self.up_filter, self.up_factor, self.padding)
        output = F.leaky_relu(output, self.slope) * self.gain if self.slope != 1 else output * self.gain
        if self.conv_clamp is not None:
            output = output.clamp(-self.conv_clamp, self.conv_clamp)
        return downsample_filter(output, self.down_filter, self.down_factor)


def upsample_filter(
    images: torch.Tensor, taps: torch.Tensor | None, factor: int, padding: tuple[int, int, int, int]
) -> torch.Tensor:
    """`upfirdn2d(images, outer(taps, taps), up=factor, padding=padding, gain=factor**2)`, computed axis by axis as
    transposed convolutions of stride `factor`, which skip the zeros that upsampling inserts (a `factor**2`-fold
    saving per axis over filtering the zero-filled image)."""
    left, right, top, bottom = padding
    if taps is None:  # no resampling: the padding (cropping where negative) only
        return F.pad(images, [left, right, top, bottom])
    size, channels = taps.shape[0], images.shape[1]
    weight = (taps * factor).to(images.dtype)  # gain factor per axis
    # along the width: a full transposed convolution, then the window upfirdn2d's padding selects
    full = F.conv_transpose2d(
        images, weight.view(1, 1, 1, size).expand(channels, 1, 1, size), stride=(1, factor), groups=channels
    )
    width = images.shape[3] * factor + left + right - size + 1
    start = size - 1 - left
    images = F.pad(full, [-start, width - full.shape[3] + start])
    # along the height, the same
    full = F.conv_transpose2d(
        images, weight.view(1, 1, size, 1).expand(channels, 1, size, 1), stride=(factor, 1), groups=channels
    )
    height = images.shape[2] * factor + top + bottom - size + 1
    start = size - 1 - top
    return F.pad(full, [0, 0, -start, height - full.shape[2] + start])


def downsample_filter(images: torch.Tensor, kernel: torch.Tensor | None, factor: int) -> torch.Tensor:
    """`upfirdn2d(images, kernel, down=factor)` for 1-D taps (their outer product, applied axis by axis) or a 2-D
    kernel, as convolutions of stride `factor` that compute only the samples kept."""
    if kernel is None:
        return images[:, :, ::factor, ::factor]
    channels = images.shape[1]
    kernel = kernel.flip(list(range(kernel.ndim))).to(images.dtype)  # a convolution, as upfirdn2d's
    if kernel.ndim == 2:
        weight = kernel[None, None].expand(channels, 1, *kernel.shape)
        return F.conv2d(images, weight, stride=factor, groups=channels)
    size = kernel.shape[0]
    images = F.conv2d(
        images, kernel.view(1, 1, 1, size).expand(channels, 1, 1, size), stride=(1, factor), groups=channels
    )
    return F.conv2d(
        images, kernel.view(1, 1, size, 1).expand(channels, 1, size, 1), stride=(factor, 1), groups=channels
    )


class AliasFreeSynthesisNetwork(nn.Module):
    """ws `(batch, num_synthesis_layers + 2, w_dim)` to images: Fourier features (first w), the layers (one w each),
    the RGB layer (last w), times `output_scale`."""

    def __init__(self, config: StyleGANConfig):
        super().__init__()
        layout = alias_free_layout(config)
        self.layout = layout
        self.input = FourierFeatures(
            config.w_dim,
            int(layout["channels"][0]),
            int(layout["size"][0]),
            float(layout["sampling_rate"][0]),
            float(layout["cutoff"][0]),
        )
        self.layers = nn.ModuleList(
            AliasFreeLayer(config, layout, index) for index in range(config.num_synthesis_layers + 1)
        )
        self.output_scale = config.output_scale

    def noise_shapes(self, batch_size: int) -> list[tuple[int, ...]]:
        """No noise inputs: an empty list, for callers that draw per-layer noise."""
        return []

    def forward(
        self,
        ws: torch.Tensor,
        noise_mode: str = "random",
        noise: list[torch.Tensor] | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
    ) -> torch.Tensor:
        # StyleGAN 3 has no noise inputs: every noise_mode draws the same image, `generator` is not used, and noise
        # maps are refused rather than ignored.
        if noise_mode not in ("random", "const", "none"):
            raise ValueError(f"noise_mode must be 'random', 'const' or 'none', got {noise_mode!r}")
        if noise:
            raise ValueError(f"an alias-free (StyleGAN 3) generator has no noise inputs, got {len(noise)} noise maps")
        hidden = self.input(ws[:, 0])
        for index, layer in enumerate(self.layers):
            hidden = layer(hidden, ws[:, index + 1])
        return hidden * self.output_scale


def init_alias_free_module(module: nn.Module, init) -> bool:
    """Initialise `module`'s own parameters and buffers if it is an alias-free module (after its children, as
    transformers' initialisation runs); True if it was one. `init` is `transformers.initialization`, whose functions
    leave loaded tensors alone."""
    if isinstance(module, FourierFeatures):
        init.zeros_(module.affine.weight)  # the identity transform until w learns to turn and shift
        init.copy_(module.affine.bias, torch.tensor([1.0, 0.0, 0.0, 0.0]))
        init.normal_(module.weight, mean=0.0, std=1.0)
        init.copy_(module.transform, torch.eye(3))
        init.copy_(module.frequencies, random_frequencies(module.weight.shape[0], module.bandwidth))
        init.copy_(module.phases, torch.rand(module.weight.shape[0]) - 0.5)
        return True
    if isinstance(module, AliasFreeLayer):
        init.normal_(module.weight, mean=0.0, std=1.0)
        init.zeros_(module.bias)
        init.ones_(module.magnitude_ema)
        for name, design in module.filter_designs.items():
            if getattr(module, name) is not None:
                init.copy_(getattr(module, name), design_lowpass_filter(*design))
        return True
    return False


__all__ = ["AliasFreeSynthesisNetwork", "alias_free_layout", "design_lowpass_filter"]
