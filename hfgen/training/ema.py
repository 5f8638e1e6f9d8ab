"""Exponential moving average of a model's weights (the G_ema of GAN training).

Why not `diffusers.training_utils.EMAModel`: its decay schedule is the one used here (min(decay, (1 + t) / (10 + t)),
tested equal in tests/training/test_ema.py), but it averages parameters only and keeps them as loose tensors. A GAN
samples from, validates and saves its averaged generator as a model, and that model's buffers must follow the live
one: BatchNorm running statistics (DCGAN) and StyleGAN's `w_avg`, which truncation reads. EMAModel would need a
module copy, `copy_to` before every use and a separate buffer copy; a module that is the average is simpler, is
checkpointed by `accelerator.register_for_checkpointing` as it is, and saves with `save_pretrained`.
"""

import copy

import torch
from torch import nn


def create_ema(model: nn.Module) -> nn.Module:
    """A frozen copy of `model` in eval mode, to be updated with [`update_ema`]."""
    ema = copy.deepcopy(model).eval()
    ema.requires_grad_(False)
    return ema


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float, step: int) -> float:
    """Move `ema`'s parameters towards `model`'s and copy its buffers (batch-norm statistics, StyleGAN's w_avg).

    The decay warms up as min(decay, (1 + step) / (10 + step)), so early averages are not dominated by the random
    initialisation of a short run. Returns the decay used.
    """
    used = min(decay, (1 + step) / (10 + step))
    pairs = list(zip(ema.parameters(), model.parameters(), strict=True))
    ema_parameters = [ema_parameter for ema_parameter, _ in pairs]
    # One fused call per tensor list instead of one small kernel per parameter.
    torch._foreach_lerp_(ema_parameters, [p.detach().to(e.dtype) for e, p in pairs], 1 - used)
    ema_buffers, buffers = list(ema.buffers()), list(model.buffers())
    if ema_buffers:
        torch._foreach_copy_(ema_buffers, buffers)
    return used
