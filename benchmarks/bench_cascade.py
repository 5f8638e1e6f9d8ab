#!/usr/bin/env python
"""Cascaded diffusion on the built-in digits: a base DDPM at 16 px (train_ddpm.py), then the super-resolution stage
16 -> 32 px on it (train_super_resolution.py --base_model_name_or_path); prints what was measured as a Markdown table.

    python benchmarks/bench_cascade.py                                       # the scripts' defaults
    python benchmarks/bench_cascade.py --base_steps 400 --sr_steps 200       # a quicker look

Both runs are the scripts as users run them, with their defaults but the resolution, the output folder and the
lengths given here. The table reads the cascade folder's `metrics.json` (FID with hfgen's digits classifier on the
360 held-out digits):

- the super-resolution stage alone: PSNR / SSIM / FID of the held-out digits downsampled to 16 px and
  super-resolved, beside bicubic upsampling of the same 16 px digits;
- the cascade: FID of its samples beside the base model's samples upsampled bicubically;

then the cascade's FID at each of `--noise_levels` (the noise conditioning augmentation at sampling time), measured
on the saved folder as `hfgen evaluate` measures it: the sweep behind the pipelines' default level.
"""

import argparse
import json
import logging
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(REPO, "training_scripts", "diffusion")


def train(script: str, output_dir: str, extra: list[str]) -> float:
    """Run a training script as a user does; returns its wall time in seconds."""
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
        os.path.join(SCRIPTS, script),
        "--output_dir",
        output_dir,
        "--report_to",
        "none",
        *extra,
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def cascade_fid(folder: str, noise_level: int) -> float:
    """The cascade's FID with the conditioning noised to `noise_level`, on the run's own data and settings."""
    from accelerate import Accelerator

    from hfgen.cli import RUN_DEFAULTS
    from hfgen.families import recorded_arguments
    from hfgen.pipelines.cascade.evaluation import (
        EVALUATION_DEFAULTS,
        cascade_pipeline,
        evaluate_cascade,
        sampling_pipeline,
    )
    from hfgen.pipelines.sampling import load_pipeline
    from hfgen.training.evaluation import load_run_data

    run = argparse.Namespace(**{**RUN_DEFAULTS, **EVALUATION_DEFAULTS, **recorded_arguments(folder)})
    run.sampling_noise_level = noise_level
    accelerator = Accelerator()
    saved = load_pipeline(folder)
    stages = saved.stages()
    cascade = cascade_pipeline(stages[0], sampling_pipeline(saved.unet, saved.scheduler, run.low_resolution))
    data = load_run_data(run, accelerator, logging.getLogger(__name__))
    return evaluate_cascade(cascade, data, run, accelerator)["cascade_fid"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_root", default=os.path.join(REPO, "bench-cascade"))
    parser.add_argument("--base_steps", type=int, default=None, help="train_ddpm.py's steps (its default if unset).")
    parser.add_argument(
        "--sr_steps", type=int, default=None, help="train_super_resolution.py's steps (its default if unset)."
    )
    parser.add_argument("--noise_levels", default="0,25,50,100", help="Sampling noise levels of the sweep.")
    args = parser.parse_args()
    os.makedirs(args.output_root, exist_ok=True)
    base_dir = os.path.join(args.output_root, "ddpm-16")
    cascade_dir = os.path.join(args.output_root, "cascade-16-32")

    base_flags = ["--resolution", "16"] + (["--max_train_steps", str(args.base_steps)] if args.base_steps else [])
    base_time = train("train_ddpm.py", base_dir, base_flags)
    sr_flags = ["--resolution", "32", "--low_resolution", "16", "--base_model_name_or_path", base_dir]
    sr_flags += ["--max_train_steps", str(args.sr_steps)] if args.sr_steps else []
    sr_time = train("train_super_resolution.py", cascade_dir, sr_flags)

    with open(os.path.join(cascade_dir, "metrics.json")) as file:
        record = json.load(file)
    metrics = record["metrics"]
    print(f"\nbase DDPM 16 px: {base_time / 60:.1f} min; super-resolution 16 -> 32 px: {sr_time / 60:.1f} min")
    print(f"({record['protocol']['sampler']}; {record['protocol']['dataset']}, {record['protocol']['split']})\n")
    print("| 16 -> 32 px on the held-out digits | PSNR (dB) | SSIM | FID |")
    print("|---|---|---|---|")
    print(f"| bicubic upsampling | {metrics['bicubic_psnr']:.2f} | {metrics['bicubic_ssim']:.4f} | "
          f"{metrics['bicubic_fid']:.2f} |")  # fmt: skip
    print(f"| super-resolution diffusion | {metrics['psnr']:.2f} | {metrics['ssim']:.4f} | {metrics['fid']:.2f} |")
    print("\n| 32 px samples | FID |")
    print("|---|---|")
    print(f"| base (16 px) upsampled bicubically | {metrics['base_upsampled_fid']:.2f} |")
    print(f"| cascade (base + super-resolution) | {metrics['cascade_fid']:.2f} |")
    print("\n| sampling noise level | cascade FID |")
    print("|---|---|")
    for level in (int(value) for value in args.noise_levels.split(",")):
        print(f"| {level} | {cascade_fid(cascade_dir, level):.2f} |", flush=True)


if __name__ == "__main__":
    main()
