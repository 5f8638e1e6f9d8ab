"""The token prior of a VQ-GAN: a small GPT-2 (transformers' `GPT2LMHeadModel`) over the flattened code indices.

An image's codes, read row by row, become a sequence of `height * width` tokens after a start token, whose id is the
codebook size (one past the last code). The prior learns p(code_i | codes before i) by next-token prediction, as
Esser et al. (2021) do with their transformer; sampling it code by code and decoding the codes with the VQ-GAN's
decoder draws new images.
"""

import torch
from transformers import GPT2Config


def prior_config(
    num_codes: int,
    num_tokens: int,
    hidden_size: int = 128,
    num_layers: int = 3,
    num_heads: int = 4,
    dropout: float = 0.1,
) -> GPT2Config:
    r"""
    The GPT-2 config of a prior over `num_codes` codes in sequences of `num_tokens` (the latent's height times
    width): a vocabulary of the codes plus the start token, and positions for the start token and the codes.
    """
    return GPT2Config(
        vocab_size=num_codes + 1,
        n_positions=num_tokens + 1,
        n_embd=hidden_size,
        n_layer=num_layers,
        n_head=num_heads,
        n_inner=4 * hidden_size,
        resid_pdrop=dropout,
        embd_pdrop=dropout,
        attn_pdrop=dropout,
        bos_token_id=num_codes,
        eos_token_id=num_codes,
    )


def start_token(prior_config: GPT2Config) -> int:
    """The id every sequence starts with: the codebook size."""
    return prior_config.bos_token_id


def code_sequences(indices: torch.Tensor, start: int) -> torch.LongTensor:
    """Code indices `(batch, height, width)` as prior inputs `(batch, 1 + height * width)`: the start token, then the
    codes row by row."""
    flat = indices.flatten(1).long()
    return torch.cat([torch.full((flat.shape[0], 1), start, dtype=torch.long, device=flat.device), flat], dim=1)


__all__ = ["code_sequences", "prior_config", "start_token"]
