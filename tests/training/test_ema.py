"""The generator's moving average."""

import pytest
import torch
from diffusers.training_utils import EMAModel
from torch import nn

from hfgen.training.ema import create_ema, update_ema


def test_ema_follows_the_weights_with_warmup_and_copies_buffers():
    model = nn.BatchNorm1d(3)
    ema = create_ema(model)
    assert not any(p.requires_grad for p in ema.parameters())
    with torch.no_grad():
        model.weight.fill_(2.0)  # ema starts at 1
        model.running_mean.fill_(5.0)
    used = update_ema(ema, model, decay=0.999, step=0)  # warm-up: min(0.999, 1 / 10)
    assert used == pytest.approx(0.1)
    assert torch.allclose(ema.weight, torch.full((3,), 0.1 * 1.0 + 0.9 * 2.0))
    assert torch.equal(ema.running_mean, model.running_mean)
    assert update_ema(ema, model, decay=0.9, step=10_000) == 0.9


@pytest.mark.parametrize("step", [1, 5, 50, 5000])
def test_the_warm_up_is_that_of_diffusers_ema_model(step):
    """hfgen keeps its own EMA (a module, buffers included) with diffusers' EMAModel decay schedule (EMAModel's very
    first update is a plain copy, decay 0; hfgen's uses 0.1)."""
    model = nn.Linear(2, 2)
    ema = create_ema(model)
    reference = EMAModel(model.parameters(), decay=0.999)
    reference.optimization_step = step
    assert update_ema(ema, model, decay=0.999, step=step) == pytest.approx(reference.get_decay(step + 1))
