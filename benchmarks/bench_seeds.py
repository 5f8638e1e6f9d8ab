#!/usr/bin/env python
"""A training script's default run repeated over seeds; prints each run's metrics and their mean and spread.

    python benchmarks/bench_seeds.py gan/train_gan.py                      # the README's DCGAN command, seeds 0, 1, 2
    python benchmarks/bench_seeds.py gan/train_stylegan.py --seeds 0 1 2 --parallel 2 -- --r1_gamma 1

A single run's FID moves by about a point from seed to seed, so the README reports the mean and the spread
(sample standard deviation, and min-max) over the seeds of the stated command, not one run. Flags after `--` go to
every run. With `--parallel N` that many runs share the machine (each with one thread per run's share of cores),
which changes their wall time but not their numbers.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPORTED = (
    "fid",
    "kid_mean",
    "inception_score_mean",
    "precision",
    "recall",
    "class_accuracy",
    "diversity_ratio",
    "psnr",
    "ssim",
)


def launch(script: str, seed: int, output_dir: str, extra: list[str], threads: int) -> subprocess.Popen:
    command = [
        sys.executable,
        os.path.join(REPO, "training_scripts", script),
        "--seed",
        str(seed),
        "--output_dir",
        output_dir,
        "--report_to",
        "none",
        *extra,
    ]
    environment = dict(os.environ, OMP_NUM_THREADS=str(threads))
    with open(output_dir + ".log", "w") as log:  # the child process keeps its own handle on the file
        return subprocess.Popen(command, cwd=REPO, env=environment, stdout=subprocess.DEVNULL, stderr=log)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("script", help="A script under training_scripts/, e.g. gan/train_gan.py.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--parallel", type=int, default=1, help="Runs at a time.")
    parser.add_argument("--work_dir", default="bench-seeds")
    # Flags after `--` go to the training script; argparse alone would hand it everything after the script's name.
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args, extra = parser.parse_args(argv[:split]), argv[split + 1 :]

    os.makedirs(args.work_dir, exist_ok=True)
    threads = max(1, (os.cpu_count() or 1) // args.parallel)
    pending, running, records = list(args.seeds), {}, {}
    start = time.perf_counter()
    while pending or running:
        while pending and len(running) < args.parallel:
            seed = pending.pop(0)
            name = os.path.splitext(os.path.basename(args.script))[0]
            output_dir = os.path.join(args.work_dir, f"{name}-seed{seed}")
            running[seed] = (launch(args.script, seed, output_dir, extra, threads), output_dir)
        for seed, (process, output_dir) in list(running.items()):
            if process.poll() is None:
                continue
            del running[seed]
            if process.returncode != 0:
                raise SystemExit(f"seed {seed} failed: see {output_dir}.log")
            with open(os.path.join(output_dir, "metrics.json")) as file:
                records[seed] = json.load(file)
        time.sleep(1)

    keys = [key for key in REPORTED if all(key in record["metrics"] for record in records.values())]
    print(f"{args.script} {' '.join(extra)}: seeds {args.seeds}, {(time.perf_counter() - start) / 60:.1f} min")
    protocol = records[args.seeds[0]]["protocol"]
    print(f"data: {protocol.get('dataset')} ({protocol.get('split')})\n")
    print("| seed | " + " | ".join(keys) + " |\n|---|" + "---|" * len(keys))
    for seed in args.seeds:
        print(f"| {seed} | " + " | ".join(f"{records[seed]['metrics'][key]:.4g}" for key in keys) + " |")
    summary = []
    for key in keys:
        values = [records[seed]["metrics"][key] for seed in args.seeds]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        summary.append(f"{statistics.mean(values):.4g} ± {spread:.2g} ({min(values):.4g}-{max(values):.4g})")
    print("| mean ± sd (min-max) | " + " | ".join(summary) + " |")


if __name__ == "__main__":
    main()
