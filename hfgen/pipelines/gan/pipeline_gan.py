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


class GANPipeline(PipelineFolderMixin, DiffusionPipeline):
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

    def _generate(self, latents, class_labels, output_type: str, return_dict: bool, **generator_kwargs):
        """Images of `latents` (and labels); `generator_kwargs` go to the generator (e.g. ProGAN's growing stage)."""
        sample = self.gan(latents, labels=class_labels, return_dict=True, **generator_kwargs).sample
        images = self.image_processor.postprocess(sample, output_type=output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images, latents, class_labels)
        return GANPipelineOutput(images=images, latents=latents, class_labels=class_labels)

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int | None = None,
        class_labels: int | list[int] | torch.Tensor | None = None,
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
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*):
                Makes generation deterministic; a list gives one generator per image, image `i` drawing its z (and
                label) from `generator[i]`.
            latents (`torch.Tensor` of shape `(batch, latent_dim)`, *optional*):
                z to use instead of drawing it.
            output_type (`str`, defaults to `"pil"`):
                `"pil"`, `"np"` or `"pt"`.
            return_dict (`bool`, defaults to `True`):
                Return a [`GANPipelineOutput`] instead of a tuple `(images, latents, class_labels)`.
        """
        check_output_type(output_type)
        latents, labels = self.prepare_inputs(batch_size, class_labels, generator, latents)
        return self._generate(latents, labels, output_type, return_dict)

    def prepare_inputs(self, batch_size, class_labels, generator, latents) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The z and labels of a call (see `__call__`), checked, then drawn from `generator` where not given."""
        # 1. check inputs
        latent_dim, num_classes = self.gan.config.latent_dim, self.gan.config.num_classes
        check_conditioning(class_labels, num_classes)
        if latents is not None:
            check_latents(latents, (latent_dim,))
        batch_size = resolve_batch_size(batch_size, class_labels, latents)
        check_generator(generator, batch_size)
        # 2. prepare latents (and labels)
        if latents is None:
            latents = randn_tensor(
                (batch_size, latent_dim), generator=generator, device=self._execution_device, dtype=self.gan.dtype
            )
        else:
            latents = latents.to(device=self._execution_device, dtype=self.gan.dtype)
        labels = prepare_class_labels(class_labels, batch_size, num_classes, self._execution_device, generator)
        return latents, labels

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
        check_path_arguments(num_steps, method)
        for name, value in (("latents_start", latents_start), ("latents_end", latents_end)):
            check_path_end(value, (self.gan.config.latent_dim,), name)
        labels = path_class_labels(class_labels, num_steps, self.gan.config.num_classes, self._execution_device)
        # 2. walk between the ends
        latents = interpolation_path(latents_start, latents_end, num_steps, method)
        latents = latents.to(device=self._execution_device, dtype=self.gan.dtype)
        # 3. generate
        return self._generate(latents, labels, output_type, return_dict)


__all__ = ["GANPipeline", "GANPipelineOutput"]
