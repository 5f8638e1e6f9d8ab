"""Pipeline around a VQ-GAN: diffusers' `VQModel` as the autoencoder, and a transformers GPT-2 over its codes as the
prior that samples new images."""

from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
from diffusers.image_processor import VaeImageProcessor
from diffusers.models.autoencoders.vq_model import VQModel
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.utils import BaseOutput
from transformers import GPT2LMHeadModel

from ...models.vqgan.codebook import nearest_codes
from ..pipeline_checks import IMAGE_OUTPUT_TYPES, check_generator, check_latents, check_output_type, resolve_batch_size
from ..pipeline_folder import PipelineFolderMixin


@dataclass
class VQGANPipelineOutput(BaseOutput):
    """
    Args:
        images (`list[PIL.Image.Image]`, `np.ndarray` or `torch.Tensor`):
            The images, as asked by `output_type`: PIL images, a `(batch, height, width, channels)` array in [0, 1] or
            a `(batch, channels, height, width)` tensor in [0, 1].
        latents (`torch.Tensor` of shape `(batch, embed_dim, latent_size, latent_size)`):
            The latents before quantisation: those given, the encoder's output (`reconstruct`), or the codebook
            vectors of the sampled codes.
        codes (`torch.LongTensor` of shape `(batch, latent_size, latent_size)`):
            The code indices the images were decoded from.
    """

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    latents: torch.Tensor
    codes: torch.LongTensor


def vq_latent_shape(vqvae: VQModel) -> tuple[int, int, int]:
    """`(embed_dim, latent_size, latent_size)` of a `VQModel`'s quantised latents (one downsampling by 2 per block
    after the first)."""
    config = vqvae.config
    size = config.sample_size // 2 ** (len(config.block_out_channels) - 1)
    return (config.vq_embed_dim or config.latent_channels, size, size)


