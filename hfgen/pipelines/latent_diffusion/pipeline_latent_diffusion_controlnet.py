"""Latent diffusion guided by control maps through one or several ControlNets (Zhang et al. 2023): diffusers'
`ControlNetModel` (or `MultiControlNetModel`) on an hfgen latent diffusion model or a Stable-Diffusion-style one.

The base model is loaded from its folder and the ControlNet passed in, as with diffusers' ControlNet pipelines::

    controlnet = diffusers.ControlNetModel.from_pretrained("controlnet-digits-canny")
    pipeline = hfgen.LatentDiffusionControlNetPipeline.from_pretrained("ldm-digits", controlnet=controlnet)
    image = pipeline("a handwritten digit seven", image=edge_map, controlnet_conditioning_scale=1.0).images[0]

A pipeline saved with `save_pretrained` holds its ControlNet(s) and loads without the argument.
"""

import numpy as np
import PIL.Image
import torch
from diffusers import AutoencoderKL, ControlNetModel, MultiControlNetModel, UNet2DConditionModel, VQModel
from diffusers.image_processor import VaeImageProcessor
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from transformers import CLIPTextModel, CLIPTokenizer

from ...models.vae.modeling_vae import VAEModel
from ..denoising import check_sampling_arguments, classifier_free_guidance, scheduler_step_kwargs
from ..pipeline_checks import check_generator, check_output_type
from .pipeline_latent_diffusion import OUTPUT_TYPES, LatentDiffusionPipeline, LatentDiffusionPipelineOutput


def _per_net(value, count: int, name: str) -> list[float]:
    """A number for every ControlNet, or a list of one per ControlNet, as a list of `count` floats."""
    values = list(value) if isinstance(value, (list, tuple)) else [value] * count
    if len(values) != count:
        raise ValueError(f"{name} has {len(values)} values for {count} ControlNet(s): give one, or one per ControlNet")
    for item in values:
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            raise ValueError(f"{name} must be a number or a list of numbers, got {value!r}")
    return [float(item) for item in values]


def control_keep(num_steps: int, starts: list[float], ends: list[float]) -> list[list[float]]:
    """For each denoising step, 1.0 for the ControlNets active at that step and 0.0 for the others: net `k` acts on
    the steps whose share of the sampling, `[i / num_steps, (i + 1) / num_steps]`, lies within `[starts[k],
    ends[k]]` (diffusers' `control_guidance_start` / `control_guidance_end`)."""
    windows = list(zip(starts, ends, strict=True))
    return [
        [float(step / num_steps >= start and (step + 1) / num_steps <= end) for start, end in windows]
        for step in range(num_steps)
    ]


