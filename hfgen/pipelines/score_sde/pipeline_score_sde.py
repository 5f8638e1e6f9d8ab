"""Score-based generation with the variance-exploding SDE (Song & Ermon 2019; Song et al. 2021): a noise-conditional
score network sampled by the predictor-corrector sampler of diffusers' `ScoreSdeVeScheduler`.

diffusers' own `ScoreSdeVePipeline` (deprecated there) fixes three channels and images in [0, 1] and has no `"pt"`
output; this one takes the network's channels, images in [-1, 1] as hfgen's scripts train them, and the arguments
and checks every hfgen pipeline has.
"""

import torch
from diffusers import ScoreSdeVeScheduler, UNet2DModel
from diffusers.image_processor import VaeImageProcessor
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.utils.torch_utils import randn_tensor

from ..ddpm.pipeline_ddpm import DDPMPipelineOutput
from ..denoising import unet_sample_shape
from ..pipeline_checks import check_generator, check_latents, check_output_type, check_positive_int, resolve_batch_size
from ..pipeline_folder import PipelineFolderMixin


class ScoreSdePipeline(PipelineFolderMixin, DiffusionPipeline):
    r"""
    Unconditional image generation from a score network trained by denoising score matching over a geometric ladder
    of noise levels (`train_ddpm.py --objective score_ve`).

    Parameters:
        unet ([`~diffusers.UNet2DModel`]):
            The score network s(x, sigma): a UNet with Fourier (log-sigma) time embedding, whose output diffusers
            divides by sigma.
        scheduler ([`~diffusers.ScoreSdeVeScheduler`]):
            The noise ladder (`sigma_min`, `sigma_max`), the corrector's signal-to-noise ratio `snr` and its number of
            Langevin steps per noise level, `correct_steps`.
    """

    model_cpu_offload_seq = "unet"

    def __init__(self, unet: UNet2DModel, scheduler: ScoreSdeVeScheduler):
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler)
        self.image_processor = VaeImageProcessor(vae_scale_factor=1, do_convert_grayscale=unet.config.in_channels == 1)

    @property
    def _sample_shape(self) -> tuple[int, int, int]:
        return unet_sample_shape(self.unet)

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        num_inference_steps: int = 500,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        r"""
        Sample images by reversing the SDE from sigma_max down to sigma_min: at each of `num_inference_steps` noise
        levels, `scheduler.config.correct_steps` Langevin corrector steps, then one reverse-diffusion predictor step.
        The corrector steps alone are Song & Ermon's annealed Langevin dynamics; the predictor adds Song et al.'s
        reverse-SDE step between noise levels.

        Args:
            batch_size (`int`, *optional*):
                Number of images: that of `latents` when they are given, else 1.
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*):
                Makes sampling deterministic; a list gives one generator per image.
            num_inference_steps (`int`, defaults to 500):
                Noise levels visited; each costs `1 + correct_steps` network evaluations.
            latents (`torch.Tensor` of shape `(batch, channels, height, width)`, *optional*):
                Standard normal noise to start from (scaled by sigma_max) instead of drawing it.
            output_type (`str`, defaults to `"pil"`):
                `"pil"`, `"np"` or `"pt"`.
            return_dict (`bool`, defaults to `True`):
                Return a [`DDPMPipelineOutput`] instead of a tuple `(images, latents)`.

        The corrector's step size is set from the batch's mean gradient norm, as in Song et al.'s code, so an image's
        result depends slightly on the others in its batch.
        """
        # 1. check inputs
        check_output_type(output_type)
        check_positive_int(num_inference_steps, "num_inference_steps")
        if latents is not None:
            check_latents(latents, self._sample_shape)
        batch_size = resolve_batch_size(batch_size, latents=latents)
        check_generator(generator, batch_size)

        # 2. prepare the starting noise, at the largest noise level
        device, dtype = self._execution_device, self.unet.dtype
        if latents is None:
            latents = randn_tensor((batch_size, *self._sample_shape), generator=generator, device=device, dtype=dtype)
        else:
            latents = latents.to(device=device, dtype=dtype)
        sample = latents * self.scheduler.init_noise_sigma
        self.scheduler.set_timesteps(num_inference_steps)
        self.scheduler.set_sigmas(num_inference_steps)

        # 3. predictor-corrector steps from sigma_max to sigma_min
        sample_mean = sample
        for index, timestep in enumerate(self.progress_bar(self.scheduler.timesteps)):
            sigma = self.scheduler.sigmas[index].to(device=device, dtype=dtype).expand(batch_size)
            for _ in range(self.scheduler.config.correct_steps):
                score = self.unet(sample, sigma).sample
                # the scheduler's noise is float32: keep the sample in the network's dtype
                sample = self.scheduler.step_correct(score, sample, generator=generator).prev_sample.to(dtype)
            score = self.unet(sample, sigma).sample
            output = self.scheduler.step_pred(score, timestep, sample, generator=generator)
            sample, sample_mean = output.prev_sample.to(dtype), output.prev_sample_mean.to(dtype)

        # 4. to images: the last step's mean, without its noise
        images = self.image_processor.postprocess(sample_mean.clamp(-1, 1), output_type=output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images, latents)
        return DDPMPipelineOutput(images=images, latents=latents)
