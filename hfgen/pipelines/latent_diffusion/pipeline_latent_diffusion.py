"""Text-to-image latent diffusion (Rombach et al. 2022) whose first stage is hfgen's `VAEModel` or diffusers'
`AutoencoderKL`, with classifier-free guidance, negative prompts, any diffusers scheduler and LoRA loading.

diffusers' `StableDiffusionPipeline` needs an `AutoencoderKL` and brings a safety checker and image encoder that a
small model trained on one's own images has no use for; this pipeline takes either first stage, checks its
arguments the way every hfgen pipeline does, and loads diffusers-format LoRA files (`load_lora_weights`) as the
Stable Diffusion pipelines do.
"""

from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel, VQModel
from diffusers.image_processor import VaeImageProcessor
from diffusers.loaders import StableDiffusionLoraLoaderMixin
from diffusers.models.embeddings import get_timestep_embedding
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from transformers import CLIPTextModel, CLIPTokenizer

from ...models.vae.modeling_vae import VAEModel
from ..denoising import (
    check_sampling_arguments,
    classifier_free_guidance,
    scheduler_step_kwargs,
    unet_sample_shape,
)
from ..pipeline_checks import IMAGE_OUTPUT_TYPES, check_generator, check_latents, check_output_type, check_positive_int
from ..pipeline_folder import PipelineFolderMixin

# "latent" returns the denoised latents undecoded.
OUTPUT_TYPES = (*IMAGE_OUTPUT_TYPES, "latent")


@dataclass
class LatentDiffusionPipelineOutput(BaseOutput):
    """
    Args:
        images (`list[PIL.Image.Image]`, `np.ndarray` or `torch.Tensor`):
            The images as asked by `output_type` (PIL images, a `(batch, height, width, channels)` array in [0, 1], a
            `(batch, channels, height, width)` tensor in [0, 1]), or the denoised latents for `"latent"`.
        latents (`torch.Tensor` of shape `(batch, latent_channels, latent_height, latent_width)`):
            The noise the sampling started from (before the scheduler's `init_noise_sigma`).
        prompts (`list[str]`):
            The prompt of each image (each prompt repeated `num_images_per_prompt` times).
    """

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    latents: torch.Tensor
    prompts: list[str]


