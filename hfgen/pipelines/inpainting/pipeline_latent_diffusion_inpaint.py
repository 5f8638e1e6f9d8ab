"""Text-guided inpainting with latent diffusion: repaint the white region of a mask in an image, following a prompt.

Two ways, as in diffusers' Stable Diffusion inpainting pipelines:

- [`LatentDiffusionInpaintPipeline`]: a UNet trained for it (training_scripts/diffusion/train_inpainting.py), which
  takes the mask and the latents of the masked image as extra input channels beside the noisy latents (Rombach et
  al. 2022, the Stable Diffusion inpainting models), so it sees the context at every step.
- [`LatentBlendingInpaintPipeline`]: any plain text-to-image latent diffusion model (train_ldm.py's), which knows
  nothing of masks: after every step, the latents outside the mask are replaced by the image's own latents noised to
  the next step's level (the blended latent diffusion of Avrahami et al. 2023; diffusers' legacy inpainting
  pipeline). The baseline the trained model is measured against.

Both take `image` and `mask_image` (PIL images, or arrays / tensors in [0, 1]; white, >= 0.5, is repainted, as in
diffusers), return images in which the pixels outside the mask are the input's own (`preserve_unmasked=True`), and
otherwise behave as [`LatentDiffusionPipeline`] (prompts, guidance, schedulers, LoRA).
"""

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, UNet2DConditionModel, VQModel
from diffusers.image_processor import VaeImageProcessor
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from transformers import CLIPTextModel, CLIPTokenizer

from ...models.vae.modeling_vae import VAEModel
from ..denoising import check_sampling_arguments, classifier_free_guidance, scheduler_step_kwargs, unet_sample_shape
from ..latent_diffusion.pipeline_latent_diffusion import LatentDiffusionPipeline, LatentDiffusionPipelineOutput
from ..pipeline_checks import check_generator, check_output_type, check_positive_int

ImageInput = PIL.Image.Image | list[PIL.Image.Image] | np.ndarray | torch.Tensor


def inpainting_in_channels(latent_channels: int) -> int:
    """The input channels of an inpainting UNet: the noisy latents, the mask, the masked image's latents."""
    return 2 * latent_channels + 1


def is_inpainting_unet(unet: UNet2DConditionModel) -> bool:
    return unet.config.in_channels == inpainting_in_channels(unet.config.out_channels)


def inpainting_unet_from(unet: UNet2DConditionModel) -> UNet2DConditionModel:
    """An inpainting UNet made from a plain latent diffusion UNet: the same architecture and weights, with the mask
    and masked-image channels added to its first convolution with zero weights, so it starts out predicting exactly
    what the plain model predicts (how Stable Diffusion's inpainting models were initialised)."""
    channels = unet.config.out_channels
    inpainting = UNet2DConditionModel.from_config(unet.config, in_channels=inpainting_in_channels(channels))
    weights = unet.state_dict()
    conv_in = weights["conv_in.weight"]
    widened = conv_in.new_zeros(conv_in.shape[0], inpainting_in_channels(channels), *conv_in.shape[2:])
    widened[:, :channels] = conv_in
    inpainting.load_state_dict({**weights, "conv_in.weight": widened})
    return inpainting.to(device=unet.device, dtype=unet.dtype)


def latent_mask(mask: torch.Tensor, latent_size: tuple[int, int]) -> torch.Tensor:
    """A pixel mask `(batch, 1, height, width)` at the latents' size: a latent is repainted when any pixel it covers
    is (max pooling), so the repainted latents always cover the whole hole."""
    return F.adaptive_max_pool2d(mask, latent_size)


