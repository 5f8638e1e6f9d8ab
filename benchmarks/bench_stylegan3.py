#!/usr/bin/env python
"""StyleGAN 3 (alias-free, translation-equivariant) trained on the built-in digits and faces; writes the README's
figures and prints a Markdown table of what it measured.

    python benchmarks/bench_stylegan3.py                                  # digits at 16 px, faces at 32 px
    python benchmarks/bench_stylegan3.py --max_train_steps 400 --equivariance rotation

Each run is `train_stylegan.py --generator_architecture alias_free` with the script's StyleGAN 3 defaults
(architecture, learning rates, R1, EMA, no path length or style mixing) but `--dataset_name`, `--resolution`,
`--output_dir`, a batch of 32 and `--max_train_steps` (short runs: minutes on 2 CPU cores), evaluated once at the end.
The table reads the `metrics.json` each run wrote (on the digits: FID / KID / precision / recall with hfgen's digits
classifier and the class accuracy of conditional samples; on the faces, which have no feature extractor offline, the
diversity ratio in pixels). The sample grids (`samples.png`, the EMA generator) are copied to
`--figures_dir/stylegan3-<data>.png`.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "training_scripts", "gan", "train_stylegan.py")
# (dataset, short name, resolution)
RUNS = [("hfgen/digits", "digits", 16), ("hfgen/faces", "faces", 32)]
METRICS = (
    ("fid", "FID {:.1f}"),
    ("precision", "precision {:.2f}"),
    ("recall", "recall {:.2f}"),
    ("class_accuracy", "class accuracy {:.2f}"),
    ("diversity_ratio", "diversity ratio {:.2f}"),
)


def train(dataset: str, output_dir: str, extra: list[str]) -> float:
    """Run train_stylegan.py as a user does; returns its wall time in seconds."""
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_processes",
        "1",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        SCRIPT,
        "--generator_architecture",
        "alias_free",
        "--dataset_name",
        dataset,
        "--output_dir",
        output_dir,
        "--report_to",
        "none",
        *extra,
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--datasets", nargs="+", default=[name for _, name, _ in RUNS], choices=[n for _, n, _ in RUNS]
    )
    parser.add_argument("--max_train_steps", type=int, default=1000)
    parser.add_argument("--train_batch_size", type=int, default=32)
    parser.add_argument("--equivariance", default="translation", choices=["translation", "rotation"])
    parser.add_argument("--work_dir", default="bench-stylegan3", help="Where the runs write their folders.")
    parser.add_argument("--figures_dir", default=os.path.join(REPO, "benchmarks", "figures"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    os.makedirs(args.figures_dir, exist_ok=True)
    suffix = "" if args.equivariance == "translation" else "-r"
    rows = []
    for dataset, name, resolution in RUNS:
        if name not in args.datasets:
            continue
        output_dir = os.path.join(args.work_dir, name)
        steps = str(args.max_train_steps)
        extra = ["--resolution", str(resolution), "--equivariance", args.equivariance, "--seed", str(args.seed)]
        extra += ["--max_train_steps", steps, "--train_batch_size", str(args.train_batch_size)]
        extra += ["--validation_steps", steps, "--checkpointing_steps", steps]
        seconds = train(dataset, output_dir, extra)
        with open(os.path.join(output_dir, "metrics.json")) as file:
            metrics = json.load(file)["metrics"]
        figure = os.path.join(args.figures_dir, f"stylegan3{suffix}-{name}.png")
        shutil.copy(os.path.join(output_dir, "samples.png"), figure)
        measured = ", ".join(label.format(metrics[key]) for key, label in METRICS if key in metrics)
        rows.append(
            f"| {dataset}, {resolution} px | {steps} x {args.train_batch_size} | {measured} | {seconds:.0f} s |"
        )
    print(
        f"| StyleGAN3-{'T' if args.equivariance == 'translation' else 'R'} on | steps x batch | metrics | wall time |"
    )
    print("|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