def _as_prompt_list(value, name: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and value and all(isinstance(item, str) for item in value):
        return list(value)
    raise ValueError(f"{name} must be a string or a non-empty list of strings, got {value!r}")


def guidance_embedding(guidance_scale: torch.Tensor, embedding_dim: int) -> torch.Tensor:
    """The sinusoidal embedding of classifier-free guidance scales that a latent consistency model (Luo et al. 2023)
    takes as its UNet's `timestep_cond`: that of `w = guidance_scale - 1` (the paper's `eps_u + (1 + w)(eps_c - eps_u)`
    is guidance scale `1 + w`), scaled by 1000 like a timestep, as diffusers' `LatentConsistencyModelPipeline` embeds
    it. `(len(guidance_scale), embedding_dim)`."""
    return get_timestep_embedding((guidance_scale - 1) * 1000, embedding_dim, flip_sin_to_cos=False)


class LatentDiffusionPipeline(PipelineFolderMixin, DiffusionPipeline, StableDiffusionLoraLoaderMixin):
    r"""
    Text-to-image generation with a UNet denoising the latents of a frozen autoencoder, conditioned on a CLIP text
    encoder through cross-attention.

    Parameters:
        vae ([`VAEModel`], [`~diffusers.AutoencoderKL`] or [`~diffusers.VQModel`]):
            The first stage: latents are `encode(x).latent_dist.sample() * config.scaling_factor` (a VQModel's:
            `encode(x).latents * config.scaling_factor`, before quantisation), images
            `decode(latents / config.scaling_factor).sample` (a VQModel quantises them to its nearest codes first).
        text_encoder ([`~transformers.CLIPTextModel`]):
            Its last hidden states are the UNet's `encoder_hidden_states`.
        tokenizer ([`~transformers.CLIPTokenizer`]):
            Prompts are padded to its `model_max_length`.
        unet ([`~diffusers.UNet2DConditionModel`]):
            The latent denoiser, with `cross_attention_dim` equal to the text encoder's hidden size.
        scheduler ([`~diffusers.SchedulerMixin`]):
            Any of diffusers' discrete-time schedulers (those with `step`: DDIM, DDPM, DPM-Solver, Euler, LCM, ...).

    A UNet with a guidance embedding (`time_cond_proj_dim`: a latent consistency model that
    training_scripts/diffusion/train_lcm_distill.py distilled) has the guidance folded in: it gets `guidance_scale` as
    its `timestep_cond` ([`guidance_embedding`]) and runs once per step, without an unconditional branch.
    """

    model_cpu_offload_seq = "text_encoder->unet->vae"

    def __init__(
        self,
        vae: VAEModel | AutoencoderKL | VQModel,
        text_encoder: CLIPTextModel,
        tokenizer: CLIPTokenizer,
        unet: UNet2DConditionModel,
        scheduler: SchedulerMixin,
    ):
        super().__init__()
        self.check_unet(unet)
        self.register_modules(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler)
        self.image_processor = VaeImageProcessor(
            vae_scale_factor=1, do_convert_grayscale=vae.config.out_channels == 1, resample="bicubic"
        )

    def check_unet(self, unet: UNet2DConditionModel) -> None:
        """Raise unless `unet` denoises latents alone (as many input channels as output channels): an inpainting
        UNet, which also takes a mask and the masked image's latents, belongs to `LatentDiffusionInpaintPipeline`."""
        if unet.config.in_channels != unet.config.out_channels:
            raise ValueError(
                f"the unet takes {unet.config.in_channels} input channels for {unet.config.out_channels}-channel "
                f"latents: an inpainting UNet (latents, mask, masked-image latents) loads with "
                "LatentDiffusionInpaintPipeline, not this text-to-image pipeline"
            )

    @classmethod
    def load_lora_into_text_encoder(
        cls,
        state_dict,
        network_alphas,
        text_encoder,
        prefix=None,
        lora_scale=1.0,
        adapter_name=None,
        _pipeline=None,
        low_cpu_mem_usage=False,
        hotswap=False,
        metadata=None,
    ):
        """Load the text encoder's LoRA adapters of a diffusers-format file (the `text_encoder.` keys) with peft.

        diffusers hands them to transformers' `load_adapter`, which transformers 5 refuses with any peft before
        0.22 (not released yet); peft's own `inject_adapter_in_model` does the same job, so a file saved with text
        encoder adapters (DreamBooth `--train_text_encoder`) loads with `load_lora_weights` as diffusers intends.
        """
        from diffusers.utils import convert_state_dict_to_peft, get_adapter_name
        from peft import LoraConfig, inject_adapter_in_model, set_peft_model_state_dict

        prefix = prefix or cls.text_encoder_name
        weights = {key[len(prefix) + 1 :]: value for key, value in state_dict.items() if key.startswith(f"{prefix}.")}
        if not weights:
            return
        weights = convert_state_dict_to_peft(weights)
        settings = {
            key[len(prefix) + 1 :]: value for key, value in (metadata or {}).items() if key.startswith(f"{prefix}.")
        }
        if not settings:  # a file without metadata: rank from the weights, alpha = rank as diffusers assumes
            rank = next(value.shape[0] for key, value in weights.items() if "lora_A" in key)
            modules = sorted({key.split(".lora_")[0].rsplit(".", 1)[-1] for key in weights})
            settings = {"r": rank, "lora_alpha": rank, "target_modules": modules}
        config = LoraConfig(**settings)
        adapter_name = adapter_name or get_adapter_name(text_encoder)
        inject_adapter_in_model(config, text_encoder, adapter_name=adapter_name)
        text_encoder.peft_config = {**getattr(text_encoder, "peft_config", {}), adapter_name: config}
        result = set_peft_model_state_dict(text_encoder, weights, adapter_name=adapter_name)
        unexpected = [key for key in result.unexpected_keys if "lora" in key]
        if unexpected:
            raise ValueError(
                f"the LoRA file's text encoder weights do not fit this text encoder (e.g. {unexpected[0]!r}): load "
                "it on the base model it was trained on"
            )
        text_encoder.to(device=text_encoder.device, dtype=text_encoder.dtype)

    @property
    def _latent_shape(self) -> tuple[int, int, int]:
        return unet_sample_shape(self.unet)

    @property
    def image_size(self) -> tuple[int, int]:
        """`(height, width)` of the images the pipeline makes: the latent size times the first stage's
        downsampling."""
        _, height, width = self._latent_shape
        factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        return height * factor, width * factor

    @torch.no_grad()
    def encode_prompt(self, prompts: list[str]) -> torch.Tensor:
        """The text encoder's last hidden states of `prompts`, padded to the tokenizer's `model_max_length`:
        `(len(prompts), model_max_length, hidden_size)`."""
        input_ids = self.tokenizer(
            prompts,
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids
        return self.text_encoder(input_ids.to(self._execution_device))[0].to(self.unet.dtype)

    def check_prompts(self, prompt, negative_prompt, num_images_per_prompt, guidance_scale):
        """Check the prompt arguments and return one prompt and one negative prompt per image (`""` where none was
        given)."""
        check_positive_int(num_images_per_prompt, "num_images_per_prompt")
        prompts = _as_prompt_list(prompt, "prompt")
        negative_prompts = [""] * len(prompts)
        if negative_prompt is not None:
            negative_prompts = _as_prompt_list(negative_prompt, "negative_prompt")
            if len(negative_prompts) == 1:
                negative_prompts *= len(prompts)
            elif len(negative_prompts) != len(prompts):
                raise ValueError(
                    f"negative_prompt has {len(negative_prompts)} prompts for {len(prompts)} prompts: give one, or "
                    "one per prompt"
                )
        if isinstance(guidance_scale, bool) or not isinstance(guidance_scale, (int, float)) or guidance_scale < 0:
            raise ValueError(f"guidance_scale must be a number >= 0 (1: no guidance), got {guidance_scale!r}")
        prompts = [text for text in prompts for _ in range(num_images_per_prompt)]
        negative_prompts = [text for text in negative_prompts for _ in range(num_images_per_prompt)]
        return prompts, negative_prompts

    def prepare_latents(self, latents, batch_size: int, num_images_per_prompt: int, generator) -> torch.Tensor:
        """The starting noise: `latents` checked (one row per image), or drawn from `generator`."""
        device, dtype = self._execution_device, self.unet.dtype
        if latents is None:
            return randn_tensor((batch_size, *self._latent_shape), generator=generator, device=device, dtype=dtype)
        check_latents(latents, self._latent_shape)
        if latents.shape[0] != batch_size:
            raise ValueError(
                f"latents has {latents.shape[0]} rows but {batch_size // num_images_per_prompt} prompt(s) x "
                f"num_images_per_prompt={num_images_per_prompt} make {batch_size} images: give one row per image"
            )
        return latents.to(device=device, dtype=dtype)

    def decode_latents(self, sample: torch.Tensor, output_type: str):
        """Denoised latents as images of `output_type` (or themselves for `"latent"`)."""
        if output_type == "latent":
            return sample
        decoded = self.vae.decode(sample.to(self.vae.dtype) / self.vae.config.scaling_factor).sample
        return self.image_processor.postprocess(decoded, output_type=output_type)

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        negative_prompt: str | list[str] | None = None,
        num_images_per_prompt: int = 1,
        guidance_scale: float = 3.0,
        num_inference_steps: int = 25,
        eta: float = 0.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        r"""
        Generate images from text.

        Args:
            prompt (`str` or `list[str]`):
                What to draw, e.g. `"a handwritten digit seven"`; a list gives one group of images per prompt.
            negative_prompt (`str` or `list[str]`, *optional*):
                What to steer away from: the unconditional branch of guidance uses it instead of the empty prompt.
                One for all prompts, or one per prompt.
            num_images_per_prompt (`int`, defaults to 1):
                Images drawn for each prompt.
            guidance_scale (`float`, defaults to 3.0):
                Classifier-free guidance: 1 uses the conditional prediction alone (one network pass per step), larger
                values follow the prompt more closely at some cost in variety. A UNet with a guidance embedding takes
                it as its condition instead.
            num_inference_steps (`int`, defaults to 25):
                Denoising steps.
            eta (`float`, defaults to 0.0):
                DDIM's noise level; only for schedulers whose `step` takes it.
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*):
                Makes sampling deterministic; a list gives one generator per image.
            latents (`torch.Tensor` of shape `(batch, latent_channels, latent_height, latent_width)`, *optional*):
                Standard normal noise to start from, one per image.
            output_type (`str`, defaults to `"pil"`):
                `"pil"`, `"np"`, `"pt"` or `"latent"`.
            return_dict (`bool`, defaults to `True`):
                Return a [`LatentDiffusionPipelineOutput`] instead of a tuple `(images, latents, prompts)`.
        """
        # 1. check inputs
        check_output_type(output_type, OUTPUT_TYPES)
        check_sampling_arguments(num_inference_steps, eta)
        prompts, negative_prompts = self.check_prompts(prompt, negative_prompt, num_images_per_prompt, guidance_scale)
        batch_size = len(prompts)
        embeds_guidance = self.unet.config.time_cond_proj_dim is not None
        if embeds_guidance and negative_prompt is not None:
            raise ValueError(
                "negative_prompt: this UNet has its guidance folded in (time_cond_proj_dim, a latent consistency "
                "model), so there is no unconditional branch for a negative prompt to replace; leave it out"
            )
        check_generator(generator, batch_size)
        step_kwargs = scheduler_step_kwargs(self.scheduler, generator, eta)

        # 2. encode the prompts; the unconditional branch is only run when guidance needs it (never for a UNet that
        # embeds the guidance scale)
        guided = guidance_scale != 1 and not embeds_guidance
        text_embeddings = self.encode_prompt(negative_prompts + prompts if guided else prompts)
        timestep_cond = None
        if embeds_guidance:
            scales = torch.full((batch_size,), float(guidance_scale))
            timestep_cond = guidance_embedding(scales, self.unet.config.time_cond_proj_dim)
            timestep_cond = timestep_cond.to(device=self._execution_device, dtype=self.unet.dtype)

        # 3. prepare the starting noise
        latents = self.prepare_latents(latents, batch_size, num_images_per_prompt, generator)
        self.scheduler.set_timesteps(num_inference_steps, device=self._execution_device)
        sample = latents * self.scheduler.init_noise_sigma

        # 4. denoise, mixing the conditional and unconditional predictions at every step
        for timestep in self.progress_bar(self.scheduler.timesteps):
            model_input = torch.cat([sample] * 2) if guided else sample
            model_input = self.scheduler.scale_model_input(model_input, timestep)
            prediction = self.unet(
                model_input, timestep, encoder_hidden_states=text_embeddings, timestep_cond=timestep_cond
            ).sample
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
