"""Pipeline around hfgen's StyleGAN generator: truncation, style mixing, interpolation in Z and W, inversion of real
images and edits along latent directions (`editing.py`)."""

from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
from diffusers.image_processor import VaeImageProcessor
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from ...models.stylegan.modeling_stylegan import StyleGANGenerator, mix_styles
from ..interpolation import check_path_arguments, interpolation_path
from ..pipeline_checks import (
    check_conditioning,
    check_generator,
    check_latents,
    check_output_type,
    check_path_end,
    path_class_labels,
    prepare_class_labels,
    resolve_batch_size,
)
from ..pipeline_folder import PipelineFolderMixin
from .editing import invert_images

NOISE_MODES = ("random", "const", "none")


@dataclass
class StyleGANInversionOutput(BaseOutput):
    """
    Args:
        images (`list[PIL.Image.Image]`, `np.ndarray` or `torch.Tensor`):
            The reconstructions of the inverted images, as asked by `output_type`.
        ws (`torch.Tensor` of shape `(batch, num_ws, w_dim)`):
            The ws found: pass them to `synthesize` or `edit`.
        distances (`torch.Tensor` of shape `(batch,)`):
            Each image's final distance to its reconstruction (the multi-scale pixel error, plus the features'
            cosine distance when a feature model was given).
    """

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    ws: torch.Tensor
    distances: torch.Tensor


@dataclass
class StyleGANPipelineOutput(BaseOutput):
    """
    Args:
        images (`list[PIL.Image.Image]`, `np.ndarray` or `torch.Tensor`):
            PIL images, a `(batch, height, width, channels)` array in [0, 1], or a `(batch, channels, height, width)`
            tensor in [0, 1], as asked by `output_type`.
        latents (`torch.Tensor` of shape `(batch, latent_dim)`, *optional*):
            The z the images came from (None when they were made from given `ws`).
        ws (`torch.Tensor` of shape `(batch, num_ws, w_dim)`):
            The w each synthesis layer received, after truncation and mixing.
        class_labels (`torch.Tensor` of shape `(batch,)`, *optional*):
            The labels of a conditional generator's images.
    """

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    latents: torch.Tensor | None
    ws: torch.Tensor
    class_labels: torch.Tensor | None = None


