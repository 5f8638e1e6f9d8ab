"""Training curves: TensorBoard event files read back with TensorBoard's own reader (a resumed run's files merged),
and the figure the model card shows."""

import time

import pytest
from PIL import Image
from torch.utils.tensorboard import SummaryWriter

from hfgen.training.curves import plot_training_curves, read_scalars, write_training_curves


def log_run(folder, steps, value_of, project="train_x"):
    """One tracker session as accelerate's TensorBoard tracker writes it: scalars per step, flushed."""
    writer = SummaryWriter(folder / "logs" / project)
    for step in steps:
        writer.add_scalar("loss", value_of(step), global_step=step)
        if step % 2 == 0:
            writer.add_scalar("eval/mean_iou", step / 10, global_step=step)
    writer.flush()
    writer.close()


def test_every_logged_scalar_is_read_back_and_a_resumed_run_merges(tmp_path):
    log_run(tmp_path, range(1, 5), lambda step: 10.0 - step)
    time.sleep(0.01)  # the resumed session writes later, and its steps 3 and 4 win
    log_run(tmp_path, range(3, 7), lambda step: 100.0 + step)
    scalars = read_scalars(str(tmp_path / "logs"))
    assert set(scalars) == {"loss", "eval/mean_iou"}
    assert scalars["loss"] == [(1, 9.0), (2, 8.0), (3, 103.0), (4, 104.0), (5, 105.0), (6, 106.0)]
    assert [step for step, _ in scalars["eval/mean_iou"]] == [2, 4, 6]
    assert scalars["eval/mean_iou"][0][1] == pytest.approx(0.2)
    assert read_scalars(str(tmp_path / "nothing-here")) == {}


def test_the_figure_has_a_panel_per_scalar_and_nothing_is_drawn_without_a_log(tmp_path):
    log_run(tmp_path, range(1, 30), lambda step: 1 / step)
    assert write_training_curves(str(tmp_path), "logs") == "training_curves.png"
    figure = Image.open(tmp_path / "training_curves.png")
    assert figure.size == (720, 250)  # two panels side by side, 100 dpi
    many = {f"metric_{index}": [(1, 1.0), (2, 2.0)] for index in range(7)}
    plot_training_curves(many, str(tmp_path / "many.png"))
    assert Image.open(tmp_path / "many.png").size == (1080, 750)  # three columns, three rows
    assert write_training_curves(str(tmp_path / "empty"), "logs") is None
    assert plot_training_curves({"loss": []}, str(tmp_path / "none.png")) is None
    assert not (tmp_path / "none.png").exists()
