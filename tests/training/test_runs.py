"""The guard against diverging losses."""

import pytest
import torch

from hfgen.training.runs import check_finite


def test_the_divergence_guard_names_the_loss_step_and_kept_checkpoint():
    check_finite(torch.tensor(3.0), "the loss", 5, "out")
    with pytest.raises(FloatingPointError, match="the loss became nan at step 5: the run diverged"):
        check_finite(torch.tensor(float("nan")), "the loss", 5, "out")
    with pytest.raises(FloatingPointError, match="last complete checkpoint in out is kept"):
        check_finite(torch.tensor(1e9), "the loss", 5, "out", limit=1e5)