class LatentDiffusionControlNetPipeline(LatentDiffusionPipeline):
    r"""
    Text-to-image latent diffusion whose UNet also takes the residuals of ControlNets fed with control maps (edges,
    masks, blurred images, ...).

    Parameters:
        vae, text_encoder, tokenizer, unet, scheduler:
            As in [`LatentDiffusionPipeline`]; they stay frozen while a ControlNet is trained.
        controlnet ([`~diffusers.ControlNetModel`], [`~diffusers.MultiControlNetModel`] or a list of ControlNets):
            Its conditioning encoder maps a control image of the pipeline's image size to the latent size; several
            ControlNets add their residuals, each with its own scale.
    """

    def __init__(
        self,
        vae: VAEModel | AutoencoderKL | VQModel,
        text_encoder: CLIPTextModel,
        tokenizer: CLIPTokenizer,
        unet: UNet2DConditionModel,
        controlnet: ControlNetModel | MultiControlNetModel,
        scheduler: SchedulerMixin,
    ):
        if isinstance(controlnet, (list, tuple)):
            controlnet = MultiControlNetModel(controlnet)
        super().__init__(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler)
        self.register_modules(controlnet=controlnet)

    @property
    def controlnets(self) -> list[ControlNetModel]:
        return list(self.controlnet.nets) if isinstance(self.controlnet, MultiControlNetModel) else [self.controlnet]

    def prepare_control_image(self, image, net: ControlNetModel, num_prompts: int, num_images_per_prompt: int):
        """One control image (PIL, array or tensor in [0, 1]) or a batch of them as the `(batch, channels, height,
        width)` tensor `net` takes: one for all images, one per prompt or one per image; checked against the
        pipeline's image size."""
        channels = net.config.conditioning_channels
        processor = VaeImageProcessor(
            vae_scale_factor=1, do_normalize=False, do_convert_rgb=channels == 3, do_convert_grayscale=channels == 1
        )
        if isinstance(image, torch.Tensor) and image.ndim == 3:
            image = image[None]
        if isinstance(image, np.ndarray) and image.ndim == 2:
            image = image[..., None]
        if not isinstance(image, (PIL.Image.Image, np.ndarray, torch.Tensor, list)) or (
            isinstance(image, list) and not image
        ):
            raise ValueError(
                f"image must be a control image (PIL image, numpy array or tensor in [0, 1]) or a list of them, got "
                f"{type(image).__name__}"
            )
        tensor = processor.preprocess(image).to(dtype=torch.float32)
        if tensor.shape[1] != channels:
            tensor = tensor.mean(dim=1, keepdim=True).expand(-1, channels, -1, -1)
        height, width = self.image_size
        if tuple(tensor.shape[-2:]) != (height, width):
            raise ValueError(
                f"the control image is {tensor.shape[-1]}x{tensor.shape[-2]} (width x height) but the pipeline makes "
                f"{width}x{height} images: resize the control image to {width}x{height}"
            )
        count, batch_size = tensor.shape[0], num_prompts * num_images_per_prompt
        if count == 1:
            tensor = tensor.expand(batch_size, -1, -1, -1)
        elif count == num_prompts:
            tensor = tensor.repeat_interleave(num_images_per_prompt, dim=0)
        elif count != batch_size:
            raise ValueError(
                f"got {count} control images for {num_prompts} prompt(s) x num_images_per_prompt="
                f"{num_images_per_prompt}: give one control image, one per prompt or one per image"
            )
        return tensor.to(device=self._execution_device, dtype=net.dtype)

    def check_controlnets(self) -> None:
        """Each ControlNet's conditioning encoder must bring the pipeline's images to the UNet's latent size."""
        factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        for index, net in enumerate(self.controlnets):
            downsampling = 2 ** (len(net.config.conditioning_embedding_out_channels) - 1)
            if downsampling != factor:
                raise ValueError(
                    f"ControlNet {index}'s conditioning encoder downsamples control images by {downsampling} but the "
                    f"first stage by {factor}: build it with {int(np.log2(factor)) + 1} "
                    "conditioning_embedding_out_channels"
                )

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        image=None,
        negative_prompt: str | list[str] | None = None,
        num_images_per_prompt: int = 1,
        guidance_scale: float = 3.0,
        controlnet_conditioning_scale: float | list[float] = 1.0,
        control_guidance_start: float | list[float] = 0.0,
        control_guidance_end: float | list[float] = 1.0,
        num_inference_steps: int = 25,
        eta: float = 0.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        r"""
        Generate images from text and control maps.

        Args:
            prompt (`str` or `list[str]`):
                What to draw; a list gives one group of images per prompt.
            image (PIL image, `np.ndarray`, `torch.Tensor` in [0, 1], or a list):
                The control map(s), of the pipeline's image size: one for all images, one per prompt or one per
                image. With several ControlNets, a list with one such entry per ControlNet.
            negative_prompt, num_images_per_prompt, guidance_scale, num_inference_steps, eta, generator, latents:
                As in [`LatentDiffusionPipeline.__call__`].
            controlnet_conditioning_scale (`float` or `list[float]`, defaults to 1.0):
                Multiplies the ControlNet residuals (one scale per ControlNet, or one for all); 0 ignores the control.
            control_guidance_start (`float` or `list[float]`, defaults to 0.0):
                Share of the sampling steps after which each ControlNet starts acting.
            control_guidance_end (`float` or `list[float]`, defaults to 1.0):
                Share of the sampling steps after which each ControlNet stops acting.
            output_type (`str`, defaults to `"pil"`):
                `"pil"`, `"np"`, `"pt"` or `"latent"`.
            return_dict (`bool`, defaults to `True`):
                Return a [`LatentDiffusionPipelineOutput`] instead of a tuple `(images, latents, prompts)`.
        """
        # 1. check inputs
        check_output_type(output_type, OUTPUT_TYPES)
        check_sampling_arguments(num_inference_steps, eta)
        self.check_controlnets()
        nets = self.controlnets
        prompts, negative_prompts = self.check_prompts(prompt, negative_prompt, num_images_per_prompt, guidance_scale)
        batch_size, num_prompts = len(prompts), len(prompts) // num_images_per_prompt
        if image is None:
            raise ValueError("image (the control map) is required: give one control image, or one per prompt")
        if len(nets) > 1 and not (isinstance(image, (list, tuple)) and len(image) == len(nets)):
            count = len(image) if isinstance(image, (list, tuple)) else 1
            raise ValueError(
                f"image has {count} entries for {len(nets)} ControlNets: give a list with one control image (or batch "
                "of them) per ControlNet"
            )
        per_net_images = list(image) if len(nets) > 1 else [image]
        scales = _per_net(controlnet_conditioning_scale, len(nets), "controlnet_conditioning_scale")
        starts = _per_net(control_guidance_start, len(nets), "control_guidance_start")
        ends = _per_net(control_guidance_end, len(nets), "control_guidance_end")
        for start, end in zip(starts, ends, strict=True):
            if not 0 <= start < end <= 1:
                raise ValueError(
                    f"control_guidance_start {start} and control_guidance_end {end} must satisfy 0 <= start < end <= 1"
                )
        check_generator(generator, batch_size)
        step_kwargs = scheduler_step_kwargs(self.scheduler, generator, eta)

        # 2. encode the prompts and the control images (both halves of a guided batch see the same control)
        guided = guidance_scale != 1
        text_embeddings = self.encode_prompt(negative_prompts + prompts if guided else prompts)
        control_images = []
        for net, net_image in zip(nets, per_net_images, strict=True):
            control = self.prepare_control_image(net_image, net, num_prompts, num_images_per_prompt)
            control_images.append(torch.cat([control] * 2) if guided else control)

        # 3. prepare the starting noise
        latents = self.prepare_latents(latents, batch_size, num_images_per_prompt, generator)
        self.scheduler.set_timesteps(num_inference_steps, device=self._execution_device)
        sample = latents * self.scheduler.init_noise_sigma
        keep = control_keep(len(self.scheduler.timesteps), starts, ends)

        # 4. denoise: the active ControlNets' residuals, scaled, are added to the UNet's skip connections
        for index, timestep in enumerate(self.progress_bar(self.scheduler.timesteps)):
            model_input = torch.cat([sample] * 2) if guided else sample
            model_input = self.scheduler.scale_model_input(model_input, timestep)
            residuals = {}
            step_scales = [scale * kept for scale, kept in zip(scales, keep[index], strict=True)]
            if any(step_scales):  # an inactive step runs the UNet alone
                down, middle = self.controlnet(
                    model_input,
                    timestep,
                    encoder_hidden_states=text_embeddings,
                    controlnet_cond=control_images if len(nets) > 1 else control_images[0],
                    conditioning_scale=step_scales if len(nets) > 1 else step_scales[0],
                    return_dict=False,
                )
                residuals = {"down_block_additional_residuals": down, "mid_block_additional_residual": middle}
            prediction = self.unet(model_input, timestep, encoder_hidden_states=text_embeddings, **residuals).sample
            if guided:
                unconditional, conditional = prediction.chunk(2)
                prediction = classifier_free_guidance(unconditional, conditional, guidance_scale)
            sample = self.scheduler.step(prediction, timestep, sample, **step_kwargs).prev_sample

        # 5. decode
        images = self.decode_latents(sample, output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images, latents, prompts)
        return LatentDiffusionPipelineOutput(images=images, latents=latents, prompts=prompts)
