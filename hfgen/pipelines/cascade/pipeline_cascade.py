"""Cascaded diffusion (Ho et al. 2021; Saharia et al. 2022, Imagen): a base diffusion model draws low-resolution
images from noise, and a super-resolution diffusion model, conditioned on them (noise-augmented), draws the
high-resolution images.

The pipeline combines two stages that exist on their own, as diffusers' combined pipelines do (Kandinsky's
`KandinskyCombinedPipeline` holds `prior_*` components beside the decoder's): the base stage's components carry a
`base_` prefix (`base_unet`, `base_scheduler`: a `DDPMPipeline` folder's `unet` and `scheduler`), the super-resolution
stage's keep their plain names (`unet`, `scheduler`), so `SuperResolutionPipeline.from_pretrained(cascade_folder)`
loads its super-resolution stage. Each call runs the two stages' own pipelines on the current components, so a
scheduler swapped in (`pipeline.base_scheduler = ...`) is used.
"""

from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
from diffusers import UNet2DModel
from diffusers.image_processor import VaeImageProcessor
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from ..ddpm.pipeline_ddpm import DDPMPipeline
from ..denoising import check_sampling_arguments, unet_sample_shape
from ..pipeline_checks import check_generator, check_latents, check_output_type, resolve_batch_size
from ..pipeline_folder import PipelineFolderMixin
from .pipeline_super_resolution import SuperResolutionPipeline, check_prediction_target

# The noise conditioning augmentation of the base's samples, a timestep of the super-resolution model's schedule: the
# samples of a base model are not downsampled real images, and a little noise hides the difference: on the built-in
# digits the cascade of a 16 px DDPM and the default 16 -> 32 px residual model reads FID 34.55 at level 0 (worse than
# the base upsampled, 33.90), 30.23 at 25 and 30.24 at 50 (benchmarks/bench_cascade.py).
CASCADE_NOISE_LEVEL = 50


@dataclass
class CascadedDiffusionPipelineOutput(BaseOutput):
    """
    Args:
        images (`list[PIL.Image.Image]`, `np.ndarray` or `torch.Tensor`):
            The high-resolution samples as asked by `output_type` (PIL, or arrays / tensors in [0, 1]).
        latents (`torch.Tensor` of shape `(batch, channels, low_height, low_width)`):
            The noise the base stage started from.
        low_res_images (`list[PIL.Image.Image]`, `np.ndarray` or `torch.Tensor`):
            The base stage's samples they were drawn under, in the same `output_type`.
        super_resolution_latents (`torch.Tensor` of shape `(batch, channels, height, width)`):
            The noise the super-resolution stage started from.
    """

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    latents: torch.Tensor
    low_res_images: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    super_resolution_latents: torch.Tensor


