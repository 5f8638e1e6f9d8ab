#!/usr/bin/env python
"""Vision-language benchmarks: the quality each default run reaches on its held-out built-in set against chance, and
the training throughput it ran at; one Markdown table.

    # 1. the default runs of the vision-language scripts (built-in data, from scratch; minutes each on 2 CPU cores):
    python benchmarks/bench_vlm.py run --output_root vlm-runs
    # 2. the table, from any finished runs' folders:
    python benchmarks/bench_vlm.py report vlm-runs/*

`report` reads each folder's `metrics.json` (the metrics, and the `baselines` the script measured on the same
held-out data: chance, or the trivial predictor it names) and its TensorBoard log: training samples/s is the batch
size times the steps between the 10th logged step and the last, over the wall time between them, with the steps that
ran a validation left out (they measure the model, not the training).
"""

import argparse
import glob
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(REPO, "training_scripts", "vision_language")

# Each script's default run, and the metrics its row of the table shows (the first is the headline one).
DEFAULT_RUNS = {
    "clip": ("train_clip.py", ["zero_shot_accuracy", "linear_probe_accuracy", "image_to_text_recall@1"]),
    "blip-captioning": ("train_blip_captioning.py", ["exact_match", "bleu_4", "cider"]),
    "blip-vqa": ("train_blip_vqa.py", ["vqa_accuracy"]),
    "owlvit": ("train_owlvit_detection.py", ["map_50", "map"]),
    "groupvit": (
        "train_groupvit.py",
        ["mean_iou", "foreground_iou", "foreground_class_accuracy", "pixel_accuracy", "grouping_foreground_iou"],
    ),
}


def run_defaults(output_root: str, names: list[str]) -> None:
    """Run each named script with its defaults (one process, both cores) into `output_root/<name>`."""
    for name in names:
        script, _ = DEFAULT_RUNS[name]
        output_dir = os.path.join(output_root, name)
        print(f"$ python {os.path.relpath(os.path.join(SCRIPTS, script), REPO)} --output_dir {output_dir}", flush=True)
        subprocess.run(
            [sys.executable, os.path.join(SCRIPTS, script), "--output_dir", output_dir],
            check=True,
            env=dict(os.environ, HF_HUB_OFFLINE="1"),
        )


def training_throughput(folder: str, batch_size: int, validation_steps: int) -> float | None:
    """Training samples/s from the run's TensorBoard scalars (see the module docstring); None without a log."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = sorted(glob.glob(os.path.join(folder, "logs", "**", "events.out.tfevents.*"), recursive=True))
    if not events:
        return None
    accumulator = EventAccumulator(events[-1], size_guidance={"scalars": 0})
    accumulator.Reload()
    if "loss" not in accumulator.Tags()["scalars"]:
        return None
    points = accumulator.Scalars("loss")[9:]
    intervals = [
        (later.wall_time - earlier.wall_time, later.step - earlier.step)
        for earlier, later in zip(points, points[1:], strict=False)
        if earlier.step % validation_steps  # the interval after a validation step includes the validation
    ]
    seconds, steps = sum(interval[0] for interval in intervals), sum(interval[1] for interval in intervals)
    return batch_size * steps / seconds if seconds > 0 else None


def report(folders: list[str]) -> None:
    print("| run | data (split) | metric | value | baseline | samples/s |")
    print("|---|---|---|---|---|---|")
    for folder in folders:
        with open(os.path.join(folder, "metrics.json")) as file:
            record = json.load(file)
        with open(os.path.join(folder, "training_args.json")) as file:
            arguments = json.load(file)
        name = os.path.basename(os.path.normpath(folder))
        # the script that wrote the folder names its TensorBoard project (logs/train_clip/...)
        projects = {os.path.basename(path) + ".py" for path in glob.glob(os.path.join(folder, "logs", "*"))}
        shown = next(
            (metrics for script, metrics in DEFAULT_RUNS.values() if script in projects), list(record["metrics"])
        )
        batch = arguments["train_batch_size"] * arguments.get("gradient_accumulation_steps", 1)
        throughput = training_throughput(folder, batch, arguments["validation_steps"])
        data = f"{record['protocol']['dataset']} ({record['protocol']['split']})"
        for index, metric in enumerate(key for key in shown if key in record["metrics"]):
            baselines = record.get("baselines", {}).get(metric, {})
            baseline = ", ".join(f"{value:.3f} ({kind})" for kind, value in baselines.items()) or "-"
            speed = f"{throughput:.0f}" if index == 0 and throughput is not None else ""
            print(
                f"| {name if index == 0 else ''} | {data if index == 0 else ''} | {metric} | "
                f"{record['metrics'][metric]:.3f} | {baseline} | {speed} |"
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="Run the default runs.")
    run.add_argument("--output_root", default="vlm-runs")
    run.add_argument("--only", nargs="+", choices=list(DEFAULT_RUNS), default=list(DEFAULT_RUNS))
    table = commands.add_parser("report", help="Print the table of finished runs.")
    table.add_argument("folders", nargs="+")
    args = parser.parse_args()
    if args.command == "run":
        run_defaults(args.output_root, args.only)
        report([os.path.join(args.output_root, name) for name in args.only])
    else:
        report(args.folders)


if __name__ == "__main__":
    main()
