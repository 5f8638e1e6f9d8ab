"""Pieces of adversarial training that do not depend on the family: the optimizer of a lazily regularised network.

StyleGAN 2 (Karras et al. 2020, appendix B) runs a regulariser (R1 for D, path length for G) only every N
minibatches. Two consistent ways exist: fold the regulariser into the main step every N steps with its loss scaled
by N and a plain optimizer, or give it an optimizer step of its own every N steps, loss scaled by N, with Adam's
learning rate and betas corrected by c = N / (N + 1) because the optimizer now takes N + 1 steps per N minibatches.
`train_stylegan.py` does the second, as NVIDIA's implementation does; `train_gan.py` the first.
"""

import torch


def lazy_regularisation_ratio(interval: int | None) -> float:
    """c = N / (N + 1) for a regulariser that takes its own optimizer step every N minibatches; 1 when it is off
    (`interval` None or 0), so a disabled regulariser leaves the optimizer exactly as configured."""
    if not interval:
        return 1.0
    if interval < 1:
        raise ValueError(f"a lazy regularisation interval must be at least 1, got {interval}")
    return interval / (interval + 1)


def lazy_regularised_adam(
    parameters, learning_rate: float, betas: tuple[float, float], interval: int | None
) -> torch.optim.Adam:
    """Adam for a network whose regulariser runs as its own step every `interval` minibatches (None: no
    regulariser): learning rate scaled by c and betas raised to the power c, c = interval / (interval + 1)."""
    ratio = lazy_regularisation_ratio(interval)
    return torch.optim.Adam(parameters, lr=learning_rate * ratio, betas=(betas[0] ** ratio, betas[1] ** ratio))
