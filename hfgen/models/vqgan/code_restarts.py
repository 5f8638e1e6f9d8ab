"""Restarts of dead codes (Dhariwal et al. 2020, Jukebox; Zeghidour et al. 2021, SoundStream).

A code that no encoder output has chosen for `dead_after` steps only takes room in the codebook: it is moved onto a
recent encoder output, where outputs are, so it has a chance to be chosen again. Codebook collapse (a handful of codes
doing all the work, perplexity far below the codebook size) is the commonest failure of VQ training, and restarts are
the cheap cure. The usage counts and the candidate outputs are gathered over all processes and the draw uses a
generator seeded the same everywhere, so every process restarts the same codes at the same vectors.
"""

import torch


class DeadCodeRestarts:
    r"""
    Track how long each code has gone unused, and restart those unused for `dead_after` steps.

    Args:
        num_codes (`int`):
            Size of the codebook.
        dead_after (`int`):
            Steps without use after which a code is dead (restarted by [`restart`]).

    [`state_dict`] / [`load_state_dict`] let `accelerator.register_for_checkpointing` save the counters.
    """

    def __init__(self, num_codes: int, dead_after: int):
        if dead_after < 1:
            raise ValueError(f"dead_after must be at least 1, got {dead_after}")
        self.dead_after = dead_after
        self.steps_unused = torch.zeros(num_codes, dtype=torch.long)

    def observe(self, counts: torch.Tensor) -> torch.Tensor:
        """Count one more step for every code with a zero in `counts` (this step's uses, over all processes), reset
        the others; returns the mask of the codes that are now dead."""
        used = counts.to(self.steps_unused.device) > 0
        self.steps_unused = torch.where(used, torch.zeros_like(self.steps_unused), self.steps_unused + 1)
        return self.steps_unused >= self.dead_after

    def dead_share(self) -> float:
        """The share of the codebook that is dead now."""
        return (self.steps_unused >= self.dead_after).float().mean().item()

    @torch.no_grad()
    def restart(
        self, codebook: torch.Tensor, dead: torch.Tensor, candidates: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        r"""
        Move every dead code of `codebook` `(num_codes, embed_dim)` (in place) onto a row of `candidates`
        `(n, embed_dim)` (recent encoder outputs), drawn without replacement while there are enough, from
        `generator`. Returns the indices of the restarted codes; their counters start again from zero.
        """
        codes = dead.nonzero().flatten()
        if len(codes) == 0:
            return codes
        if len(candidates) >= len(codes):
            rows = torch.randperm(len(candidates), generator=generator)[: len(codes)]
        else:
            rows = torch.randint(len(candidates), (len(codes),), generator=generator)
        codebook[codes.to(codebook.device)] = candidates[rows.to(candidates.device)].to(
            device=codebook.device, dtype=codebook.dtype
        )
        self.steps_unused[codes] = 0
        return codes

    def state_dict(self) -> dict:
        return {"steps_unused": self.steps_unused}

    def load_state_dict(self, state: dict) -> None:
        self.steps_unused.copy_(state["steps_unused"])


__all__ = ["DeadCodeRestarts"]
