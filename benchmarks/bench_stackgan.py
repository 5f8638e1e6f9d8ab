#!/usr/bin/env python
"""StackGAN trained on the built-in digits with captions from their labels: FID of stage I and stage II, and prompt
accuracy against chance; writes the README's figure and prints a Markdown table of what it measured.

    python benchmarks/bench_stackgan.py                                      # the script's defaults
    python benchmarks/bench_stackgan.py --stage1_steps 300 --stage2_steps 150   # a quicker look

Each run is `train_stackgan.py` with its defaults (architecture, text encoder trained with the GAN, learning rates,
KL weight, EMA, 16 px then 32 px) but `--output_dir`, `--seed` and the stage lengths given here. The table reads the
`metrics.json` each run wrote: FID / precision / recall with hfgen's digits classifier for each stage (stage I's
samples against the held-out digits brought to 16 px), and prompt accuracy, the share of samples prompted "a
handwritten digit seven" etc. that the digits classifier reads as the prompted class, beside chance (1 in 10).
Figure, in `--figures_dir`: `stackgan-digits.png`, the stage-II grid (one column per class prompt) above the stage-I
grid of the same prompts and seeds.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "training_scripts", "gan", "train_stackgan.py")


def script_defaults():
    """train_stackgan.py as a module, for its default stage lengths."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_stackgan", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train(output_dir: str, extra: list[str]) -> float:
    """Run train_stackgan.py as a user does; returns its wall time in seconds."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1"]
    command += ["--mixed_precision", "no", "--dynamo_backend", "no", SCRIPT, "--output_dir", output_dir]
    command += ["--report_to", "none", *extra]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def stacked(paths: list[str], path: str) -> None:
    """The grids of `paths`, each resized to the width of the first, stacked top to bottom."""
    grids = [Image.open(grid).convert("L") for grid in paths]
    width = grids[0].width
    rows = [grid.resize((width, grid.height * width // grid.width), Image.NEAREST) for grid in grids]
    figure = Image.new("L", (width, sum(row.height for row in rows) + 8 * (len(rows) - 1)), 255)
    top = 0
    for row in rows:
        figure.paste(row, (0, top))
        top += row.height + 8
    figure.save(path)


def main():
    defaults = script_defaults()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage1_steps", type=int, default=defaults.DEFAULT_STAGE1_STEPS)
    parser.add_argument("--stage2_steps", type=int, default=defaults.DEFAULT_STAGE2_STEPS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--work_dir", default="bench-stackgan", help="Where the runs write their folders.")
    parser.add_argument("--figures_dir", default=os.path.join(REPO, "benchmarks", "figures"))
    args = parser.parse_args()

    os.makedirs(args.figures_dir, exist_ok=True)
    total = args.stage1_steps + args.stage2_steps
    rows = []
    for seed in args.seeds:
        output_dir = os.path.join(args.work_dir, f"digits-seed{seed}")
        shutil.rmtree(output_dir, ignore_errors=True)
        extra = ["--seed", str(seed), "--stage1_steps", str(args.stage1_steps)]
        extra += ["--stage2_steps", str(args.stage2_steps), "--validation_steps", str(total)]
        extra += ["--checkpointing_steps", str(total)]
        seconds = train(output_dir, extra)
        with open(os.path.join(output_dir, "metrics.json")) as file:
            record = json.load(file)
        metrics, protocol = record["metrics"], record["protocol"]
        if seed == args.seeds[0]:
            grids = [os.path.join(output_dir, name) for name in ("samples.png", "samples_stage1.png")]
            stacked(grids, os.path.join(args.figures_dir, "stackgan-digits.png"))
        rows.append(
            f"| {seed} | {args.stage1_steps} + {args.stage2_steps} | {seconds / 60:.1f} | "
            f"{metrics['fid_stage1']:.3g} | {metrics['fid']:.3g} | "
            f"{100 * metrics['class_accuracy_stage1']:.1f}% | {100 * metrics['class_accuracy']:.1f}% | "
            f"{protocol['prompt_accuracy_chance']} | {metrics['precision']:.2f} / {metrics['recall']:.2f} | "
            f"{record['references']['real_train_vs_evaluation']['fid']:.3g} |"
        )
    print(
        "| seed | steps (stage I + II) | minutes | digits-FID stage I (16 px) | digits-FID stage II (32 px) | "
        "prompt accuracy stage I | prompt accuracy stage II | chance | precision / recall (stage II) | "
        "FID real train vs held-out |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\nprotocol: {json.dumps(protocol)}")


if __name__ == "__main__":
    main()
