"""Pixel-space diffusion sampling with any diffusers scheduler: DDPM (Ho et al. 2020), DDIM (Song et al. 2020) and
the rest.

diffusers' own `DDPMPipeline` and `DDIMPipeline` load the folders `train_ddpm.py` writes; this pipeline loads them
too, and adds what hfgen's pipelines share: one-line checks of every argument, `latents` to start from, one generator
per image, greyscale PIL images for one-channel models, `"pt"` output, any scheduler swapped in with `from_config`
(with `eta` for DDIM), and the starting noise returned beside the images.
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

from ..denoising import check_sampling_arguments, scheduler_step_kwargs, unet_sample_shape
from ..pipeline_checks import check_generator, check_latents, check_output_type, resolve_batch_size
from ..pipeline_folder import PipelineFolderMixin


@dataclass
class DDPMPipelineOutput(BaseOutput):
    """
    Args:
        images (`list[PIL.Image.Image]`, `np.ndarray` or `torch.Tensor`):
            The samples as asked by `output_type`: PIL images, a `(batch, height, width, channels)` array in [0, 1] or
            a `(batch, channels, height, width)` tensor in [0, 1].
        latents (`torch.Tensor` of shape `(batch, channels, height, width)`):
            The noise the sampling started from (before the scheduler's `init_noise_sigma`), to redo or vary a sample.
    """

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    latents: torch.Tensor


def unconditional_unet_problem(config) -> str | None:
    """What keeps a `UNet2DModel` config from being an unconditional denoiser's (the noisy image in, as many channels
    out, nothing but the timestep embedded), in words that follow "its unet"; None when it is one. A super-resolution
    UNet, for one, takes the upsampled image as extra input channels and its noise level as a class embedding."""
    in_channels, out_channels = config.get("in_channels"), config.get("out_channels")
    conditioning = config.get("class_embed_type") or config.get("num_class_embeds")
    if in_channels == out_channels and conditioning is None:
        return None
    embedding = f" and a {conditioning!r} class embedding" if conditioning is not None else ""
    return (
        f"takes {in_channels} input channels for {out_channels} output ones{embedding}, where an unconditional "
        "denoiser takes as many as it makes and no class embedding"
    )


class DDPMPipeline(PipelineFolderMixin, DiffusionPipeline):
    r"""
    Unconditional image generation with a [`~diffusers.UNet2DModel`] trained as a denoising diffusion model.

    Parameters:
        unet ([`~diffusers.UNet2DModel`]):
            The denoiser of images in [-1, 1], predicting what its scheduler's `prediction_type` says.
        scheduler ([`~diffusers.SchedulerMixin`]):
            Any of diffusers' discrete-time schedulers (those with `step`): `DDPMScheduler` (that of the training
            folders), or e.g.
            `DDIMScheduler.from_config(pipeline.scheduler.config)` for sampling in 25-50 steps.
    """

    model_cpu_offload_seq = "unet"
    # Its folders are diffusers' DDPMPipeline folders: DDPMPipeline, DDIMPipeline and DiffusionPipeline load them.
    diffusers_class_name = "DDPMPipeline"

    def __init__(self, unet: UNet2DModel, scheduler: SchedulerMixin):
        super().__init__()
        problem = unconditional_unet_problem(unet.config)
        if problem is not None:
            raise ValueError(f"the unet {problem}: DDPMPipeline samples unconditional UNets such as train_ddpm.py's")
        self.register_modules(unet=unet, scheduler=scheduler)
        self.image_processor = VaeImageProcessor(vae_scale_factor=1, do_convert_grayscale=unet.config.in_channels == 1)

    @classmethod
    def component_config_problem(cls, component: str, config: dict) -> str | None:
        return unconditional_unet_problem(config) if component == "unet" else None

    @property
    def _sample_shape(self) -> tuple[int, int, int]:
        return unet_sample_shape(self.unet)

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        num_inference_steps: int = 50,
        eta: float = 0.0,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        r"""
        Sample images.

        Args:
            batch_size (`int`, *optional*):
                Number of images: that of `latents` when they are given, else 1.
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*):
                Makes sampling deterministic; a list gives one generator per image (the starting noise and every
                noise the scheduler adds for image `i` come from `generator[i]`).
            num_inference_steps (`int`, defaults to 50):
                Denoising steps. DDPM's ancestral sampler is at its best with the full chain (the scheduler's
                `num_train_timesteps`, typically 1000); DDIM gets close in 25-50.
            eta (`float`, defaults to 0.0):
                DDIM's noise level (0: deterministic); only for schedulers whose `step` takes it.
            latents (`torch.Tensor` of shape `(batch, channels, height, width)`, *optional*):
                Standard normal noise to start from instead of drawing it.
            output_type (`str`, defaults to `"pil"`):
                `"pil"`, `"np"` or `"pt"`.
            return_dict (`bool`, defaults to `True`):
                Return a [`DDPMPipelineOutput`] instead of a tuple `(images, latents)`.
        """
        # 1. check inputs
        check_output_type(output_type)
        check_sampling_arguments(num_inference_steps, eta)
        if latents is not None:
            check_latents(latents, self._sample_shape)
        batch_size = resolve_batch_size(batch_size, latents=latents)
        check_generator(generator, batch_size)
        step_kwargs = scheduler_step_kwargs(self.scheduler, generator, eta)

        # 2. prepare the starting noise
        device, dtype = self._execution_device, self.unet.dtype
        if latents is None:
            latents = randn_tensor((batch_size, *self._sample_shape), generator=generator, device=device, dtype=dtype)
        else:
            latents = latents.to(device=device, dtype=dtype)
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        sample = latents * self.scheduler.init_noise_sigma

        # 3. denoise
        for timestep in self.progress_bar(self.scheduler.timesteps):
            model_input = self.scheduler.scale_model_input(sample, timestep)
            model_output = self.unet(model_input, timestep).sample
            sample = self.scheduler.step(model_output, timestep, sample, **step_kwargs).prev_sample

        # 4. to images
        images = self.image_processor.postprocess(sample, output_type=output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images, latents)
        return DDPMPipelineOutput(images=images, latents=latents)
