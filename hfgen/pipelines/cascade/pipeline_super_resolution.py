"""Super-resolution by diffusion (Saharia et al. 2021, SR3; Ho et al. 2021, cascaded diffusion): a diffusers
`UNet2DModel` denoises the high-resolution image, given the low-resolution one upsampled and concatenated to its
input, and the level of noise that conditioning was augmented with as its second timestep (`class_labels`, embedded by
`class_embed_type="timestep"`). A residual model (Li et al. 2022, SRDiff; the default of train_super_resolution.py)
denoises the scaled difference between the high-resolution image and the upsampled one instead, and the pipeline adds
the upsampled image back: the model only has to draw the detail bicubic upsampling misses.

diffusers has the UNet and the schedulers but no pipeline for such a pixel-space model (its upscalers work on the
latents of Stable Diffusion, and DeepFloyd IF's stage II needs a text encoder): this is that pipeline.
"""

from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
from diffusers import DDPMScheduler, UNet2DModel
from diffusers.image_processor import VaeImageProcessor
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from ..denoising import check_sampling_arguments, scheduler_step_kwargs
from ..pipeline_checks import check_generator, check_latents, check_output_type, check_positive_int
from ..pipeline_folder import PipelineFolderMixin
from .resampling import augment_conditioning, from_residual, upsample

# The noise conditioning augmentation of the low-resolution image at sampling time, a timestep of the model's
# schedule: a real image downsampled needs none (the default 16 -> 32 px residual model reads PSNR 45.83 dB at level 0
# and 45.58 at 50 on the held-out digits, 24.92 and 24.91 on the faces; benchmarks/bench_cascade.py). A base model's
# samples are another matter: the cascade has its own default (CASCADE_NOISE_LEVEL).
DEFAULT_NOISE_LEVEL = 0


@dataclass
class SuperResolutionPipelineOutput(BaseOutput):
    """
    Args:
        images (`list[PIL.Image.Image]`, `np.ndarray` or `torch.Tensor`):
            The super-resolved images as asked by `output_type`: PIL images, a `(batch, height, width, channels)`
            array in [0, 1] or a `(batch, channels, height, width)` tensor in [0, 1].
        latents (`torch.Tensor` of shape `(batch, channels, height, width)`):
            The noise the sampling started from (before the scheduler's `init_noise_sigma`), to redo or vary a result.
    """

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    latents: torch.Tensor


PREDICTION_TARGETS = ("image", "residual")


def check_prediction_target(prediction_target, residual_scale) -> None:
    """Raise unless `prediction_target` is one the pipelines know and `residual_scale` a positive number."""
    if prediction_target not in PREDICTION_TARGETS:
        raise ValueError(f"prediction_target must be one of {PREDICTION_TARGETS}, got {prediction_target!r}")
    if isinstance(residual_scale, bool) or not isinstance(residual_scale, (int, float)) or not residual_scale > 0:
        raise ValueError(f"residual_scale must be a positive number, got {residual_scale!r}")


def check_super_resolution_unet(unet: UNet2DModel) -> None:
    """Raise unless `unet` takes what a super-resolution UNet takes: the noisy image and the upsampled conditioning
    (twice its output channels) and the conditioning's noise level as a second timestep."""
    if unet.config.in_channels != 2 * unet.config.out_channels or unet.config.class_embed_type != "timestep":
        raise ValueError(
            f"the unet takes {unet.config.in_channels} channels with class_embed_type "
            f"{unet.config.class_embed_type!r}: a super-resolution UNet takes the noisy image and the upsampled "
            f"low-resolution one (in_channels = 2 x out_channels = {2 * unet.config.out_channels}) and their noise "
            "level (class_embed_type='timestep'), as train_super_resolution.py builds it"
        )


def noise_schedule(scheduler: SchedulerMixin) -> torch.Tensor:
    """`alphas_cumprod` of the schedule a scheduler's config describes: the augmentation's noise levels are timesteps
    of the training schedule whatever sampler is swapped in (DDIM, DPM-Solver, ...)."""
    return DDPMScheduler.from_config(scheduler.config).alphas_cumprod