def masked_images(pixel_values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] with the pixels to repaint set to 0 (grey), as the inpainting UNet sees them."""
    return pixel_values * (1 - mask)


def image_latents(vae, pixel_values: torch.Tensor) -> torch.Tensor:
    """The first stage's scaled latents of images in [-1, 1], without sampling: a VAE's posterior mean, a VQ model's
    encoder output. Deterministic, so training and sampling see the same context latents."""
    encoded = vae.encode(pixel_values.to(vae.dtype))
    latents = encoded.latent_dist.mode() if hasattr(encoded, "latent_dist") else encoded.latents
    return latents * vae.config.scaling_factor


class LatentDiffusionInpaintPipeline(LatentDiffusionPipeline):
    r"""
    Text-guided inpainting with a latent diffusion UNet trained for it (train_inpainting.py).

    Parameters:
        vae ([`VAEModel`], [`~diffusers.AutoencoderKL`] or [`~diffusers.VQModel`]):
            The first stage, as in [`LatentDiffusionPipeline`].
        text_encoder ([`~transformers.CLIPTextModel`]), tokenizer ([`~transformers.CLIPTokenizer`]):
            The prompt's encoder, as in [`LatentDiffusionPipeline`].
        unet ([`~diffusers.UNet2DConditionModel`]):
            An inpainting UNet: `in_channels = 2 * out_channels + 1`, the noisy latents, then the mask at the latents'
            size, then the latents of the masked image.
        scheduler ([`~diffusers.SchedulerMixin`]):
            Any of diffusers' discrete-time schedulers.
    """

    def __init__(
        self,
        vae: VAEModel | AutoencoderKL | VQModel,
        text_encoder: CLIPTextModel,
        tokenizer: CLIPTokenizer,
        unet: UNet2DConditionModel,
        scheduler: SchedulerMixin,
    ):
        super().__init__(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler)
        # masks are binarised (>= 0.5 is repainted) and kept in [0, 1]
        self.mask_processor = VaeImageProcessor(
            vae_scale_factor=1, do_normalize=False, do_binarize=True, do_convert_grayscale=True, resample="nearest"
        )

    def check_unet(self, unet: UNet2DConditionModel) -> None:
        if not is_inpainting_unet(unet):
            channels = unet.config.out_channels
            raise ValueError(
                f"the unet takes {unet.config.in_channels} input channels for {channels}-channel latents, but an "
                f"inpainting UNet takes {inpainting_in_channels(channels)} (latents, mask, masked-image latents): "
                "for a plain latent diffusion model use LatentBlendingInpaintPipeline, or train one with "
                "train_inpainting.py"
            )

    @property
    def _latent_shape(self) -> tuple[int, int, int]:
        _, height, width = unet_sample_shape(self.unet)
        return (self.unet.config.out_channels, height, width)

    def prepare_image_and_mask(self, image: ImageInput, mask_image: ImageInput) -> tuple[torch.Tensor, torch.Tensor]:
        """`(pixels in [-1, 1] in the model's colours, binary mask in {0, 1})`, both `(batch, channels, height,
        width)` at the model's image size on the execution device; one-line errors for inputs that do not pair."""
        # diffusers' image processor takes arrays as well as tensors to be in [0, 1]: np.asarray(pil_image) (0-255)
        # would otherwise pass unscaled
        if isinstance(image, (np.ndarray, torch.Tensor)) and (image.min() < 0 or image.max() > 1):
            raise ValueError(
                f"image holds values in [{image.min().item():.3g}, {image.max().item():.3g}]: give images in [0, 1]"
            )
        if isinstance(mask_image, (np.ndarray, torch.Tensor)) and mask_image.dtype in (np.bool_, torch.bool):
            mask_image = mask_image * 1.0  # a boolean mask (True: repaint) resizes as 0 / 1
        image_size, mask_size = _input_size(image, "image"), _input_size(mask_image, "mask_image")
        if image_size != mask_size:
            raise ValueError(
                f"mask_image is {mask_size[1]}x{mask_size[0]} but image is {image_size[1]}x{image_size[0]}: give a "
                "mask of the image's size"
            )
        height, width = self.image_size
        pixels = self.image_processor.preprocess(image, height=height, width=width)
        channels = self.vae.config.in_channels
        if pixels.shape[1] == 3 and channels == 1:
            pixels = pixels.mean(dim=1, keepdim=True)  # an RGB array or tensor for a greyscale model
        elif pixels.shape[1] == 1 and channels == 3:
            pixels = pixels.expand(-1, 3, -1, -1)
        mask = self.mask_processor.preprocess(mask_image, height=height, width=width)
        if mask.shape[1] != 1:
            mask = (mask.mean(dim=1, keepdim=True) >= 0.5).to(mask.dtype)
        if len(mask) not in (1, len(pixels)):
            raise ValueError(
                f"mask_image holds {len(mask)} masks for {len(pixels)} images: give one, or one per image"
            )
        device, dtype = self._execution_device, self.unet.dtype
        mask = mask.expand(len(pixels), -1, -1, -1)
        return pixels.to(device=device, dtype=dtype), mask.to(device=device, dtype=dtype)

    def denoise(self, sample, text_embeddings, guided, guidance_scale, mask, context, step_kwargs):
        """The sampling loop, from noise `sample` to denoised latents; `mask` and `context` are the latent mask and the
        masked image's latents the UNet takes beside the noisy latents."""
        for timestep in self.progress_bar(self.scheduler.timesteps):
            # 1. the noisy latents, then the mask and the masked image's latents (doubled for guidance)
            model_input = self.scheduler.scale_model_input(sample, timestep)
            model_input = torch.cat([model_input, mask, context], dim=1)
            model_input = torch.cat([model_input] * 2) if guided else model_input
            prediction = self.unet(model_input, timestep, encoder_hidden_states=text_embeddings).sample
            if guided:
                unconditional, conditional = prediction.chunk(2)
                prediction = classifier_free_guidance(unconditional, conditional, guidance_scale)
            # 2. one step of the sampler
            sample = self.scheduler.step(prediction, timestep, sample, **step_kwargs).prev_sample
        return sample

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        image: ImageInput,
        mask_image: ImageInput,
        negative_prompt: str | list[str] | None = None,
        num_images_per_prompt: int = 1,
        guidance_scale: float = 3.0,
        num_inference_steps: int = 25,
        eta: float = 0.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        preserve_unmasked: bool = True,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        r"""
        Repaint the masked region of images.

        Args:
            prompt (`str` or `list[str]`):
                What to paint, e.g. `"a handwritten digit seven"`: one for all images, or one per image (or several
                for one image).
            image (`PIL.Image.Image`, `list[PIL.Image.Image]`, `np.ndarray` or `torch.Tensor`):
                The images: PIL images, or a `(batch, height, width, channels)` array or `(batch, channels, height,
                width)` tensor in [0, 1]. Resized to the model's image size when they differ.
            mask_image (same kinds as `image`):
                Where to repaint: white (>= 0.5) is repainted, black is kept. Of the image's size; one for all images,
                or one per image.
            negative_prompt (`str` or `list[str]`, *optional*):
                What to steer away from, as in [`LatentDiffusionPipeline`].
            num_images_per_prompt (`int`, defaults to 1):
                Inpaintings of each image and prompt pair, each from its own noise.
            guidance_scale (`float`, defaults to 3.0):
                Classifier-free guidance (1: none).
            num_inference_steps (`int`, defaults to 25):
                Denoising steps.
            eta (`float`, defaults to 0.0):
                DDIM's noise level; only for schedulers whose `step` takes it.
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*):
                Makes sampling deterministic; a list gives one generator per image.
            latents (`torch.Tensor` of shape `(batch, latent_channels, latent_height, latent_width)`, *optional*):
                Standard normal noise to start from, one per image.
            preserve_unmasked (`bool`, defaults to `True`):
                Paste the input's pixels back outside the mask, so only the masked region changes; `False` returns
                the decoded latents everywhere (what the model made of the context).
            output_type (`str`, defaults to `"pil"`):
                `"pil"`, `"np"` or `"pt"`.
            return_dict (`bool`, defaults to `True`):
                Return a [`LatentDiffusionPipelineOutput`] instead of a tuple `(images, latents, prompts)`.
        """
        # 1. check inputs: the images and their masks, the prompts paired with them, the generators
        check_output_type(output_type)
        check_sampling_arguments(num_inference_steps, eta)
        check_positive_int(num_images_per_prompt, "num_images_per_prompt")
        pixels, mask = self.prepare_image_and_mask(image, mask_image)
        prompts, negative_prompts = self.check_prompts(prompt, negative_prompt, 1, guidance_scale)
        pixels, mask, prompts, negative_prompts = _paired(
            pixels, mask, prompts, negative_prompts, num_images_per_prompt
        )
        batch_size = len(prompts)
        check_generator(generator, batch_size)
        step_kwargs = scheduler_step_kwargs(self.scheduler, generator, eta)

        # 2. encode the prompts (the unconditional branch only when guidance needs it)
        guided = guidance_scale != 1
        text_embeddings = self.encode_prompt(negative_prompts + prompts if guided else prompts)

        # 3. the starting noise, then the known part of the images in latent space
        latents = self.prepare_latents(latents, batch_size, num_images_per_prompt, generator)
        _, latent_height, latent_width = self._latent_shape
        mask_latent = latent_mask(mask, (latent_height, latent_width))
        self.scheduler.set_timesteps(num_inference_steps, device=self._execution_device)
        sample = latents * self.scheduler.init_noise_sigma
        known = self.known_latents(pixels, mask, latents)

        # 4. denoise
        sample = self.denoise(sample, text_embeddings, guided, guidance_scale, mask_latent, known, step_kwargs)

        # 5. decode, and keep the input's pixels outside the mask
        decoded = self.vae.decode(sample.to(self.vae.dtype) / self.vae.config.scaling_factor).sample
        if preserve_unmasked:
            decoded = pixels * (1 - mask) + decoded * mask
        images = self.image_processor.postprocess(decoded, output_type=output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images, latents, prompts)
        return LatentDiffusionPipelineOutput(images=images, latents=latents, prompts=prompts)

    def known_latents(self, pixels: torch.Tensor, mask: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """What the UNet is told of the image: the latents of the masked image."""
        return image_latents(self.vae, masked_images(pixels, mask))


class LatentBlendingInpaintPipeline(LatentDiffusionInpaintPipeline):
    r"""
    Text-guided inpainting with a plain text-to-image latent diffusion model (train_ldm.py's, or any Stable-Diffusion-
    style folder): `LatentBlendingInpaintPipeline.from_pretrained(ldm_folder)`, or `(**ldm_pipeline.components)`.

    After every denoising step, the latents outside the mask are replaced by the image's own latents noised to the
    level of the next step (with the starting noise, so the known region starts where the sample does), and at the end
    by the image's latents themselves: the model only ever fills in the masked latents, and sees the context only
    through the noisy latents it is blended with.
    """

    def check_unet(self, unet: UNet2DConditionModel) -> None:
        LatentDiffusionPipeline.check_unet(self, unet)

    @property
    def _latent_shape(self) -> tuple[int, int, int]:
        return unet_sample_shape(self.unet)

    def known_latents(self, pixels: torch.Tensor, mask: torch.Tensor, latents: torch.Tensor):
        """The image's own latents, and the noise they are diffused with at every step: the starting noise itself, so
        the known region starts where the sample does and nothing more is drawn."""
        return image_latents(self.vae, pixels), latents

    def denoise(self, sample, text_embeddings, guided, guidance_scale, mask, context, step_kwargs):
        clean, noise = context
        timesteps = self.scheduler.timesteps
        for index, timestep in enumerate(self.progress_bar(timesteps)):
            # 1. the plain model's prediction (guided) and one step of the sampler
            model_input = torch.cat([sample] * 2) if guided else sample
            model_input = self.scheduler.scale_model_input(model_input, timestep)
            prediction = self.unet(model_input, timestep, encoder_hidden_states=text_embeddings).sample
            if guided:
                unconditional, conditional = prediction.chunk(2)
                prediction = classifier_free_guidance(unconditional, conditional, guidance_scale)
            sample = self.scheduler.step(prediction, timestep, sample, **step_kwargs).prev_sample
            # 2. outside the mask, the image's latents at the level the sample is now at (clean after the last step)
            if index + 1 < len(timesteps):
                known = self.scheduler.add_noise(clean, noise, timesteps[index + 1 : index + 2])
            else:
                known = clean
            sample = mask * sample + (1 - mask) * known
        return sample


def _input_size(value, name: str) -> tuple[int, int]:
    """`(height, width)` of an image input (a PIL image or a list of them, an array `(..., height, width, channels)`
    or a tensor `(..., channels, height, width)`)."""
    first = value[0] if isinstance(value, list) and value else value
    if isinstance(first, PIL.Image.Image):
        return first.height, first.width
    if isinstance(first, np.ndarray) and first.ndim >= 2:
        return tuple(first.shape[-3:-1]) if first.ndim >= 3 else first.shape
    if isinstance(first, torch.Tensor) and first.ndim >= 2:
        return tuple(first.shape[-2:])
    raise ValueError(
        f"{name} must be a PIL image, a list of them, a numpy array or a torch tensor, got {type(value).__name__}"
    )


def _paired(pixels, mask, prompts: list[str], negative_prompts: list[str], num_images_per_prompt: int):
    """One image, mask, prompt and negative prompt per output: a single image goes with every prompt and a single
    prompt with every image, and each pair is repeated `num_images_per_prompt` times."""
    count = max(len(prompts), len(pixels))
    if len(prompts) not in (1, count) or len(pixels) not in (1, count):
        raise ValueError(
            f"image holds {len(pixels)} images for {len(prompts)} prompts: give one prompt, one image, or as many of "
            "each"
        )
    if len(prompts) == 1:
        prompts, negative_prompts = prompts * count, negative_prompts * count
    pixels, mask = (tensor.expand(count, -1, -1, -1) for tensor in (pixels, mask))
    repeat = num_images_per_prompt
    return (
        pixels.repeat_interleave(repeat, dim=0),
        mask.repeat_interleave(repeat, dim=0),
        [text for text in prompts for _ in range(repeat)],
        [text for text in negative_prompts for _ in range(repeat)],
    )
