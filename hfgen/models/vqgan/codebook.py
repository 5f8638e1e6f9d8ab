"""Vector quantisation against a codebook (van den Oord et al. 2017), and the statistics of how the codes are used.

`quantize` is what `diffusers.VQModel` does inside `decode` (the nearest code by Euclidean distance), written out so a
training step gets the code indices and both loss terms apart: the codebook term moves the codes towards the encoder
outputs (left out when the codebook follows EMA updates instead, see `codebook_ema.py`), the commitment term keeps
the encoder outputs near their codes. diffusers' `VectorQuantizer` returns one loss whose weights are swapped for
backwards compatibility ("legacy"), which is why the step does not use it.
"""

from dataclasses import dataclass

import torch


@dataclass
class QuantizerOutput:
    r"""
    Args:
        quantized (`torch.Tensor` of shape `(batch, embed_dim, height, width)`):
            The nearest code of every latent vector, with the straight-through estimator: the forward value is the
            code, the gradient flows to the encoder's latents unchanged.
        indices (`torch.LongTensor` of shape `(batch, height, width)`):
            The index of that code in the codebook.
        codebook_loss (`torch.Tensor`):
            mean ||sg[z] - e||^2: trains the codebook (not the encoder).
        commitment_loss (`torch.Tensor`):
            mean ||z - sg[e]||^2: trains the encoder (not the codebook); weighted by beta in the VQ-VAE loss.
    """

    quantized: torch.Tensor
    indices: torch.LongTensor
    codebook_loss: torch.Tensor
    commitment_loss: torch.Tensor


def nearest_codes(vectors: torch.Tensor, codebook: torch.Tensor) -> torch.LongTensor:
    """Index of the nearest row of `codebook` `(num_codes, embed_dim)` for every row of `vectors` `(n, embed_dim)`,
    by the same `torch.cdist` + argmin as diffusers' `VectorQuantizer`, so training and `VQModel.decode` agree."""
    return torch.argmin(torch.cdist(vectors, codebook), dim=1)


def quantize(latents: torch.Tensor, codebook: torch.Tensor) -> QuantizerOutput:
    r"""
    Replace every latent vector by its nearest code.

    Args:
        latents (`torch.Tensor` of shape `(batch, embed_dim, height, width)`):
            The encoder's output after `VQModel.quant_conv` (what `VQModel.encode(x).latents` returns).
        codebook (`torch.Tensor` of shape `(num_codes, embed_dim)`):
            `VQModel.quantize.embedding.weight`.
    """
    if latents.ndim != 4 or latents.shape[1] != codebook.shape[1]:
        raise ValueError(
            f"latents must have shape (batch, {codebook.shape[1]}, height, width), got {tuple(latents.shape)}"
        )
    batch, channels, height, width = latents.shape
    vectors = latents.permute(0, 2, 3, 1).reshape(-1, channels)
    indices = nearest_codes(vectors.detach(), codebook.detach())
    codes = codebook[indices].view(batch, height, width, channels).permute(0, 3, 1, 2)
    codebook_loss = torch.mean((codes - latents.detach()) ** 2)
    commitment_loss = torch.mean((latents - codes.detach()) ** 2)
    quantized = latents + (codes - latents).detach()
    return QuantizerOutput(quantized, indices.view(batch, height, width), codebook_loss, commitment_loss)


def code_counts(indices: torch.Tensor, num_codes: int) -> torch.Tensor:
    """How many times each code occurs in `indices` (any shape), as a float tensor of length `num_codes`."""
    return torch.bincount(indices.flatten(), minlength=num_codes).float()


def codebook_perplexity(counts: torch.Tensor) -> float:
    """exp of the entropy of the code distribution given by `counts`: the number of equally used codes that would
    have the same entropy (`num_codes` when all are used equally, 1 when one code takes everything)."""
    if counts.sum() <= 0:
        raise ValueError("codebook_perplexity needs at least one counted code")
    probabilities = counts / counts.sum()
    nonzero = probabilities[probabilities > 0]
    return torch.exp(-(nonzero * nonzero.log()).sum()).item()


def unused_code_share(counts: torch.Tensor) -> float:
    """The share of the codebook that `counts` never uses (0: every code used, near 1: collapse)."""
    return (counts == 0).float().mean().item()


__all__ = ["QuantizerOutput", "code_counts", "codebook_perplexity", "nearest_codes", "quantize", "unused_code_share"]