class VQGANPipeline(PipelineFolderMixin, DiffusionPipeline):
    r"""
    Pipeline for a VQ-GAN: `__call__` samples code sequences from the GPT-2 `prior` and decodes them with `vqvae`
    (or decodes given `latents`); `reconstruct` encodes, quantises and decodes given images.

    Images may be given as PIL images, or NumPy arrays and tensors in [0, 1], as in diffusers pipelines; they are
    resized to `vqvae.config.sample_size`.

    Parameters:
        vqvae ([`diffusers.VQModel`]):
            The autoencoder with its codebook (`vqvae.quantize.embedding`).
        prior ([`transformers.GPT2LMHeadModel`] or `None`):
            The token prior over the flattened code indices after a start token (id: the codebook size), see
            `hfgen.models.vqgan.prior`. None for a folder trained without one (`--prior_train_steps 0`): it then
            reconstructs and decodes given latents, but does not sample.

    Example:

    ```python
    >>> import torch, hfgen
    >>> from diffusers import VQModel
    >>> from transformers import GPT2LMHeadModel
    >>> from hfgen.models.vqgan import prior_config
    >>> vqvae = VQModel(in_channels=1, out_channels=1, block_out_channels=[8, 16], num_vq_embeddings=16,
    ...                 down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
    ...                 norm_num_groups=4, latent_channels=4, sample_size=16)
    >>> prior = GPT2LMHeadModel(prior_config(num_codes=16, num_tokens=64, hidden_size=16, num_layers=1, num_heads=2))
    >>> pipe = hfgen.VQGANPipeline(vqvae=vqvae, prior=prior.eval())
    >>> pipe(batch_size=2, generator=torch.Generator().manual_seed(0), top_k=8).codes.shape
    torch.Size([2, 8, 8])
    ```
    """

    model_cpu_offload_seq = "prior->vqvae"
    _optional_components = ["prior"]

    def __init__(self, vqvae: VQModel, prior: GPT2LMHeadModel):
        super().__init__()
        self.register_modules(vqvae=vqvae, prior=prior)
        self.image_processor = VaeImageProcessor(
            vae_scale_factor=1, do_convert_grayscale=vqvae.config.in_channels == 1, resample="bicubic"
        )

    # --- helpers ---

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return vq_latent_shape(self.vqvae)

    @property
    def num_codes(self) -> int:
        return self.vqvae.config.num_vq_embeddings

    def _preprocess(self, images) -> torch.Tensor:
        if isinstance(images, (PIL.Image.Image, np.ndarray, torch.Tensor)) and not (
            isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4
        ):
            images = [images]
        if len(images) == 0:
            raise ValueError("images is empty: give at least one image")
        size = self.vqvae.config.sample_size
        pixel_values = self.image_processor.preprocess(images, height=size, width=size)
        if pixel_values.shape[1] != self.vqvae.config.in_channels:
            raise ValueError(
                f"images have {pixel_values.shape[1]} channels but the VQ-GAN expects {self.vqvae.config.in_channels}"
            )
        return pixel_values.to(device=self._execution_device, dtype=self.vqvae.dtype)

    def quantize(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.LongTensor]:
        """The nearest code of every latent vector, as `VQModel.decode` finds it: `(codebook vectors, indices)`."""
        batch, channels, height, width = latents.shape
        vectors = latents.permute(0, 2, 3, 1).reshape(-1, channels)
        codes = nearest_codes(vectors, self.vqvae.quantize.embedding.weight).view(batch, height, width)
        return self.codebook_vectors(codes), codes

    def codebook_vectors(self, codes: torch.LongTensor) -> torch.Tensor:
        """Code indices `(batch, height, width)` as their codebook vectors `(batch, embed_dim, height, width)`."""
        batch, height, width = codes.shape
        shape = (batch, height, width, self.latent_shape[0])
        return self.vqvae.quantize.get_codebook_entry(codes.flatten(), shape)

    def _decode_output(self, latents, quantized, codes, output_type: str, return_dict: bool):
        decoded = self.vqvae.decode(quantized, force_not_quantize=True, return_dict=True).sample
        images = self.image_processor.postprocess(decoded, output_type=output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images, latents, codes)
        return VQGANPipelineOutput(images=images, latents=latents, codes=codes)

    @staticmethod
    def _draw(probabilities: torch.Tensor, generator) -> torch.LongTensor:
        """One code per row of `probabilities`, from `generator` (one, or one per row), on its device."""
        if isinstance(generator, (list, tuple)):
            draws = [
                torch.multinomial(row[None].to(g.device), 1, generator=g).to(probabilities.device)
                for row, g in zip(probabilities, generator, strict=True)
            ]
            return torch.cat(draws)[:, 0]
        device = probabilities.device if generator is None else generator.device
        return torch.multinomial(probabilities.to(device), 1, generator=generator).to(probabilities.device)[:, 0]

    def sample_codes(
        self, batch_size: int, generator=None, temperature: float = 1.0, top_k: int | None = None
    ) -> torch.LongTensor:
        """Code indices `(batch, latent_size, latent_size)` drawn token by token from the prior (with its key-value
        cache), the logits divided by `temperature` and, with `top_k`, cut to the `top_k` most likely codes."""
        _, height, width = self.latent_shape
        start = self.prior.config.bos_token_id
        tokens = torch.full((batch_size, 1), start, dtype=torch.long, device=self._execution_device)
        cache, drawn = None, []
        for _ in self.progress_bar(range(height * width)):
            output = self.prior(input_ids=tokens, cache=cache, use_cache=True)
            cache = output.cache
            # the start token is not a code: it is never drawn
            logits = output.logits[:, -1, : self.num_codes] / temperature
            if top_k is not None and top_k < self.num_codes:
                kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            tokens = self._draw(torch.softmax(logits, dim=-1), generator)[:, None]
            drawn.append(tokens)
        return torch.cat(drawn, dim=1).view(batch_size, height, width)

    # --- modes ---

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        r"""
        Sample images: codes drawn from the prior, or the nearest codes of given `latents`, decoded.

        Args:
            batch_size (`int`, *optional*):
                Number of images: the number of `latents` when they are given (and it must agree with them), else 1.
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*):
                Makes sampling deterministic; a list gives one generator per image, image `i` drawing its codes from
                `generator[i]`.
            latents (`torch.Tensor` of shape `(batch, embed_dim, latent_size, latent_size)`, *optional*):
                Latents to quantise and decode instead of sampling the prior (as `VQModel.decode` does).
            temperature (`float`, defaults to 1.0):
                Divides the prior's logits: below 1 sharper, above 1 more varied.
            top_k (`int`, *optional*):
                Draw each code among the `top_k` most likely only.
            output_type (`str`, defaults to `"pil"`):
                `"pil"`, `"np"` or `"pt"`.
            return_dict (`bool`, defaults to `True`):
                Return a [`VQGANPipelineOutput`] instead of a tuple `(images, latents, codes)`.
        """
        # 1. check inputs
        check_output_type(output_type, IMAGE_OUTPUT_TYPES)
        if latents is not None:
            check_latents(latents, self.latent_shape)
        batch_size = resolve_batch_size(batch_size, latents=latents)
        check_generator(generator, batch_size)
        if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or not temperature > 0:
            raise ValueError(f"temperature must be a positive number, got {temperature!r}")
        if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
            raise ValueError(f"top_k must be a positive int or None, got {top_k!r}")
        if latents is None and self.prior is None:
            raise ValueError(
                "this VQGANPipeline has no prior (trained with --prior_train_steps 0), so it cannot sample: "
                "use pipeline.reconstruct(images), or pass latents to decode"
            )
        # 2. codes: the nearest of the given latents, or drawn from the prior
        if latents is not None:
            latents = latents.to(device=self._execution_device, dtype=self.vqvae.dtype)
            quantized, codes = self.quantize(latents)
        else:
            codes = self.sample_codes(batch_size, generator, temperature, top_k)
            quantized = latents = self.codebook_vectors(codes)
        # 3. decode
        return self._decode_output(latents, quantized, codes, output_type, return_dict)

    @torch.no_grad()
    def reconstruct(self, images, output_type: str = "pil", return_dict: bool = True):
        r"""
        Encode `images`, replace every latent vector by its nearest code, and decode: what the VQ-GAN keeps of them.
        """
        # 1. check inputs
        check_output_type(output_type, IMAGE_OUTPUT_TYPES)
        pixel_values = self._preprocess(images)
        # 2. encode and quantise
        latents = self.vqvae.encode(pixel_values).latents
        quantized, codes = self.quantize(latents)
        # 3. decode
        return self._decode_output(latents, quantized, codes, output_type, return_dict)


__all__ = ["VQGANPipeline", "VQGANPipelineOutput", "vq_latent_shape"]
