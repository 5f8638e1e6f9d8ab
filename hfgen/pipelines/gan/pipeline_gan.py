"""Pipeline around hfgen's GAN generators (MLP GAN, DCGAN), unconditional or class-conditional."""

from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
from diffusers.image_processor import VaeImageProcessor
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from ...models.gan.modeling_gan import GANGenerator
from ..interpolation import interpolation_path

OUTPUT_TYPES = ("pil", "np", "pt")


@dataclass
class GANPipelineOutput(BaseOutput):
    """
    Args:
        images (`list[PIL.Image.Image]`, `np.ndarray` or `torch.Tensor`):
            PIL images, a `(batch, height, width, channels)` array in [0, 1], or a `(batch, channels, height, width)`
            tensor in [0, 1], as asked by `output_type`.
        latents (`torch.Tensor` of shape `(batch, latent_dim)`):
            The z the images were generated from.
        class_labels (`torch.Tensor` of shape `(batch,)`, *optional*):
            The labels of a conditional GAN's images.
    """

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    latents: torch.Tensor
    class_labels: torch.Tensor | None = None


def check_output_type(output_type: str) -> None:
    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")


def prepare_class_labels(class_labels, batch_size: int, num_classes: int, device, generator=None) -> torch.Tensor | None:
    """`class_labels` (an int for every image, or one per image) as a tensor; None for unconditional models.

    A conditional model called without labels gets labels drawn uniformly from `generator` (its first one, for a
    list), so `pipeline(batch_size=16, generator=g)` works for every model and is reproducible.
    """
    if num_classes == 0:
        if class_labels is not None:
            raise ValueError("this model is unconditional: it takes no class_labels")
        return None
    if class_labels is None:
        label_generator = generator[0] if isinstance(generator, list) else generator
        labels_device = label_generator.device if label_generator is not None else "cpu"
        drawn = torch.randint(0, num_classes, (batch_size,), generator=label_generator, device=labels_device)
        return drawn.to(device)
    if isinstance(class_labels, int):
        class_labels = [class_labels] * batch_size
    class_labels = torch.as_tensor(class_labels, dtype=torch.long, device=device).flatten()
    if class_labels.shape[0] != batch_size:
        raise ValueError(f"got {class_labels.shape[0]} class_labels for {batch_size} images")
    if class_labels.min() < 0 or class_labels.max() >= num_classes:
        raise ValueError(f"class_labels must lie in [0, {num_classes - 1}], got {class_labels.tolist()}")
    return class_labels


def path_class_labels(class_labels, num_steps: int, num_classes: int, device) -> torch.Tensor | None:
    """Labels of an interpolation path: a conditional model needs them given (one for the whole path, or one per
    step), since random labels would make the path jump between classes."""
    if num_classes and class_labels is None:
        raise ValueError(f"this model is conditional on {num_classes} classes: pass class_labels for the path (an int "
                         "or one per step)")
    return prepare_class_labels(class_labels, num_steps, num_classes, device)


class GANPipeline(DiffusionPipeline):
    r"""
    Pipeline for a [`GANGenerator`]: one forward pass from Gaussian noise to images.

    Parameters:
        gan ([`GANGenerator`]):
            The generator. (Named `gan`, not `generator`, which is the argument that takes a `torch.Generator`.)

    Example:

    ```python
    >>> import torch, hfgen
    >>> pipe = hfgen.GANPipeline(gan=hfgen.GANGenerator(hfgen.GANConfig(num_classes=10)))
    >>> pipe(batch_size=4, class_labels=7, generator=torch.Generator().manual_seed(0)).images[0].size
    (32, 32)
    ```
    """

    model_cpu_offload_seq = "gan"

    def __init__(self, gan: GANGenerator):
        super().__init__()
        self.register_modules(gan=gan)
        self.image_processor = VaeImageProcessor(vae_scale_factor=1)

    def _generate(self, latents, class_labels, output_type: str, return_dict: bool):
        sample = self.gan(latents, labels=class_labels).sample
        images = self.image_processor.postprocess(sample, output_type=output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images, latents, class_labels)
        return GANPipelineOutput(images=images, latents=latents, class_labels=class_labels)

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 1,
        class_labels: int | list[int] | torch.Tensor | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        r"""
        Generate images.

        Args:
            batch_size (`int`, defaults to 1):
                Number of images; ignored when `latents` is given.
            class_labels (`int`, `list[int]` or `torch.Tensor`, *optional*):
                For a conditional generator: one label for all images, or one per image; drawn at random from
                `generator` when not given.
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*):
                Makes generation deterministic; a list gives one generator per image.
            latents (`torch.Tensor` of shape `(batch, latent_dim)`, *optional*):
                z to use instead of drawing it.
            output_type (`str`, defaults to `"pil"`):
                `"pil"`, `"np"` or `"pt"`.
            return_dict (`bool`, defaults to `True`):
                Return a [`GANPipelineOutput`] instead of a tuple `(images, latents, class_labels)`.
        """
        # 1. check inputs
        check_output_type(output_type)
        latent_dim = self.gan.config.latent_dim
        if latents is not None:
            if latents.ndim != 2 or latents.shape[1] != latent_dim:
                raise ValueError(f"latents must have shape (batch, {latent_dim}), got {tuple(latents.shape)}")
            batch_size = latents.shape[0]
        if isinstance(generator, list) and len(generator) != batch_size and latents is None:
            raise ValueError(f"got {len(generator)} generators for batch_size={batch_size}: give one per image")
        # 2. prepare latents (and labels)
        if latents is None:
            latents = randn_tensor((batch_size, latent_dim), generator=generator, device=self._execution_device,
                                   dtype=self.gan.dtype)
        else:
            latents = latents.to(device=self._execution_device, dtype=self.gan.dtype)
        labels = prepare_class_labels(class_labels, batch_size, self.gan.config.num_classes, self._execution_device,
                                      generator)
        # 3. generate
        return self._generate(latents, labels, output_type, return_dict)

    @torch.no_grad()
    def interpolate(
        self,
        latents_start: torch.Tensor,
        latents_end: torch.Tensor,
        num_steps: int = 8,
        method: str = "spherical",
        class_labels: int | list[int] | torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        r"""
        Images along a path in Z between two latents `(latent_dim,)`, both ends included. `"spherical"` (default)
        keeps the path where the Gaussian prior has its mass; `"linear"` is the straight line.
        """
        # 1. check inputs
        check_output_type(output_type)
        latent_dim = self.gan.config.latent_dim
        for name, value in (("latents_start", latents_start), ("latents_end", latents_end)):
            if value.shape != (latent_dim,):
                raise ValueError(f"{name} must have shape ({latent_dim},), got {tuple(value.shape)}")
        labels = path_class_labels(class_labels, num_steps, self.gan.config.num_classes, self._execution_device)
        # 2. walk between the ends
        latents = interpolation_path(latents_start, latents_end, num_steps, method)
        latents = latents.to(device=self._execution_device, dtype=self.gan.dtype)
        # 3. generate
        return self._generate(latents, labels, output_type, return_dict)


__all__ = ["GANPipeline", "GANPipelineOutput"]
