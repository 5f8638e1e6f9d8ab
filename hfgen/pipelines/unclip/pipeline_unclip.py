"""unCLIP (Ramesh et al. 2022, "Hierarchical Text-Conditional Image Generation with CLIP Latents"): a prior maps a
CLIP text embedding to a CLIP image embedding, and a diffusion decoder draws an image from that image embedding.
Because the decoder is conditioned on CLIP's image embedding alone, an input image's own embedding gives variations
of it (the same content, other details).

diffusers' `UnCLIPPipeline` and `UnCLIPImageVariationPipeline` hold Karlo's 64 px decoder with its text projection
and two super-resolution stages; this pipeline holds what an unCLIP trained at one resolution needs, both tasks in one
call: the prior (diffusers' `PriorTransformer` with an `UnCLIPScheduler`, or hfgen's regression prior), the decoder (a
diffusers `UNet2DConditionModel` whose `addition_embed_type="image"` adds the projected embedding to its timestep
embedding and whose `encoder_hid_dim_type="image_proj"` turns it into context tokens for cross-attention, as
Kandinsky 2.2's decoder does) and the frozen CLIP towers that embed prompts and images.
"""

from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from diffusers import PriorTransformer, UnCLIPScheduler, UNet2DConditionModel
from diffusers.image_processor import VaeImageProcessor
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from transformers import CLIPModel, CLIPTextModelWithProjection, CLIPTokenizer, CLIPVisionModelWithProjection
from transformers.image_processing_utils import BaseImageProcessor

from ...models.unclip.modeling_unclip import UnCLIPRegressionPrior
from ..denoising import check_sampling_arguments, classifier_free_guidance, scheduler_step_kwargs, unet_sample_shape
from ..pipeline_checks import check_generator, check_latents, check_output_type, check_positive_int
from ..pipeline_folder import PipelineFolderMixin

# Classifier-free guidance of the prior (text embedding against the empty prompt's) and of the decoder (image
# embedding against the zero embedding), and the steps of each, in the folders train_unclip.py writes and in its
# metrics. On the digits' default run (benchmarks/bench_unclip.py) decoder guidance 3 bought 1.4 points of prompt
# accuracy (100% against 98.6%) for a far worse FID (36.7 against 5.45) and recall (0.21 against 0.69): the image
# embedding already fixes the class, so the decoder samples unguided, in one pass per step.
PRIOR_GUIDANCE_SCALE = 2.0
DECODER_GUIDANCE_SCALE = 1.0
PRIOR_NUM_INFERENCE_STEPS = 25
DECODER_NUM_INFERENCE_STEPS = 25


@dataclass
class UnCLIPPipelineOutput(BaseOutput):
    """
    Args:
        images (`list[PIL.Image.Image]`, `np.ndarray` or `torch.Tensor`):
            The images as asked by `output_type` (PIL images, a `(batch, height, width, channels)` array in [0, 1] or a
            `(batch, channels, height, width)` tensor in [0, 1]).
        latents (`torch.Tensor` of shape `(batch, channels, height, width)`):
            The noise the decoder started from.
        image_embeds (`torch.Tensor` of shape `(batch, embedding_dim)`):
            The unit-norm CLIP image embeddings the decoder drew them from: the prior's for prompts, the input
            images' own for variations.
    """

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    latents: torch.Tensor
    image_embeds: torch.Tensor


def clip_towers(clip: CLIPModel) -> tuple[CLIPTextModelWithProjection, CLIPVisionModelWithProjection]:
    """The text and vision towers of a `CLIPModel` (each with its projection) as the two models the pipeline holds,
    with the same weights: a CLIP folder (train_clip.py's, or a Hub CLIP) is one `CLIPModel`, whose checkpoint the
    tower classes cannot load on their own (their projection sizes come from `CLIPConfig.projection_dim`)."""
    weights = clip.state_dict()
    towers = []
    for tower_class, sub_config, prefixes in (
        (CLIPTextModelWithProjection, clip.config.text_config, ("text_model.", "text_projection.")),
        (CLIPVisionModelWithProjection, clip.config.vision_config, ("vision_model.", "visual_projection.")),
    ):
        config = sub_config.__class__.from_dict({**sub_config.to_dict(), "projection_dim": clip.config.projection_dim})
        tower = tower_class(config)
        tower.load_state_dict({key: value for key, value in weights.items() if key.startswith(prefixes)})
        towers.append(tower.eval())
    return towers[0], towers[1]