class CascadedDiffusionPipeline(PipelineFolderMixin, DiffusionPipeline):
    r"""
    Unconditional image generation in two diffusion stages: a base model at low resolution, then super-resolution.

    Parameters:
        base_unet ([`~diffusers.UNet2DModel`]):
            The base denoiser of low-resolution images (that of a `train_ddpm.py` folder).
        base_scheduler ([`~diffusers.SchedulerMixin`]):
            Its discrete-time scheduler (DDIM in the folders `train_super_resolution.py` writes).
        unet ([`~diffusers.UNet2DModel`]):
            The super-resolution denoiser (see [`SuperResolutionPipeline`]).
        scheduler ([`~diffusers.SchedulerMixin`]):
            Its scheduler, on its training schedule.
        low_resolution (`int`, *optional*):
            The low resolution the super-resolution stage was trained on, recorded for its tools.
        prediction_target (`str`, *optional*, defaults to `"image"`):
            What the super-resolution UNet denoises, the image or its residual over the upsampled base image (see
            [`SuperResolutionPipeline`]).
        residual_scale (`float`, *optional*, defaults to 1.0):
            The scale of a residual model's residuals.
    """

    model_cpu_offload_seq = "base_unet->unet"

    def __init__(
        self,
        base_unet: UNet2DModel,
        base_scheduler: SchedulerMixin,
        unet: UNet2DModel,
        scheduler: SchedulerMixin,
        low_resolution: int | None = None,
        prediction_target: str = "image",
        residual_scale: float = 1.0,
    ):
        super().__init__()
        check_prediction_target(prediction_target, residual_scale)
        if base_unet.config.out_channels != unet.config.out_channels:
            raise ValueError(
                f"the base_unet makes {base_unet.config.out_channels}-channel images but the super-resolution unet "
                f"{unet.config.out_channels}-channel ones: train both on images of the same colours"
            )
        self.register_modules(base_unet=base_unet, base_scheduler=base_scheduler, unet=unet, scheduler=scheduler)
        self.register_to_config(
            low_resolution=low_resolution, prediction_target=prediction_target, residual_scale=residual_scale
        )
        greyscale = unet.config.out_channels == 1
        self.image_processor = VaeImageProcessor(vae_scale_factor=1, do_convert_grayscale=greyscale)

    def stages(self) -> tuple[DDPMPipeline, SuperResolutionPipeline]:
        """The base and super-resolution pipelines of the current components, with this pipeline's progress bar."""
        base = DDPMPipeline(unet=self.base_unet, scheduler=self.base_scheduler)
        super_resolution = SuperResolutionPipeline(
            unet=self.unet,
            scheduler=self.scheduler,
            low_resolution=self.config.low_resolution,
            prediction_target=self.config.prediction_target,
            residual_scale=self.config.residual_scale,
        )
        for stage in (base, super_resolution):
            stage.set_progress_bar_config(**getattr(self, "_progress_bar_config", {}))
        return base, super_resolution

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        num_inference_steps: int = 50,
        base_num_inference_steps: int = 50,
        noise_level: int = CASCADE_NOISE_LEVEL,
        eta: float = 0.0,
        latents: torch.Tensor | None = None,
        super_resolution_latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        r"""
        Sample images: the base stage from noise, then the super-resolution stage under its images.

        Args:
            batch_size (`int`, *optional*):
                Number of images: that of `latents` when they are given, else 1.
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*):
                Makes sampling deterministic; with a list, everything drawn for image `i` (both stages' starting
                noise, the augmentation noise, the samplers' noise) comes from `generator[i]`.
            num_inference_steps (`int`, defaults to 50):
                Denoising steps of the super-resolution stage.
            base_num_inference_steps (`int`, defaults to 50):
                Denoising steps of the base stage.
            noise_level (`int`, defaults to 50):
                Noise conditioning augmentation of the base's images (a timestep of the super-resolution model's
                schedule; 0: none). The default is the level measured best for the cascade on the built-in digits.
            eta (`float`, defaults to 0.0):
                DDIM's noise level in both stages (0: deterministic).
            latents (`torch.Tensor` of shape `(batch, channels, low_height, low_width)`, *optional*):
                Standard normal noise the base stage starts from.
            super_resolution_latents (`torch.Tensor` of shape `(batch, channels, height, width)`, *optional*):
                Standard normal noise the super-resolution stage starts from.
            output_type (`str`, defaults to `"pil"`):
                `"pil"`, `"np"` or `"pt"`.
            return_dict (`bool`, defaults to `True`):
                Return a [`CascadedDiffusionPipelineOutput`] instead of a tuple `(images, latents, low_res_images,
                super_resolution_latents)`.
        """
        base, super_resolution = self.stages()
        # 1. check inputs
        check_output_type(output_type)
        check_sampling_arguments(num_inference_steps, eta)
        check_sampling_arguments(base_num_inference_steps, eta)
        super_resolution.check_noise_level(noise_level)
        base_shape = unet_sample_shape(self.base_unet)
        if latents is not None:
            check_latents(latents, base_shape)
        batch_size = resolve_batch_size(batch_size, latents=latents)
        if super_resolution_latents is not None:
            check_latents(super_resolution_latents, super_resolution._sample_shape, "super_resolution_latents")
            resolve_batch_size(batch_size, latents=super_resolution_latents, latents_name="super_resolution_latents")
        check_generator(generator, batch_size)

        # 2. prepare both stages' starting noise, every image's from its own generator
        device, dtype = self._execution_device, self.unet.dtype
        if latents is None:
            latents = randn_tensor((batch_size, *base_shape), generator=generator, device=device, dtype=dtype)
        if super_resolution_latents is None:
            shape = (batch_size, *super_resolution._sample_shape)
            super_resolution_latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)

        # 3. the base stage, from its noise
        base_steps = base_num_inference_steps
        low_res = base(
            generator=generator, num_inference_steps=base_steps, eta=eta, latents=latents, output_type="pt"
        ).images
        low_res = low_res.to(device=device, dtype=dtype) * 2 - 1

        # 4. the super-resolution stage, under the base's images
        sample = super_resolution.denoise(
            low_res, noise_level, generator, num_inference_steps, eta, super_resolution_latents.to(device, dtype)
        )

        # 5. to images
        images = self.image_processor.postprocess(sample, output_type=output_type)
        low_res_images = self.image_processor.postprocess(low_res, output_type=output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images, latents, low_res_images, super_resolution_latents)
        return CascadedDiffusionPipelineOutput(
            images=images,
            latents=latents,
            low_res_images=low_res_images,
            super_resolution_latents=super_resolution_latents,
        )