class SuperResolutionPipeline(PipelineFolderMixin, DiffusionPipeline):
    r"""
    Super-resolution of images with a [`~diffusers.UNet2DModel`] trained by `train_super_resolution.py`.

    Parameters:
        unet ([`~diffusers.UNet2DModel`]):
            The denoiser of high-resolution images in [-1, 1]: `in_channels` is twice `out_channels` (the noisy image,
            then the upsampled low-resolution one), and `class_embed_type="timestep"` embeds the conditioning's noise
            level given as `class_labels`.
        scheduler ([`~diffusers.SchedulerMixin`]):
            A discrete-time scheduler on the training schedule: the folders hold a `DDIMScheduler` (25-50 steps); any
            other swaps in with `from_config`.
        low_resolution (`int`, *optional*):
            The side of the low-resolution images the model was trained on, recorded for the demo and the metrics,
            which downsample images to it. Inputs of any size are upsampled to the UNet's `sample_size`.
        prediction_target (`str`, *optional*, defaults to `"image"`):
            What the UNet denoises: `"image"`, the high-resolution image (SR3), or `"residual"`, the high-resolution
            image minus the upsampled low-resolution one, times `residual_scale` (SRDiff); the pipeline then adds the
            upsampled image back. Folders saved before residual models existed hold image models, hence the default;
            train_super_resolution.py records what it trained.
        residual_scale (`float`, *optional*, defaults to 1.0):
            The factor the residuals were multiplied by in training (1 / their standard deviation on the training
            images); only for `prediction_target="residual"`.
    """

    model_cpu_offload_seq = "unet"

    def __init__(
        self,
        unet: UNet2DModel,
        scheduler: SchedulerMixin,
        low_resolution: int | None = None,
        prediction_target: str = "image",
        residual_scale: float = 1.0,
    ):
        super().__init__()
        check_super_resolution_unet(unet)
        check_prediction_target(prediction_target, residual_scale)
        self.register_modules(unet=unet, scheduler=scheduler)
        self.register_to_config(
            low_resolution=low_resolution, prediction_target=prediction_target, residual_scale=residual_scale
        )
        self.image_processor = VaeImageProcessor(
            vae_scale_factor=1, do_resize=False, do_convert_grayscale=unet.config.out_channels == 1
        )

    @property
    def _sample_shape(self) -> tuple[int, int, int]:
        size = self.unet.config.sample_size
        height, width = (size, size) if isinstance(size, int) else size
        return (self.unet.config.out_channels, height, width)

    def preprocess(self, image) -> torch.Tensor:
        """`image` (a PIL image or a list of them, or an array / tensor in [0, 1]) as a `(batch, channels, height,
        width)` tensor in [-1, 1] in the model's colours."""
        if isinstance(image, torch.Tensor) and image.ndim == 3:
            image = image.unsqueeze(0)
        if isinstance(image, torch.Tensor) and (image.min() < 0 or image.max() > 1):
            raise ValueError(
                f"image holds values in [{image.min().item():.3g}, {image.max().item():.3g}]: give images in [0, 1]"
            )
        pixels = self.image_processor.preprocess(image)
        channels = self.unet.config.out_channels
        if pixels.shape[1] == 3 and channels == 1:
            pixels = pixels.mean(dim=1, keepdim=True)  # an RGB array or tensor for a greyscale model
        elif pixels.shape[1] == 1 and channels == 3:
            pixels = pixels.expand(-1, 3, -1, -1)
        if pixels.shape[1] != channels:
            raise ValueError(f"image has {pixels.shape[1]} channels but the model makes {channels}-channel images")
        return pixels

    def conditioning(self, upsampled: torch.Tensor, noise_level: int, generator, batch_size: int) -> torch.Tensor:
        """The UNet's conditioning input: the `upsampled` low-resolution images (in [-1, 1]) noised to `noise_level`,
        one noise draw per image from its generator (after its starting noise)."""
        if noise_level == 0:
            return upsampled
        noise = randn_tensor(upsampled.shape, generator=generator, device=upsampled.device, dtype=upsampled.dtype)
        levels = torch.full((batch_size,), noise_level, device=upsampled.device, dtype=torch.long)
        return augment_conditioning(upsampled, levels, noise_schedule(self.scheduler), noise)

    def check_noise_level(self, noise_level) -> None:
        steps = noise_schedule(self.scheduler).shape[0]
        if isinstance(noise_level, bool) or not isinstance(noise_level, int) or not 0 <= noise_level < steps:
            raise ValueError(
                f"noise_level must be an int in [0, {steps}) (a timestep of the model's schedule; 0: no "
                f"augmentation), got {noise_level!r}"
            )

    def denoise(self, low_res, noise_level, generator, num_inference_steps, eta, latents) -> torch.Tensor:
        """The sampling loop from `latents` (checked, standard normal) under `low_res` (`(batch, ...)` in [-1, 1] on
        the execution device): the super-resolved images in [-1, 1] (a residual model's sample added to the upsampled
        images, unclamped). The cascade calls it with its base's images."""
        step_kwargs = scheduler_step_kwargs(self.scheduler, generator, eta)
        batch_size = latents.shape[0]
        upsampled = upsample(low_res, self._sample_shape[1:])
        conditioning = self.conditioning(upsampled, noise_level, generator, batch_size)
        levels = torch.full((batch_size,), noise_level, device=latents.device, dtype=torch.long)
        self.scheduler.set_timesteps(num_inference_steps, device=latents.device)
        sample = latents * self.scheduler.init_noise_sigma
        for timestep in self.progress_bar(self.scheduler.timesteps):
            # 1. the UNet sees the noisy image beside the conditioning, and the conditioning's noise level
            model_input = torch.cat([self.scheduler.scale_model_input(sample, timestep), conditioning], dim=1)
            model_output = self.unet(model_input, timestep, class_labels=levels).sample
            # 2. one step of the sampler
            sample = self.scheduler.step(model_output, timestep, sample, **step_kwargs).prev_sample
        if self.config.prediction_target == "residual":
            # the detail drawn goes onto the clean upsampled image, not the noise-augmented conditioning
            return from_residual(sample, upsampled, self.config.residual_scale)
        return sample

    @torch.no_grad()
    def __call__(
        self,
        image: PIL.Image.Image | list[PIL.Image.Image] | np.ndarray | torch.Tensor,
        batch_size: int | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        num_inference_steps: int = 50,
        noise_level: int = DEFAULT_NOISE_LEVEL,
        eta: float = 0.0,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        r"""
        Super-resolve images.

        Args:
            image (`PIL.Image.Image`, `list[PIL.Image.Image]`, `np.ndarray` or `torch.Tensor`):
                The low-resolution images: PIL images, or a `(batch, height, width, channels)` array or `(batch,
                channels, height, width)` tensor in [0, 1]. They are upsampled (bicubic) to the UNet's `sample_size`;
                the model knows best the size it was trained on (`pipeline.config.low_resolution`).
            batch_size (`int`, *optional*):
                Number of outputs: by default one per input image; with a single input image, that many
                super-resolutions of it, each from its own noise.
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*):
                Makes sampling deterministic; a list gives one generator per image (its starting noise, then its
                conditioning's augmentation noise and the sampler's noise come from `generator[i]`).
            num_inference_steps (`int`, defaults to 50):
                Denoising steps (DDIM gets close to the full chain in 25-50).
            noise_level (`int`, defaults to 0):
                Noise conditioning augmentation: the low-resolution image is diffused to this timestep of the model's
                schedule before the UNet sees it. 0 trusts it exactly (best for downsampled real images); a little
                noise hides the flaws of a base model's samples (the cascade's default, see the model card).
            eta (`float`, defaults to 0.0):
                DDIM's noise level (0: deterministic); only for schedulers whose `step` takes it.
            latents (`torch.Tensor` of shape `(batch, channels, height, width)`, *optional*):
                Standard normal noise at the output size to start from instead of drawing it.
            output_type (`str`, defaults to `"pil"`):
                `"pil"`, `"np"` or `"pt"`.
            return_dict (`bool`, defaults to `True`):
                Return a [`SuperResolutionPipelineOutput`] instead of a tuple `(images, latents)`.
        """
        # 1. check inputs
        check_output_type(output_type)
        check_sampling_arguments(num_inference_steps, eta)
        self.check_noise_level(noise_level)
        device, dtype = self._execution_device, self.unet.dtype
        low_res = self.preprocess(image).to(device=device, dtype=dtype)
        batch_size = self.resolve_batch_size(batch_size, low_res.shape[0], latents)
        check_generator(generator, batch_size)
        low_res = low_res.expand(batch_size, -1, -1, -1) if low_res.shape[0] == 1 else low_res

        # 2. prepare the starting noise
        if latents is None:
            latents = randn_tensor((batch_size, *self._sample_shape), generator=generator, device=device, dtype=dtype)
        else:
            latents = latents.to(device=device, dtype=dtype)

        # 3. denoise under the (augmented) upsampled low-resolution images
        sample = self.denoise(low_res, noise_level, generator, num_inference_steps, eta, latents)

        # 4. to images
        images = self.image_processor.postprocess(sample, output_type=output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images, latents)
        return SuperResolutionPipelineOutput(images=images, latents=latents)

    def resolve_batch_size(self, batch_size, num_images: int, latents: torch.Tensor | None) -> int:
        """The number of outputs: `batch_size`, the rows of `latents` or the number of input images, which must agree
        unless one image is given for all of them; `latents` are checked against the output size."""
        if batch_size is not None:
            check_positive_int(batch_size, "batch_size")
        if latents is not None:
            check_latents(latents, self._sample_shape)
            if batch_size is not None and latents.shape[0] != batch_size:
                raise ValueError(
                    f"latents has {latents.shape[0]} rows but batch_size={batch_size}: give one per image, or leave "
                    "batch_size out"
                )
            batch_size = latents.shape[0]
        if batch_size is None:
            return num_images
        if num_images not in (1, batch_size):
            raise ValueError(
                f"image holds {num_images} images but {batch_size} outputs were asked: give one image, or one per "
                "output (and leave batch_size out)"
            )
        return batch_size
