"""The VQ-GAN autoencoder step's pieces that train_vqgan.py runs in its loop (Esser et al. 2021), kept with the family
(hfgen.training knows no family).

`VQGANAutoencoder` is the forward a data-parallel wrapper needs: `diffusers.VQModel` encodes, `quantize` replaces
every latent vector by its nearest code (the loss terms kept apart), and the decoder maps the codes back to pixels.
`update_codebook` is what follows every optimizer step: the code counts summed over the processes, the EMA update of
the codebook when it is on, and the restart of codes unused for too long, the same on every process.
"""

import torch
from diffusers import VQModel
from torch import nn

from .code_restarts import DeadCodeRestarts
from .codebook import QuantizerOutput, code_counts, quantize
from .codebook_ema import EMACodebook


class VQGANAutoencoder(nn.Module):
    r"""
    A `VQModel`'s encode, quantise and decode as one forward pass (what `accelerator.prepare` wraps).

    Args:
        vqvae (`diffusers.VQModel`): the autoencoder, trained in place; saved alone at the end of the run.
    """

    def __init__(self, vqvae: VQModel):
        super().__init__()
        self.vqvae = vqvae

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, QuantizerOutput]:
        """Returns `(reconstructions, latents, quantizer_output)` for images in [-1, 1]: the decoded codes, the
        encoder's latents before quantisation, and the codes with their loss terms."""
        latents = self.vqvae.encode(pixel_values).latents
        quantized = quantize(latents, self.vqvae.quantize.embedding.weight)
        # force_not_quantize: the codes are already chosen (with the straight-through estimator); decode would
        # quantise again without it
        reconstructions = self.vqvae.decode(quantized.quantized, force_not_quantize=True).sample
        return reconstructions, latents, quantized

    @property
    def last_layer_weight(self) -> torch.Tensor:
        """The decoder's output convolution, where the adaptive weight of the adversarial loss is measured."""
        return self.vqvae.decoder.conv_out.weight


@torch.no_grad()
def update_codebook(
    vqvae: VQModel,
    latents: torch.Tensor,
    indices: torch.Tensor,
    accelerator,
    ema: EMACodebook | None,
    restarts: DeadCodeRestarts | None,
    generator: torch.Generator,
) -> tuple[torch.Tensor, int]:
    r"""
    After an optimizer step: count the codes `indices` used (summed over the processes), move the codebook by EMA
    when `ema` is given, and restart the codes that `restarts` finds dead at encoder outputs of this step (`latents`,
    gathered from every process, drawn with `generator`, which must be seeded the same on every process).

    Returns the step's code counts and how many codes were restarted.
    """
    num_codes = vqvae.config.num_vq_embeddings
    vectors = latents.detach().permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
    if ema is not None:
        counts = ema.update(vectors, indices, reduce=lambda tensor: accelerator.reduce(tensor, reduction="sum"))
    else:
        counts = accelerator.reduce(code_counts(indices, num_codes), reduction="sum")
    restarted = 0
    if restarts is not None:
        dead = restarts.observe(counts)
        if dead.any():
            candidates = accelerator.gather(vectors.contiguous()).cpu()
            weight = vqvae.quantize.embedding.weight
            codes = restarts.restart(weight.data, dead, candidates, generator)
            if ema is not None:
                ema.reset_codes(codes.to(weight.device), weight.data[codes.to(weight.device)])
            restarted = len(codes)
    return counts, restarted


__all__ = ["VQGANAutoencoder", "update_codebook"]