class StyleGANPipeline(PipelineFolderMixin, DiffusionPipeline):
    r"""
    Pipeline for a [`StyleGANGenerator`].

    `__call__` samples with the truncation trick; `style_mixing` combines the coarse layers of one set of latents with
    the fine layers of another; `interpolate` walks in Z (spherical) or W (linear); `synthesize` draws given ws;
    `invert` finds the ws of real images, and `edit` moves ws along a direction (`editing.principal_directions`,
    `editing.classifier_direction`).

    Noise inputs: `noise_mode="random"` draws them from `generator`, so a seeded generator fixes the whole image;
    `"const"` uses the noise maps stored in the model; `"none"` leaves them out.

    Parameters:
        stylegan ([`StyleGANGenerator`]):
            The generator (mapping and synthesis networks).
    """

    model_cpu_offload_seq = "stylegan"

    def __init__(self, stylegan: StyleGANGenerator):
        super().__init__()
        self.register_modules(stylegan=stylegan)
        self.image_processor = VaeImageProcessor(vae_scale_factor=1)

    def _prepare_latents(self, batch_size: int, generator, latents) -> torch.Tensor:
        """z `(batch_size, latent_dim)`: `latents` (checked by the caller) or drawn from `generator`."""
        if latents is None:
            return randn_tensor(
                (batch_size, self.stylegan.config.latent_dim),
                generator=generator,
                device=self._execution_device,
                dtype=self.stylegan.dtype,
            )
        return latents.to(device=self._execution_device, dtype=self.stylegan.dtype)

    def _noise(self, batch_size: int, noise_mode: str, generator) -> list[torch.Tensor] | None:
        """The per-layer noise maps for `noise_mode="random"`, drawn from `generator`; None otherwise.

        They are drawn here, not inside the model, so that a list of generators gives image `i` the noise of
        `generator[i]` (as a single-image call would draw it) and a seeded call never touches the global RNG.
        Without a generator the model draws its own noise.
        """
        if noise_mode != "random" or not self.stylegan.config.use_noise or generator is None:
            return None
        return [
            randn_tensor(shape, generator=generator, device=self._execution_device, dtype=self.stylegan.dtype)
            for shape in self.stylegan.synthesis.noise_shapes(batch_size)
        ]

    def _check_truncation(self, truncation_psi: float, truncation_cutoff: int | None) -> None:
        if not 0 <= truncation_psi <= 1:
            raise ValueError(f"truncation_psi must lie in [0, 1], got {truncation_psi}")
        if truncation_cutoff is not None and not 0 <= truncation_cutoff <= self.stylegan.num_ws:
            raise ValueError(f"truncation_cutoff must lie in [0, {self.stylegan.num_ws}], got {truncation_cutoff}")

    def _check_inputs(self, output_type, noise_mode, truncation_psi, truncation_cutoff) -> None:
        check_output_type(output_type)
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        self._check_truncation(truncation_psi, truncation_cutoff)

    def _synthesize_output(self, ws, latents, noise_mode, generator, output_type, return_dict, class_labels=None):
        noise = self._noise(ws.shape[0], noise_mode, generator)
        sample = self.stylegan.synthesize(ws, noise_mode=noise_mode, noise=noise)
        images = self.image_processor.postprocess(sample, output_type=output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images, latents, ws)
        return StyleGANPipelineOutput(images=images, latents=latents, ws=ws, class_labels=class_labels)

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int | None = None,
        class_labels: int | list[int] | torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "random",
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        r"""
        Generate images.

        Args:
            batch_size (`int`, *optional*):
                Number of images. When not given: one per label of `class_labels` or per row of `latents`, else 1;
                when given, it must agree with them.
            class_labels (`int`, `list[int]` or `torch.Tensor`, *optional*):
                For a conditional generator: one label in `[0, num_classes)` for all images, or one per image;
                drawn at random from `generator` when not given. An unconditional generator takes none.
            truncation_psi (`float`, defaults to 1.0):
                Truncation trick: each w moves to w_avg + psi * (w - w_avg). Lower values trade variety for
                fidelity; 0 gives the average image.
            truncation_cutoff (`int`, *optional*):
                Truncate only the first `truncation_cutoff` layers (the coarse ones); all layers if None.
            noise_mode (`str`, defaults to `"random"`):
                `"random"`, `"const"` or `"none"` (see the class docstring).
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*):
                Makes generation deterministic (z, drawn labels and random noise); a list gives one generator per
                image, image `i` drawing all of its own from `generator[i]`.
            latents (`torch.Tensor` of shape `(batch, latent_dim)`, *optional*):
                z to use instead of drawing it.
            output_type (`str`, defaults to `"pil"`):
                `"pil"`, `"np"` or `"pt"`.
            return_dict (`bool`, defaults to `True`):
                Return a [`StyleGANPipelineOutput`] instead of a tuple `(images, latents, ws)`.
        """
        # 1. check inputs
        self._check_inputs(output_type, noise_mode, truncation_psi, truncation_cutoff)
        config = self.stylegan.config
        check_conditioning(class_labels, config.num_classes)
        if latents is not None:
            check_latents(latents, (config.latent_dim,))
        batch_size = resolve_batch_size(batch_size, class_labels, latents)
        check_generator(generator, batch_size)
        # 2. prepare z (and labels), then map them to ws
        latents = self._prepare_latents(batch_size, generator, latents)
        labels = prepare_class_labels(class_labels, batch_size, config.num_classes, self._execution_device, generator)
        ws = self.stylegan.map(latents, labels, truncation_psi, truncation_cutoff)
        # 3. synthesize
        return self._synthesize_output(ws, latents, noise_mode, generator, output_type, return_dict, labels)

    @torch.no_grad()
    def style_mixing(
        self,
        crossover_layer: int,
        batch_size: int | None = None,
        class_labels: int | list[int] | torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "const",
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        mixing_latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        r"""
        Style mixing: the synthesis layers before `crossover_layer` get the ws of `latents` (coarse structure: pose,
        shape), the layers from it on get those of `mixing_latents` (finer features: stroke, texture).

        `latents` and `mixing_latents` are drawn from `generator` (in that order) when not given. Noise defaults to
        `"const"` so the images differ only through their styles. `batch_size`, `class_labels` and `generator` work
        as in `__call__`.
        """
        # 1. check inputs
        self._check_inputs(output_type, noise_mode, truncation_psi, truncation_cutoff)
        config = self.stylegan.config
        if not isinstance(crossover_layer, int) or not 0 <= crossover_layer <= self.stylegan.num_ws:
            raise ValueError(f"crossover_layer must be an int in [0, {self.stylegan.num_ws}], got {crossover_layer!r}")
        check_conditioning(class_labels, config.num_classes)
        for name, given in (("latents", latents), ("mixing_latents", mixing_latents)):
            if given is not None:
                check_latents(given, (config.latent_dim,), name)
        if latents is not None and mixing_latents is not None and latents.shape != mixing_latents.shape:
            raise ValueError(
                f"latents and mixing_latents must have the same shape, got {tuple(latents.shape)} and "
                f"{tuple(mixing_latents.shape)}"
            )
        given = latents if latents is not None else mixing_latents
        batch_size = resolve_batch_size(
            batch_size, class_labels, given, "latents" if latents is not None else "mixing_latents"
        )
        check_generator(generator, batch_size)
        # 2. both sets of latents (and labels), mapped to ws
        latents = self._prepare_latents(batch_size, generator, latents)
        mixing_latents = self._prepare_latents(batch_size, generator, mixing_latents)
        labels = prepare_class_labels(class_labels, batch_size, config.num_classes, self._execution_device, generator)
        ws = self.stylegan.map(latents, labels, truncation_psi, truncation_cutoff)
        mixing_ws = self.stylegan.map(mixing_latents, labels, truncation_psi, truncation_cutoff)
        # 3. mix, then synthesize
        return self._synthesize_output(
            mix_styles(ws, mixing_ws, crossover_layer),
            latents,
            noise_mode,
            generator,
            output_type,
            return_dict,
            labels,
        )

    @torch.no_grad()
    def interpolate(
        self,
        latents_start: torch.Tensor,
        latents_end: torch.Tensor,
        num_steps: int = 8,
        space: str = "w",
        class_labels: int | list[int] | torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        noise_mode: str = "const",
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        r"""
        Images along a path between two z `(latent_dim,)`, both ends included.

        Args:
            space (`str`, defaults to `"w"`):
                `"w"`: both ends are mapped to W and joined by a straight line there (W is what the paper found
                disentangled). `"z"`: a spherical path in Z, each point then mapped.
        """
        # 1. check inputs
        self._check_inputs(output_type, noise_mode, truncation_psi, None)
        if space not in ("w", "z"):
            raise ValueError(f"space must be 'w' or 'z', got {space!r}")
        check_path_arguments(num_steps, "linear")
        for name, value in (("latents_start", latents_start), ("latents_end", latents_end)):
            check_path_end(value, (self.stylegan.config.latent_dim,), name)
        labels = path_class_labels(class_labels, num_steps, self.stylegan.config.num_classes, self._execution_device)
        ends = torch.stack([latents_start, latents_end]).to(device=self._execution_device, dtype=self.stylegan.dtype)
        # 2. the path, in the chosen space
        if space == "z":
            latents = interpolation_path(ends[0], ends[1], num_steps, "spherical")
            ws = self.stylegan.map(latents, labels, truncation_psi)
        else:
            end_labels = None if labels is None else labels[[0, -1]]
            end_ws = self.stylegan.map(ends, end_labels, truncation_psi)
            ws = interpolation_path(end_ws[0], end_ws[1], num_steps, "linear")
            latents = None
        # 3. synthesize
        return self._synthesize_output(ws, latents, noise_mode, None, output_type, return_dict, labels)

    @torch.no_grad()
    def synthesize(
        self,
        ws: torch.Tensor,
        noise_mode: str = "const",
        generator=None,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        r"""Images from given ws `(batch, num_ws, w_dim)`, e.g. the `ws` of an earlier output, edited.

        `generator` (one, or one per image) draws the noise of `noise_mode="random"`.
        """
        self._check_inputs(output_type, noise_mode, 1.0, None)
        check_latents(ws, (self.stylegan.num_ws, self.stylegan.config.w_dim), "ws")
        check_generator(generator, ws.shape[0])
        ws = ws.to(device=self._execution_device, dtype=self.stylegan.dtype)
        return self._synthesize_output(ws, None, noise_mode, generator, output_type, return_dict)

    def invert(
        self,
        images,
        num_steps: int = 300,
        space: str = "w+",
        learning_rate: float = 0.05,
        class_labels: int | list[int] | torch.Tensor | None = None,
        feature_model: str | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        r"""
        Project real images into the generator's latent space (see `editing.invert_images`).

        Args:
            images (PIL image, list of them, or `torch.Tensor` `(batch, channels, height, width)` in [0, 1]):
                The images, resized to the generator's resolution and converted to its colour mode.
            num_steps (`int`, defaults to 300): Adam steps.
            space (`str`, defaults to `"w+"`): `"w"` (one w for every layer) or `"w+"` (one per layer: closer
                reconstructions, less regular edits).
            learning_rate (`float`, defaults to 0.05): the first step's, ramped down with a cosine.
            class_labels: the images' classes, for a conditional generator.
            feature_model (`str`, *optional*): a transformers vision backbone (folder or Hub id) whose features'
                cosine distance joins the pixel distance (DINOv2 is a good choice); without it, pixels only.
            output_type (`str`, defaults to `"pil"`): of the reconstructions.
        """
        check_output_type(output_type)
        extractor = None
        if feature_model is not None:
            from ...metrics import load_backbone_feature_extractor

            extractor = load_backbone_feature_extractor(feature_model, device=self._execution_device)
        ws, reconstructions, distances = invert_images(
            self.stylegan, images, num_steps, space, learning_rate, class_labels, extractor
        )
        images = self.image_processor.postprocess(reconstructions.detach(), output_type=output_type)
        if not return_dict:
            return (images, ws, distances)
        return StyleGANInversionOutput(images=images, ws=ws, distances=distances)

    @torch.no_grad()
    def edit(
        self,
        ws: torch.Tensor,
        direction: torch.Tensor,
        strength: float | list[float] = 1.0,
        layers: tuple[int, int] | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        r"""
        Images of `ws` `(batch, num_ws, w_dim)` moved by `strength` times `direction` (`(w_dim,)`, e.g. from
        `editing.principal_directions` or `editing.classifier_direction`), on the layers `layers` = (first, last
        exclusive) only when given (coarse layers change pose and shape, fine ones colour and texture). Constant noise,
        so that only the edit changes the image. A list of strengths edits each image by its own.
        """
        check_latents(ws, (self.stylegan.num_ws, self.stylegan.config.w_dim), "ws")
        direction = torch.as_tensor(direction, dtype=ws.dtype, device=ws.device)
        if direction.shape != (self.stylegan.config.w_dim,):
            raise ValueError(
                f"direction must have shape ({self.stylegan.config.w_dim},), got {tuple(direction.shape)}"
            )
        strengths = torch.as_tensor(strength, dtype=ws.dtype, device=ws.device).reshape(-1, 1, 1)
        if strengths.shape[0] not in (1, ws.shape[0]):
            raise ValueError(f"give one strength, or one per image ({ws.shape[0]}), got {strengths.shape[0]}")
        mask = torch.zeros(self.stylegan.num_ws, 1, dtype=ws.dtype, device=ws.device)
        first, last = layers if layers is not None else (0, self.stylegan.num_ws)
        if not 0 <= first < last <= self.stylegan.num_ws:
            raise ValueError(f"layers must be (first, last) with 0 <= first < last <= {self.stylegan.num_ws}")
        mask[first:last] = 1
        edited = ws + strengths * mask * direction
        return self.synthesize(edited, noise_mode="const", output_type=output_type, return_dict=return_dict)


__all__ = ["StyleGANInversionOutput", "StyleGANPipeline", "StyleGANPipelineOutput"]
