"""Pipeline around hfgen's VAE: sample from the prior, reconstruct, interpolate, and edit with attribute vectors."""

from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
from diffusers.image_processor import VaeImageProcessor
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from ...models.vae.modeling_vae import VAEModel
from ..interpolation import check_path_arguments, interpolation_path
from ..pipeline_checks import IMAGE_OUTPUT_TYPES, check_generator, check_latents, check_output_type, resolve_batch_size
from ..pipeline_folder import PipelineFolderMixin

# "latent" returns the latents undecoded, e.g. to edit them before `pipeline(latents=...)`.
OUTPUT_TYPES = (*IMAGE_OUTPUT_TYPES, "latent")


@dataclass
class VAEPipelineOutput(BaseOutput):
    """
    Args:
        images (`list[PIL.Image.Image]`, `np.ndarray` or `torch.Tensor`):
            The images, as asked by `output_type`: PIL images, a `(batch, height, width, channels)` array in [0, 1], a
            `(batch, channels, height, width)` tensor in [0, 1], or the latents themselves for `"latent"`.
        latents (`torch.Tensor` of shape `(batch, latent_channels, latent_size, latent_size)`):
            The latents the images were decoded from.
    """

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    latents: torch.Tensor


class VAEPipeline(PipelineFolderMixin, DiffusionPipeline):
    r"""
    Pipeline for a [`VAEModel`]: `__call__` samples from the prior N(0, I) and decodes; `reconstruct`, `interpolate`,
    `attribute_vector` and `apply_attribute` work on given images.

    Images may be given as PIL images, or NumPy arrays and tensors in [0, 1], as in diffusers pipelines; they are
    resized to `vae.config.sample_size`.

    Parameters:
        vae ([`VAEModel`]):
            The variational autoencoder.
    """

    model_cpu_offload_seq = "vae"

    def __init__(self, vae: VAEModel):
        super().__init__()
        self.register_modules(vae=vae)
        self.image_processor = VaeImageProcessor(
            vae_scale_factor=1, do_convert_grayscale=vae.config.in_channels == 1, resample="bicubic"
        )

    # --- helpers shared by the modes ---

    def _check_output_type(self, output_type: str) -> None:
        check_output_type(output_type, OUTPUT_TYPES)

    @property
    def _latent_shape(self) -> tuple[int, int, int]:
        config = self.vae.config
        return (config.latent_channels, config.latent_size, config.latent_size)

    def _preprocess(self, images, name: str = "images") -> torch.Tensor:
        if isinstance(images, (PIL.Image.Image, np.ndarray, torch.Tensor)) and not (
            isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4
        ):
            images = [images]
        if len(images) == 0:
            raise ValueError(f"{name} is empty: give at least one image")
        size = self.vae.config.sample_size
        pixel_values = self.image_processor.preprocess(images, height=size, width=size)
        if pixel_values.shape[1] != self.vae.config.in_channels:
            raise ValueError(
                f"{name} have {pixel_values.shape[1]} channels but the VAE expects {self.vae.config.in_channels}"
            )
        return pixel_values.to(device=self._execution_device, dtype=self.vae.dtype)

    def _posterior_latents(self, pixel_values: torch.Tensor, generator, sample_posterior: bool) -> torch.Tensor:
        latent_dist = self.vae.encode(pixel_values, return_dict=True).latent_dist
        return latent_dist.sample(generator=generator) if sample_posterior else latent_dist.mode()

    def _decode_output(self, latents: torch.Tensor, output_type: str, return_dict: bool):
        if output_type == "latent":
            images = latents
        else:
            decoded = self.vae.decode(latents, return_dict=True).sample
            images = self.image_processor.postprocess(decoded, output_type=output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images, latents)
        return VAEPipelineOutput(images=images, latents=latents)

    # --- modes ---

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        r"""
        Sample images from the prior.

        Args:
            batch_size (`int`, *optional*):
                Number of images: the number of `latents` when they are given (and it must agree with them), else 1.
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*):
                Makes sampling deterministic; a list gives one generator per image, image `i` drawing its latent
                from `generator[i]`.
            latents (`torch.Tensor` of shape `(batch, latent_channels, latent_size, latent_size)`, *optional*):
                Prior samples to decode instead of drawing new ones.
            output_type (`str`, defaults to `"pil"`):
                `"pil"`, `"np"`, `"pt"` or `"latent"`.
            return_dict (`bool`, defaults to `True`):
                Return a [`VAEPipelineOutput`] instead of a tuple `(images, latents)`.
        """
        # 1. check inputs
        self._check_output_type(output_type)
        if latents is not None:
            check_latents(latents, self._latent_shape)
        batch_size = resolve_batch_size(batch_size, latents=latents)
        check_generator(generator, batch_size)
        # 2. prepare latents from the prior N(0, I)
        if latents is None:
            latents = randn_tensor(
                (batch_size, *self._latent_shape),
                generator=generator,
                device=self._execution_device,
                dtype=self.vae.dtype,
            )
        else:
            latents = latents.to(device=self._execution_device, dtype=self.vae.dtype)
        # 3. decode
        return self._decode_output(latents, output_type, return_dict)

    @torch.no_grad()
    def reconstruct(
        self,
        images,
        sample_posterior: bool = False,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        r"""
        Encode then decode `images`. With `sample_posterior=False` (default) the posterior mean is decoded, which is
        deterministic; with `True` a sample of q(z|x) drawn from `generator` (one, or one per image).
        """
        # 1. check inputs
        self._check_output_type(output_type)
        pixel_values = self._preprocess(images)
        check_generator(generator, pixel_values.shape[0])
        # 2. encode
        latents = self._posterior_latents(pixel_values, generator, sample_posterior)
        # 3. decode
        return self._decode_output(latents, output_type, return_dict)

    @torch.no_grad()
    def interpolate(
        self,
        image_start,
        image_end,
        num_steps: int = 8,
        method: str = "linear",
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        r"""
        Decode `num_steps` latents evenly spaced between the posterior means of two images, both ends included.

        Args:
            method (`str`, defaults to `"linear"`):
                `"linear"` (straight line in latent space) or `"spherical"` (slerp, which keeps the norm of
                prior-like latents, so intermediate points stay where the prior puts its mass).
        """
        # 1. check inputs
        self._check_output_type(output_type)
        check_path_arguments(num_steps, method)
        # 2. encode both ends to their posterior means
        start = self._posterior_latents(self._preprocess(image_start, "image_start"), None, False)[0]
        end = self._posterior_latents(self._preprocess(image_end, "image_end"), None, False)[0]
        # 3. walk between them
        latents = interpolation_path(start, end, num_steps, method)
        # 4. decode
        return self._decode_output(latents, output_type, return_dict)

    @torch.no_grad()
    def attribute_vector(self, images_with, images_without) -> torch.Tensor:
        r"""
        The mean latent difference between images that show an attribute and images that do not (or images of two
        labels): mean of the posterior means of `images_with` minus that of `images_without`. Returns a tensor of
        shape `(latent_channels, latent_size, latent_size)` for [`~VAEPipeline.apply_attribute`].
        """
        with_latents = self._posterior_latents(self._preprocess(images_with, "images_with"), None, False)
        without_latents = self._posterior_latents(self._preprocess(images_without, "images_without"), None, False)
        return with_latents.mean(dim=0) - without_latents.mean(dim=0)

    @torch.no_grad()
    def apply_attribute(
        self,
        images,
        attribute_vector: torch.Tensor,
        strength: float = 1.0,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        r"""
        Add `strength` times `attribute_vector` to the posterior means of `images` and decode. A strength of 0 gives
        the plain reconstruction; negative strengths remove the attribute.
        """
        # 1. check inputs
        self._check_output_type(output_type)
        pixel_values = self._preprocess(images)
        expected = self._latent_shape
        if not isinstance(attribute_vector, torch.Tensor) or tuple(attribute_vector.shape) != expected:
            got = (
                tuple(attribute_vector.shape)
                if isinstance(attribute_vector, torch.Tensor)
                else type(attribute_vector).__name__
            )
            raise ValueError(f"attribute_vector must have shape {expected}, got {got}")
        # 2. encode and move along the attribute direction
        latents = self._posterior_latents(pixel_values, None, False)
        latents = latents + strength * attribute_vector.to(device=latents.device, dtype=latents.dtype)
        # 3. decode
        return self._decode_output(latents, output_type, return_dict)