def clip_pixels(images: torch.Tensor, image_size: int, image_mean, image_std) -> torch.Tensor:
    """Images in [-1, 1] (greyscale or RGB, any square size) as CLIP's vision tower takes them: resized to its
    `image_size` (bicubic, antialiased), RGB, normalised with the image processor's mean and std on the [0, 1] scale.
    Training and the pipeline embed tensors this one way, so the decoder sees at sampling time the embeddings it was
    trained on."""
    if images.shape[-1] != image_size or images.shape[-2] != image_size:
        images = F.interpolate(
            images, size=(image_size, image_size), mode="bicubic", antialias=True, align_corners=False
        )
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    mean = torch.tensor(image_mean, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    std = torch.tensor(image_std, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    return ((images.clamp(-1, 1) + 1) / 2 - mean) / std


def prior_embedding_dim(prior: PriorTransformer | UnCLIPRegressionPrior) -> int:
    """The width of the image embeddings `prior` makes."""
    if isinstance(prior, PriorTransformer):
        return prior.config.clip_embed_dim or prior.config.embedding_dim
    return prior.config.embedding_dim


def prior_text_inputs(prior: PriorTransformer, text_embeds, hidden_states, attention_mask) -> dict:
    """The text conditioning of a `PriorTransformer` call: the text embedding, and the text encoder's hidden states
    with their padding mask when the prior attends to them (`encoder_hid_proj_type="linear"`, which needs the text
    encoder's hidden size to be the embedding size, as in OpenAI's CLIPs and train_clip.py's)."""
    if prior.encoder_hidden_states_proj is None:
        return {"proj_embedding": text_embeds}
    return {"proj_embedding": text_embeds, "encoder_hidden_states": hidden_states, "attention_mask": attention_mask}


def check_decoder(decoder: UNet2DConditionModel, embedding_dim: int) -> None:
    """Raise unless `decoder` is conditioned on `embedding_dim`-wide image embeddings the way this pipeline passes
    them (`added_cond_kwargs={"image_embeds": ...}`)."""
    config = decoder.config
    if config.addition_embed_type != "image" and config.encoder_hid_dim_type != "image_proj":
        raise ValueError(
            f"the decoder is a UNet2DConditionModel with addition_embed_type {config.addition_embed_type!r} and "
            f"encoder_hid_dim_type {config.encoder_hid_dim_type!r}: an unCLIP decoder takes the image embedding "
            "through addition_embed_type='image' and/or encoder_hid_dim_type='image_proj' (as train_unclip.py builds "
            "it)"
        )
    if config.encoder_hid_dim != embedding_dim:
        raise ValueError(
            f"the decoder takes {config.encoder_hid_dim}-wide image embeddings (encoder_hid_dim) but the CLIP model's "
            f"are {embedding_dim}-wide (projection_dim)"
        )


class UnCLIPPipeline(PipelineFolderMixin, DiffusionPipeline):
    r"""
    Text-to-image generation and image variations with unCLIP: prompt -> CLIP text embedding -> prior -> CLIP image
    embedding -> decoder -> image; or image -> CLIP image embedding -> decoder -> variations of the image.

    Parameters:
        prior ([`~diffusers.PriorTransformer`] or [`UnCLIPRegressionPrior`]):
            The diffusion prior, which denoises a standardised image embedding (predicting it, `prediction_type
            "sample"`) given the text embedding and the text encoder's hidden states, its `clip_mean` / `clip_std`
            undoing the standardisation; or the regression prior, one deterministic prediction.
        decoder ([`~diffusers.UNet2DConditionModel`]):
            The pixel-space denoiser conditioned on the unit-norm image embedding (`added_cond_kwargs={"image_embeds":
            ...}`); the zero embedding is its unconditional input.
        text_encoder ([`~transformers.CLIPTextModelWithProjection`]):
            CLIP's text tower (frozen): `text_embeds` for the prior and, for the diffusion prior, its last hidden
            states.
        tokenizer ([`~transformers.CLIPTokenizer`]):
            Prompts are padded to its `model_max_length`.
        image_encoder ([`~transformers.CLIPVisionModelWithProjection`]):
            CLIP's vision tower (frozen): the embeddings of input images for variations.
        feature_extractor ([`~transformers.image_processing_utils.BaseImageProcessor`]):
            CLIP's image processor: it prepares PIL input images, and its mean and std normalise tensors.
        decoder_scheduler ([`~diffusers.SchedulerMixin`]):
            The decoder's discrete-time scheduler (DDPM with clipped estimates in the folders train_unclip.py writes).
        prior_scheduler ([`~diffusers.UnCLIPScheduler`], *optional*):
            The diffusion prior's scheduler; None with the regression prior.
    """

    model_cpu_offload_seq = "text_encoder->image_encoder->prior->decoder"
    _optional_components = ["prior_scheduler"]

    def __init__(
        self,
        prior: PriorTransformer | UnCLIPRegressionPrior,
        decoder: UNet2DConditionModel,
        text_encoder: CLIPTextModelWithProjection,
        tokenizer: CLIPTokenizer,
        image_encoder: CLIPVisionModelWithProjection,
        feature_extractor: BaseImageProcessor,
        decoder_scheduler: SchedulerMixin,
        prior_scheduler: UnCLIPScheduler | None = None,
    ):
        super().__init__()
        embedding_dim = text_encoder.config.projection_dim
        if image_encoder.config.projection_dim != embedding_dim:
            raise ValueError(
                f"the text encoder's embeddings are {embedding_dim}-wide but the image encoder's are "
                f"{image_encoder.config.projection_dim}-wide: give the two towers of one CLIP model"
            )
        check_decoder(decoder, embedding_dim)
        if isinstance(prior, PriorTransformer) and prior_scheduler is None:
            raise ValueError("a PriorTransformer prior samples with a prior_scheduler (an UnCLIPScheduler): give one")
        if prior_embedding_dim(prior) != embedding_dim:
            raise ValueError(
                f"the prior makes {prior_embedding_dim(prior)}-wide image embeddings but the CLIP model's are "
                f"{embedding_dim}-wide"
            )
        self.register_modules(
            prior=prior,
            decoder=decoder,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            image_encoder=image_encoder,
            feature_extractor=feature_extractor,
            decoder_scheduler=decoder_scheduler,
            prior_scheduler=prior_scheduler,
        )
        self.image_processor = VaeImageProcessor(
            vae_scale_factor=1, do_resize=False, do_convert_grayscale=decoder.config.out_channels == 1
        )

    @property
    def _sample_shape(self) -> tuple[int, int, int]:
        return unet_sample_shape(self.decoder)

    # --- CLIP ---

    @torch.no_grad()
    def encode_prompt(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`(text_embeds, last_hidden_state, attention_mask)` of `prompts`, padded to the tokenizer's
        `model_max_length`: what the priors are conditioned on."""
        inputs = self.tokenizer(
            prompts,
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).to(self._execution_device)
        output = self.text_encoder(input_ids=inputs.input_ids, attention_mask=inputs.attention_mask)
        return output.text_embeds, output.last_hidden_state, inputs.attention_mask.bool()

    @torch.no_grad()
    def encode_image(self, image) -> torch.Tensor:
        """Unit-norm CLIP image embeddings `(batch, embedding_dim)` of PIL images (prepared by the feature extractor)
        or of an array / tensor in [0, 1] (`(batch, height, width, channels)` / `(batch, channels, height,
        width)`)."""
        device, dtype = self._execution_device, self.image_encoder.dtype
        if isinstance(image, PIL.Image.Image) or (
            isinstance(image, (list, tuple)) and image and all(isinstance(item, PIL.Image.Image) for item in image)
        ):
            pixels = self.feature_extractor(images=image, return_tensors="pt").pixel_values
        elif isinstance(image, (np.ndarray, torch.Tensor)):
            images = torch.from_numpy(image) if isinstance(image, np.ndarray) else image
            images = images.unsqueeze(0) if images.ndim == 3 else images
            if isinstance(image, np.ndarray) and images.ndim == 4:
                # arrays are channels-last, as diffusers' image processors take them; one image may come unbatched
                images = images.permute(0, 3, 1, 2)
            if images.ndim != 4 or images.shape[1] not in (1, 3):
                raise ValueError(
                    f"image must be (batch, channels, height, width) with 1 or 3 channels, got {tuple(images.shape)}"
                )
            if images.min() < 0 or images.max() > 1:
                raise ValueError(
                    f"image holds values in [{images.min().item():.3g}, {images.max().item():.3g}]: give images in "
                    "[0, 1]"
                )
            pixels = clip_pixels(
                images.float() * 2 - 1,
                self.image_encoder.config.image_size,
                self.feature_extractor.image_mean,
                self.feature_extractor.image_std,
            )
        else:
            raise ValueError(
                "image must be a PIL image, a list of them, an array or a tensor in [0, 1], got "
                f"{type(image).__name__}"
            )
        embeds = self.image_encoder(pixel_values=pixels.to(device=device, dtype=dtype)).image_embeds
        return F.normalize(embeds, dim=-1)

    # --- the two stages ---

    def prior_image_embeddings(
        self, prompts: list[str], guidance_scale: float, num_inference_steps: int, generator
    ) -> torch.Tensor:
        """Unit-norm image embeddings for `prompts` (one per prompt): the regression prior's prediction, or a sample
        of the diffusion prior, guided against the empty prompt when `guidance_scale` is not 1."""
        if isinstance(self.prior, UnCLIPRegressionPrior):
            text_embeds, _, _ = self.encode_prompt(prompts)
            return self.prior(text_embeds.to(self.prior.dtype)).image_embeds
        guided = guidance_scale != 1
        text_embeds, hidden_states, mask = self.encode_prompt(([""] * len(prompts) if guided else []) + prompts)
        batch_size, width = len(prompts), prior_embedding_dim(self.prior)
        # 1. start from noise in the prior's standardised space
        sample = randn_tensor(
            (batch_size, width), generator=generator, device=self._execution_device, dtype=self.prior.dtype
        )
        sample = sample * self.prior_scheduler.init_noise_sigma
        self.prior_scheduler.set_timesteps(num_inference_steps, device=self._execution_device)
        timesteps = self.prior_scheduler.timesteps
        for index, timestep in enumerate(self.progress_bar(timesteps)):
            # 2. the prior predicts the clean embedding under the prompt (and the empty prompt, for guidance)
            model_input = torch.cat([sample] * 2) if guided else sample
            predicted = self.prior(
                model_input, timestep=timestep, **prior_text_inputs(self.prior, text_embeds, hidden_states, mask)
            ).predicted_image_embedding
            if guided:
                unconditional, conditional = predicted.chunk(2)
                predicted = classifier_free_guidance(unconditional, conditional, guidance_scale)
            # 3. one step of the sampler, to the next timestep of the shortened schedule
            previous = timesteps[index + 1] if index + 1 < len(timesteps) else None
            sample = self.prior_scheduler.step(
                predicted, timestep=timestep, sample=sample, generator=generator, prev_timestep=previous
            ).prev_sample
        # 4. back to CLIP's space, on the unit sphere the decoder was trained on
        return F.normalize(self.prior.post_process_latents(sample), dim=-1)

    def decode(
        self,
        image_embeds: torch.Tensor,
        guidance_scale: float,
        num_inference_steps: int,
        eta: float,
        generator,
        latents: torch.Tensor,
    ) -> torch.Tensor:
        """The decoder's sampling loop from `latents` under `image_embeds`, guided against the zero embedding when
        `guidance_scale` is not 1: images in [-1, 1]."""
        guided = guidance_scale != 1
        embeds = image_embeds.to(self.decoder.dtype)
        if guided:
            embeds = torch.cat([torch.zeros_like(embeds), embeds])
        step_kwargs = scheduler_step_kwargs(self.decoder_scheduler, generator, eta)
        self.decoder_scheduler.set_timesteps(num_inference_steps, device=latents.device)
        sample = latents * self.decoder_scheduler.init_noise_sigma
        for timestep in self.progress_bar(self.decoder_scheduler.timesteps):
            # 1. predict under the embedding (and the zero embedding, for guidance)
            model_input = torch.cat([sample] * 2) if guided else sample
            model_input = self.decoder_scheduler.scale_model_input(model_input, timestep)
            prediction = self.decoder(
                model_input, timestep, encoder_hidden_states=None, added_cond_kwargs={"image_embeds": embeds}
            ).sample
            if guided:
                unconditional, conditional = prediction.chunk(2)
                prediction = classifier_free_guidance(unconditional, conditional, guidance_scale)
            # 2. one step of the sampler
            sample = self.decoder_scheduler.step(prediction, timestep, sample, **step_kwargs).prev_sample
        return sample

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        image: PIL.Image.Image | list[PIL.Image.Image] | np.ndarray | torch.Tensor | None = None,
        image_embeds: torch.Tensor | None = None,
        num_images_per_prompt: int = 1,
        prior_guidance_scale: float = PRIOR_GUIDANCE_SCALE,
        prior_num_inference_steps: int = PRIOR_NUM_INFERENCE_STEPS,
        guidance_scale: float = DECODER_GUIDANCE_SCALE,
        num_inference_steps: int = DECODER_NUM_INFERENCE_STEPS,
        eta: float = 0.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        r"""
        Generate images from prompts, or variations of images.

        Args:
            prompt (`str` or `list[str]`, *optional*):
                Text-to-image: what to draw, e.g. `"a handwritten digit seven"`.
            image (`PIL.Image.Image`, `list[PIL.Image.Image]`, `np.ndarray` or `torch.Tensor`, *optional*):
                Image variations: the images to vary (PIL, or an array / tensor in [0, 1]); they are embedded by
                CLIP's vision tower and the decoder draws new images from the embeddings.
            image_embeds (`torch.Tensor` of shape `(batch, embedding_dim)`, *optional*):
                CLIP image embeddings to decode directly (e.g. interpolations); normalised to unit norm first.
            num_images_per_prompt (`int`, defaults to 1):
                Images drawn for each prompt, input image or embedding.
            prior_guidance_scale (`float`, defaults to 2.0):
                Classifier-free guidance of the diffusion prior against the empty prompt (1: none); unused by the
                regression prior and for variations.
            prior_num_inference_steps (`int`, defaults to 25):
                Steps of the diffusion prior.
            guidance_scale (`float`, defaults to 1.0):
                Classifier-free guidance of the decoder against the zero embedding (1: none, one pass per step).
            num_inference_steps (`int`, defaults to 25):
                Denoising steps of the decoder.
            eta (`float`, defaults to 0.0):
                DDIM's noise level; only for decoder schedulers whose `step` takes it.
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*):
                Makes sampling deterministic; a list gives one generator per image (its prior noise, then its decoder
                noise).
            latents (`torch.Tensor` of shape `(batch, channels, height, width)`, *optional*):
                Standard normal noise for the decoder to start from, one per image.
            output_type (`str`, defaults to `"pil"`):
                `"pil"`, `"np"` or `"pt"`.
            return_dict (`bool`, defaults to `True`):
                Return an [`UnCLIPPipelineOutput`] instead of a tuple `(images, latents, image_embeds)`.
        """
        # 1. check inputs: exactly one of prompt, image and image_embeds
        check_output_type(output_type)
        check_sampling_arguments(num_inference_steps, eta)
        check_positive_int(prior_num_inference_steps, "prior_num_inference_steps")
        check_positive_int(num_images_per_prompt, "num_images_per_prompt")
        given = [
            name
            for name, value in (("prompt", prompt), ("image", image), ("image_embeds", image_embeds))
            if value is not None
        ]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of prompt (text-to-image), image (variations) and image_embeds, got "
                f"{', '.join(given) or 'none'}"
            )
        for name, scale in (("prior_guidance_scale", prior_guidance_scale), ("guidance_scale", guidance_scale)):
            if isinstance(scale, bool) or not isinstance(scale, (int, float)) or scale < 0:
                raise ValueError(f"{name} must be a number >= 0 (1: no guidance), got {scale!r}")
        prompts = None
        if prompt is not None:
            prompts = [prompt] if isinstance(prompt, str) else prompt
            if not isinstance(prompts, (list, tuple)) or not prompts or not all(isinstance(p, str) for p in prompts):
                raise ValueError(f"prompt must be a string or a non-empty list of strings, got {prompt!r}")
            prompts = [text for text in prompts for _ in range(num_images_per_prompt)]
            batch_size = len(prompts)
        elif image is not None:
            embeds = self.encode_image(image)
            batch_size = embeds.shape[0] * num_images_per_prompt
        else:
            width = self.text_encoder.config.projection_dim
            if not isinstance(image_embeds, torch.Tensor) or image_embeds.ndim != 2 or image_embeds.shape[1] != width:
                shape = (
                    tuple(image_embeds.shape)
                    if isinstance(image_embeds, torch.Tensor)
                    else type(image_embeds).__name__
                )
                raise ValueError(f"image_embeds must be a (batch, {width}) tensor, got {shape}")
            embeds = F.normalize(image_embeds.to(self._execution_device, torch.float32), dim=-1)
            batch_size = embeds.shape[0] * num_images_per_prompt
        check_generator(generator, batch_size)

        # 2. the image embeddings: the prior's for prompts, the given or input images' own otherwise
        if prompts is not None:
            embeds = self.prior_image_embeddings(prompts, prior_guidance_scale, prior_num_inference_steps, generator)
        else:
            embeds = embeds.repeat_interleave(num_images_per_prompt, dim=0)

        # 3. the decoder's starting noise
        device, dtype = self._execution_device, self.decoder.dtype
        if latents is None:
            latents = randn_tensor((batch_size, *self._sample_shape), generator=generator, device=device, dtype=dtype)
        else:
            check_latents(latents, self._sample_shape)
            if latents.shape[0] != batch_size:
                raise ValueError(
                    f"latents has {latents.shape[0]} rows but the call makes {batch_size} images: give one row per "
                    "image"
                )
            latents = latents.to(device=device, dtype=dtype)

        # 4. decode the embeddings into images
        sample = self.decode(embeds, guidance_scale, num_inference_steps, eta, generator, latents)
        images = self.image_processor.postprocess(sample, output_type=output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images, latents, embeds)
        return UnCLIPPipelineOutput(images=images, latents=latents, image_embeds=embeds)
