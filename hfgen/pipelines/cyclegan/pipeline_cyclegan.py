"""Pipelines around hfgen's translation generators: `CycleGANPipeline` (two generators, both directions) and
`Pix2PixPipeline` (one generator, conditioned on its input)."""

from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
from diffusers.image_processor import VaeImageProcessor
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.utils import BaseOutput

from ...models.cyclegan.modeling_cyclegan import CycleGANGenerator
from ..pipeline_checks import check_output_type
from ..pipeline_folder import PipelineFolderMixin

DIRECTIONS = ("a_to_b", "b_to_a")


@dataclass
class TranslationPipelineOutput(BaseOutput):
    """
    Args:
        images (`list[PIL.Image.Image]`, `np.ndarray` or `torch.Tensor`):
            The translated images as asked by `output_type` (PIL images, a `(batch, height, width, channels)` array
            in [0, 1], or a `(batch, channels, height, width)` tensor in [0, 1]).
    """

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor


def prepare_images(images, generator: CycleGANGenerator, device, dtype) -> torch.Tensor:
    """PIL images, arrays `(height, width[, channels])` / `(batch, height, width, channels)` or tensors `(channels,
    height, width)` / `(batch, channels, height, width)` in [0, 1], as the generator's input: `(batch, in_channels,
    height, width)` in [-1, 1], in the generator's colour mode, at their own size (checked against its stride)."""
    if isinstance(images, (PIL.Image.Image, np.ndarray, torch.Tensor)):
        images = [images] if not (isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4) else images
    if (isinstance(images, list) and not images) or not isinstance(images, (list, np.ndarray, torch.Tensor)):
        raise ValueError(
            "images must be a PIL image, a numpy array or torch tensor in [0, 1], or a non-empty list of them, got "
            f"{type(images).__name__}"
        )
    if isinstance(images, list) and isinstance(images[0], np.ndarray) and images[0].ndim == 2:
        images = [image[..., None] for image in images]
    if isinstance(images, list) and isinstance(images[0], torch.Tensor) and images[0].ndim == 2:
        images = [image[None] for image in images]
    channels = generator.config.in_channels
    processor = VaeImageProcessor(
        vae_scale_factor=1, do_convert_rgb=channels == 3, do_convert_grayscale=channels == 1, resample="bicubic"
    )
    pixel_values = processor.preprocess(images).to(device=device, dtype=dtype)
    if pixel_values.shape[1] != channels:  # tensors and arrays are not converted by the processor
        if pixel_values.shape[1] == 3 and channels == 1:
            pixel_values = (pixel_values * torch.tensor([0.299, 0.587, 0.114], device=device).view(1, 3, 1, 1)).sum(
                dim=1, keepdim=True
            )
        elif pixel_values.shape[1] == 1 and channels == 3:
            pixel_values = pixel_values.expand(-1, 3, -1, -1)
        else:
            raise ValueError(
                f"images have {pixel_values.shape[1]} channels; the generator takes {channels} (1: grey, 3: RGB)"
            )
    generator.check_size(pixel_values)
    return pixel_values


class _TranslationPipeline(PipelineFolderMixin, DiffusionPipeline):
    """What both translation pipelines share: turning inputs into the generator's batch and its output into images."""

    def _translate(self, generator: CycleGANGenerator, images, output_type: str, return_dict: bool):
        check_output_type(output_type)
        pixel_values = prepare_images(images, generator, self._execution_device, generator.dtype)
        sample = generator(pixel_values, return_dict=True).sample
        images = self.image_processor.postprocess(sample, output_type=output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images,)
        return TranslationPipelineOutput(images=images)


class CycleGANPipeline(_TranslationPipeline):
    r"""
    Translation between two image domains with a CycleGAN's two generators.

    Parameters:
        generator_ab ([`CycleGANGenerator`]): translates domain A to domain B.
        generator_ba ([`CycleGANGenerator`]): translates domain B to domain A.

    Example:

    ```py
    >>> import torch, hfgen
    >>> config = hfgen.CycleGANConfig(in_channels=1, out_channels=3, generator_channels=8, num_residual_blocks=2)
    >>> pipe = hfgen.CycleGANPipeline(hfgen.CycleGANGenerator(config), hfgen.CycleGANGenerator(config.reversed()))
    >>> pipe(torch.rand(2, 1, 32, 32), direction="a_to_b", output_type="pt").images.shape
    torch.Size([2, 3, 32, 32])
    ```
    """

    model_cpu_offload_seq = "generator_ab->generator_ba"

    def __init__(self, generator_ab: CycleGANGenerator, generator_ba: CycleGANGenerator):
        super().__init__()
        self.register_modules(generator_ab=generator_ab, generator_ba=generator_ba)
        self.image_processor = VaeImageProcessor(vae_scale_factor=1)

    @torch.no_grad()
    def __call__(self, images, direction: str = "a_to_b", output_type: str = "pil", return_dict: bool = True):
        r"""
        Translate `images` from one domain to the other.

        Args:
            images (PIL image, `np.ndarray`, `torch.Tensor` in [0, 1], or a list of them):
                Images of the source domain, of any size divisible by the generator's stride (4 for the ResNet
                generator, `2 ** unet_num_downs` for the U-Net).
            direction (`str`, defaults to `"a_to_b"`):
                `"a_to_b"` with `generator_ab`, `"b_to_a"` with `generator_ba`.
            output_type (`str`, defaults to `"pil"`):
                `"pil"`, `"np"` or `"pt"`.
            return_dict (`bool`, defaults to `True`):
                Return a [`TranslationPipelineOutput`] instead of a tuple `(images,)`.
        """
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        generator = self.generator_ab if direction == "a_to_b" else self.generator_ba
        return self._translate(generator, images, output_type, return_dict)


class Pix2PixPipeline(_TranslationPipeline):
    r"""
    Paired image-to-image translation with a pix2pix generator: condition images in, their translations out.

    Parameters:
        generator ([`CycleGANGenerator`]): the translation network (a U-Net for pix2pix).
    """

    model_cpu_offload_seq = "generator"

    def __init__(self, generator: CycleGANGenerator):
        super().__init__()
        self.register_modules(generator=generator)
        self.image_processor = VaeImageProcessor(vae_scale_factor=1)

    @torch.no_grad()
    def __call__(self, images, output_type: str = "pil", return_dict: bool = True):
        r"""
        Translate condition images.

        Args:
            images (PIL image, `np.ndarray`, `torch.Tensor` in [0, 1], or a list of them):
                The condition images, of any size divisible by the generator's stride.
            output_type (`str`, defaults to `"pil"`):
                `"pil"`, `"np"` or `"pt"`.
            return_dict (`bool`, defaults to `True`):
                Return a [`TranslationPipelineOutput`] instead of a tuple `(images,)`.
        """
        return self._translate(self.generator, images, output_type, return_dict)
