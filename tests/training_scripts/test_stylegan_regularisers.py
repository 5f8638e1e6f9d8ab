"""StyleGAN 2's lazy regularisers in train_stylegan.py: each one on or off, run for two iterations.

A regulariser that is on takes an optimizer step of its own every N iterations (N = --r1_interval / --pl_interval)
with Adam's learning rate and betas corrected by N / (N + 1); one that is off (weight 0, a documented use) never runs
and leaves its optimizer as configured. Both are read back from the checkpoint's optimizer states.
"""

import pytest
import torch

LEARNING_RATE, BETA2 = 2e-3, 0.99


def optimizer_facts(checkpoint, index: int) -> tuple[int, float, tuple]:
    """(steps taken, learning rate, betas) of the checkpoint's optimizer `index` (0: generator, 1: discriminator)."""
    state = torch.load(checkpoint / ("optimizer.bin" if index == 0 else f"optimizer_{index}.bin"), weights_only=True)
    steps = {int(value["step"]) for value in state["state"].values()}
    assert len(steps) == 1, steps  # every parameter took every step
    group = state["param_groups"][0]
    return steps.pop(), group["lr"], tuple(group["betas"])


# R1 acts on the discriminator's optimizer and the path length penalty on the generator's, each on its own: both off
# and both on check each regulariser in both states.
@pytest.mark.parametrize("r1_gamma,pl_weight", [(0, 0), (1, 2)])
def test_every_regulariser_combination_trains(tmp_path, launch_tiny, r1_gamma, pl_weight):
    output_dir = tmp_path / "run"
    launch_tiny(
        "stylegan",
        output_dir,
        "--max_train_steps",
        "2",
        "--checkpointing_steps",
        "2",
        "--r1_interval",
        "2",
        "--pl_interval",
        "2",
        "--r1_gamma",
        r1_gamma,
        "--pl_weight",
        pl_weight,
        "--num_eval_samples",
        "20",
        "--report_to",
        "none",
        "--augment",
        "diffaugment",
    )
    checkpoint = output_dir / "checkpoint-2"
    for index, on in ((0, pl_weight > 0), (1, r1_gamma > 0)):
        steps, learning_rate, betas = optimizer_facts(checkpoint, index)
        ratio = 2 / 3 if on else 1.0
        # two main steps, plus one regulariser step at iteration 0 when it is on
        assert steps == (3 if on else 2)
        assert learning_rate == pytest.approx(LEARNING_RATE * ratio)
        assert betas == pytest.approx((0.0, BETA2**ratio))
    assert (output_dir / "model.safetensors").is_file()
