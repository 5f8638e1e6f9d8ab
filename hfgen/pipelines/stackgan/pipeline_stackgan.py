"""Text-to-image pipeline around hfgen's StackGAN generator: a CLIP text encoder's pooled embedding of each prompt,
then stage I (and, by default, stage II) of the generator."""

from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
from diffusers.image_processor import VaeImageProcessor
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from transformers import CLIPTextModel, CLIPTokenizer

from ...models.stackgan.modeling_stackgan import StackGANGenerator, check_stage
from ..pipeline_checks import check_generator, check_latents, check_output_type, check_positive_int
from ..pipeline_folder import PipelineFolderMixin


@dataclass
class StackGANPipelineOutput(BaseOutput):
    """
    Args:
        images (`list[PIL.Image.Image]`, `np.ndarray` or `torch.Tensor`):
            PIL images, a `(batch, height, width, channels)` array in [0, 1], or a `(batch, channels, height, width)`
            tensor in [0, 1], as asked by `output_type`; at stage I's resolution for `stage=1`.
        latents (`torch.Tensor` of shape `(batch, latent_dim)`):
            The z the images were generated from.
        condition_noise (`torch.Tensor` of shape `(batch, 2, condition_dim)`):
            The eps of each stage's conditioning augmentation (stage II's drawn, unused, for `stage=1` too).
        prompts (`list[str]`):
            The prompt of each image (each prompt repeated `num_images_per_prompt` times).
    """

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    latents: torch.Tensor
    condition_noise: torch.Tensor
    prompts: list[str]


def prompt_list(prompt) -> list[str]:
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, (list, tuple)) and prompt and all(isinstance(item, str) for item in prompt):
        return list(prompt)
    raise ValueError(f"prompt must be a string or a non-empty list of strings, got {prompt!r}")


class StackGANPipeline(PipelineFolderMixin, DiffusionPipeline):
    r"""
    Text-to-image generation with a [`StackGANGenerator`] (Zhang et al. 2017): one forward pass per stage.

    Parameters:
        tokenizer ([`~transformers.CLIPTokenizer`]):
            Prompts are padded to its `model_max_length`.
        text_encoder ([`~transformers.CLIPTextModel`]):
            Its pooled output (the end-of-text token's last hidden state) is the generator's text embedding.
        gan ([`StackGANGenerator`]):
            The generator, with `text_embedding_dim` equal to the text encoder's hidden size. (Named `gan`, not
            `generator`, which is the argument that takes a `torch.Generator`.)

    Example:

    ```python
    >>> import tempfile, torch, hfgen
    >>> from hfgen.models.latent_diffusion import build_caption_text_encoder, write_caption_tokenizer
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     tokenizer = write_caption_tokenizer(["a handwritten digit seven"], folder, model_max_length=16)
    >>> text_encoder = build_caption_text_encoder(tokenizer, hidden_size=32)
    >>> gan = hfgen.StackGANGenerator(hfgen.StackGANConfig(text_embedding_dim=32))
    >>> pipe = hfgen.StackGANPipeline(tokenizer=tokenizer, text_encoder=text_encoder, gan=gan)
    >>> images = pipe("a handwritten digit seven", num_images_per_prompt=4, generator=torch.Generator().manual_seed(0))
    >>> images.images[0].size
    (32, 32)
    ```
    """

    model_cpu_offload_seq = "text_encoder->gan"

    def __init__(self, tokenizer: CLIPTokenizer, text_encoder: CLIPTextModel, gan: StackGANGenerator):
        super().__init__()
        if text_encoder.config.hidden_size != gan.config.text_embedding_dim:
            raise ValueError(
                f"the generator reads {gan.config.text_embedding_dim}-dimensional text embeddings but the text "
                f"encoder's hidden_size is {text_encoder.config.hidden_size}"
            )
        self.register_modules(tokenizer=tokenizer, text_encoder=text_encoder, gan=gan)
        self.image_processor = VaeImageProcessor(vae_scale_factor=1)

    @torch.no_grad()
    def encode_prompt(self, prompts: list[str]) -> torch.Tensor:
        """The text encoder's pooled embedding of each prompt: `(len(prompts), hidden_size)`."""
        input_ids = self.tokenizer(
            prompts,
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids
        return self.text_encoder(input_ids.to(self._execution_device)).pooler_output.to(self.gan.dtype)

    def prepare_noise(self, value, shape: tuple[int, ...], batch_size: int, name: str, generator) -> torch.Tensor:
        """`value` checked (one row per image), or drawn from `generator`."""
        device, dtype = self._execution_device, self.gan.dtype
        if value is None:
            return randn_tensor((batch_size, *shape), generator=generator, device=device, dtype=dtype)
        check_latents(value, shape, name)
        if value.shape[0] != batch_size:
            raise ValueError(
                f"{name} has {value.shape[0]} rows but the prompts make {batch_size} images: give one row per image"
            )
        return value.to(device=device, dtype=dtype)

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        num_images_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        condition_noise: torch.Tensor | None = None,
        stage: int = 2,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        r"""
        Generate images from text.

        Args:
            prompt (`str` or `list[str]`):
                What to draw, e.g. `"a handwritten digit seven"`; a list gives one group of images per prompt.
            num_images_per_prompt (`int`, defaults to 1):
                Images drawn for each prompt.
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*):
                Makes generation deterministic; a list gives one generator per image, image `i` drawing its z, then
                its conditioning noise, from `generator[i]`.
            latents (`torch.Tensor` of shape `(batch, latent_dim)`, *optional*):
                z to use instead of drawing it, one row per image.
            condition_noise (`torch.Tensor` of shape `(batch, 2, condition_dim)`, *optional*):
                The eps of stage I's and stage II's conditioning augmentations, instead of drawing them. Both are drawn
                for either stage, so a seed's stage-2 image refines that seed's stage-1 image.
            stage (`int`, defaults to 2):
                1: stage I's low-resolution images; 2: stage II's refinement of them at full resolution.
            output_type (`str`, defaults to `"pil"`):
                `"pil"`, `"np"` or `"pt"`.
            return_dict (`bool`, defaults to `True`):
                Return a [`StackGANPipelineOutput`] instead of a tuple `(images, latents, condition_noise, prompts)`.
        """
        # 1. check inputs
        check_output_type(output_type)
        check_stage(stage)
        check_positive_int(num_images_per_prompt, "num_images_per_prompt")
        prompts = [text for text in prompt_list(prompt) for _ in range(num_images_per_prompt)]
        batch_size = len(prompts)
        check_generator(generator, batch_size)
        config = self.gan.config

        # 2. encode the prompts
        text_embeds = self.encode_prompt(prompts)

        # 3. prepare the noise: z, then each stage's conditioning noise (per image from its generator, in that order)
        latents = self.prepare_noise(latents, (config.latent_dim,), batch_size, "latents", generator)
        condition_noise = self.prepare_noise(
            condition_noise, (2, config.condition_dim), batch_size, "condition_noise", generator
        )

        # 4. generate
        sample = self.gan(text_embeds, latents, condition_noise=condition_noise, stage=stage, return_dict=True).sample
        images = self.image_processor.postprocess(sample, output_type=output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images, latents, condition_noise, prompts)
        return StackGANPipelineOutput(images=images, latents=latents, condition_noise=condition_noise, prompts=prompts)


__all__ = ["StackGANPipeline", "StackGANPipelineOutput"]
