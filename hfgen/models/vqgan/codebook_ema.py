"""Codebook updates by exponential moving averages (van den Oord et al. 2017, appendix A.1; Razavi et al. 2019).

Each code becomes the running mean of the encoder outputs assigned to it: running counts N_k and sums m_k decay by
`decay` and take in the batch's, and e_k = m_k / N_k. Laplace smoothing of the counts keeps a code that no output
chose from a division by zero. With several processes the batch statistics are summed over all of them first, so
every process computes the same codebook without it being a parameter the optimizer moves: the codebook gets no
gradient (`requires_grad` is off) and the VQ loss keeps only its commitment term.
"""

from collections.abc import Callable

import torch
from torch import nn


class EMACodebook:
    r"""
    Exponential-moving-average updates of a `VQModel`'s codebook (`vqmodel.quantize.embedding`).

    Args:
        codebook (`torch.nn.Embedding`):
            The codebook, updated in place by [`update`]; its gradient is switched off here.
        decay (`float`, *optional*, defaults to 0.99):
            gamma of the paper: how much of the running statistics each update keeps.
        epsilon (`float`, *optional*, defaults to 1e-5):
            The Laplace smoothing of the counts.

    The running statistics are the state a resumed run needs: [`state_dict`] / [`load_state_dict`] let
    `accelerator.register_for_checkpointing` save them with the checkpoint.
    """

    def __init__(self, codebook: nn.Embedding, decay: float = 0.99, epsilon: float = 1e-5):
        if not 0 < decay < 1:
            raise ValueError(f"decay must lie in (0, 1), got {decay}")
        if epsilon <= 0:
            raise ValueError(f"epsilon must be positive, got {epsilon}")
        self.codebook = codebook.requires_grad_(False)
        self.decay = decay
        self.epsilon = epsilon
        weight = codebook.weight.detach()
        # Every code starts as if one output had chosen it at its initial value: the first updates then average
        # the outputs with it instead of dividing by a count near zero, and a code no output chooses keeps its value.
        self.cluster_size = torch.ones(weight.shape[0], dtype=torch.float32, device=weight.device)
        self.embed_sum = weight.clone().float()

    @torch.no_grad()
    def update(
        self,
        vectors: torch.Tensor,
        indices: torch.Tensor,
        reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        r"""
        Move the codebook towards the means of the `vectors` `(n, embed_dim)` assigned to each code (`indices`,
        `n` of them). `reduce` sums a tensor over the processes (e.g. `lambda t: accelerator.reduce(t, "sum")`); None
        for one process. Returns the batch's code counts (summed over the processes).
        """
        num_codes = self.cluster_size.shape[0]
        one_hot = torch.nn.functional.one_hot(indices.flatten(), num_codes).float()
        counts = one_hot.sum(dim=0)
        sums = one_hot.t() @ vectors.detach().float()
        if reduce is not None:
            counts, sums = reduce(counts), reduce(sums)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.epsilon) / (total + num_codes * self.epsilon) * total
        self.codebook.weight.copy_(self.embed_sum / smoothed[:, None])
        return counts

    @torch.no_grad()
    def reset_codes(self, codes: torch.Tensor, vectors: torch.Tensor) -> None:
        """Restart `codes` (indices) at `vectors`, as if each had been chosen once by that vector (see
        `code_restarts.py`): the running mean of a restarted code starts from its new value."""
        self.cluster_size[codes] = 1.0
        self.embed_sum[codes] = vectors.float()

    def state_dict(self) -> dict:
        return {"cluster_size": self.cluster_size, "embed_sum": self.embed_sum}

    def load_state_dict(self, state: dict) -> None:
        self.cluster_size.copy_(state["cluster_size"])
        self.embed_sum.copy_(state["embed_sum"])


__all__ = ["EMACodebook"]
