"""The training curves of a finished run, read back from its own TensorBoard log and drawn for the model card.

Every script logs its losses, learning rate and in-loop metrics (`eval/...`) through accelerate's TensorBoard tracker,
which flushes after each `log` call, so at the end of a run the event files hold every step. They are read with
TensorBoard's own reader (`EventAccumulator`), all events kept, and a resumed run's several event files merge into
one curve per scalar (a step logged twice, before and after an interruption, keeps its last value).
"""

import glob
import math
import os

DEFAULT_CURVES_IMAGE = "training_curves.png"
PANEL_COLUMNS = 3


def read_scalars(log_dir: str) -> dict[str, list[tuple[int, float]]]:
    """Every scalar logged under `log_dir` (any depth of project folders), as `{tag: [(step, value), ...]}` sorted
    by step; empty when there is no event file."""
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    scalars: dict[str, dict[int, tuple[float, float]]] = {}
    event_files = glob.glob(os.path.join(log_dir, "**", "events.out.tfevents.*"), recursive=True)
    for event_file in sorted(event_files):
        accumulator = EventAccumulator(event_file, size_guidance={SCALARS: 0})  # 0: keep every event
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            points = scalars.setdefault(tag, {})
            for event in accumulator.Scalars(tag):
                # the later write of a step wins: a resumed run logs again the steps after its checkpoint
                if event.step not in points or event.wall_time >= points[event.step][0]:
                    points[event.step] = (event.wall_time, event.value)
    return {
        tag: [(step, value) for step, (_, value) in sorted(points.items())] for tag, points in sorted(scalars.items())
    }


def plot_training_curves(scalars: dict[str, list[tuple[int, float]]], path: str) -> str | None:
    """Draw one panel per scalar (training scalars first, then the `eval/` metrics) against the step and save the
    figure to `path`; returns the path, or None when there is nothing to draw."""
    tags = sorted(scalars, key=lambda tag: (tag.startswith("eval/"), tag))
    tags = [tag for tag in tags if scalars[tag]]
    if not tags:
        return None
    import matplotlib

    matplotlib.use("Agg")  # no display: scripts run on servers
    import matplotlib.pyplot as plt

    rows = math.ceil(len(tags) / PANEL_COLUMNS)
    columns = min(PANEL_COLUMNS, len(tags))
    figure, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 2.5 * rows), squeeze=False)
    for axis, tag in zip(axes.flat, tags, strict=False):
        steps, values = zip(*scalars[tag], strict=True)
        # a metric measured a few times shows its points; a loss logged every step is a line
        axis.plot(steps, values, marker="o" if len(steps) <= 20 else None, markersize=3, linewidth=1)
        axis.set_title(tag, fontsize=9)
        axis.set_xlabel("step", fontsize=8)
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(tags) :]:
        axis.set_visible(False)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def write_training_curves(output_dir: str, logging_dir: str, name: str = DEFAULT_CURVES_IMAGE) -> str | None:
    """The curves of the run whose log is `output_dir/logging_dir`, saved as `output_dir/name`; returns the file name
    (relative to `output_dir`, as the card links it) or None when the run kept no log."""
    scalars = read_scalars(os.path.join(output_dir, logging_dir))
    return name if plot_training_curves(scalars, os.path.join(output_dir, name)) else None
