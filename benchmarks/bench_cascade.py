#!/usr/bin/env python
"""Cascaded diffusion on the built-in digits: a base DDPM at 16 px (train_ddpm.py), then the super-resolution stage
16 -> 32 px on it (train_super_resolution.py --base_model_name_or_path); prints what was measured as Markdown tables.

    python benchmarks/bench_cascade.py                                       # the scripts' defaults
    python benchmarks/bench_cascade.py --base_steps 800                      # the base of the README's figures
    python benchmarks/bench_cascade.py --base_model_name_or_path ddpm-16/    # reuse a trained base
    python benchmarks/bench_cascade.py --dataset_name hfgen/faces            # the stage alone, on the faces
    python benchmarks/bench_cascade.py --sr_flags="--prediction_target image" # the SR3 formulation

The runs are the scripts as users run them, with their defaults but the resolution, the output folder and the
lengths given here. The tables read the folder's `metrics.json` (FID with hfgen's digits classifier on the 360
held-out digits; no FID on the faces, which have no feature extractor of their own):

- the super-resolution stage alone: PSNR / SSIM / FID of the held-out images downsampled to 16 px and
  super-resolved, beside bicubic upsampling of the same 16 px images;
- the cascade: FID of its samples beside the base model's samples upsampled bicubically;

then, measured on the saved folder as `hfgen evaluate` measures it, the stage alone at each of `--steps` DDIM steps
and each of `--sr_noise_levels` (the conditioning's noise augmentation), and the cascade's FID at each of
`--noise_levels`: the sweeps behind the pipelines' defaults.
"""

import argparse
import json
import logging
import os
import shlex
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


class SavedRun:
    """A train_super_resolution.py folder, its run's data and settings, measured again with other sampling settings."""

    def __init__(self, folder: str):
        from accelerate import Accelerator

        from hfgen.cli import RUN_DEFAULTS
        from hfgen.families import recorded_arguments
        from hfgen.pipelines.cascade.evaluation import EVALUATION_DEFAULTS, sampling_pipeline
        from hfgen.pipelines.sampling import load_pipeline
        from hfgen.training.evaluation import load_run_data

        self.run = argparse.Namespace(**{**RUN_DEFAULTS, **EVALUATION_DEFAULTS, **recorded_arguments(folder)})
        self.accelerator = Accelerator()
        self.saved = load_pipeline(folder)
        config = self.saved.config
        self.stage = sampling_pipeline(
            self.saved.unet,
            self.saved.scheduler,
            config.low_resolution,
            config.prediction_target,
            config.residual_scale,
        )
        self.data = load_run_data(self.run, self.accelerator, logging.getLogger(__name__))

    def stage_metrics(self, num_inference_steps: int, noise_level: int) -> dict:
        """PSNR / SSIM / FID of the stage alone (and of bicubic) with these sampling settings."""
        from hfgen.pipelines.cascade.evaluation import evaluate_super_resolution

        run = argparse.Namespace(**vars(self.run))
        run.num_inference_steps, run.sampling_noise_level = num_inference_steps, noise_level
        return evaluate_super_resolution(self.stage, self.data, run, self.accelerator)

    def cascade_fid(self, noise_level: int) -> float:
        """The cascade's FID with the base's images noised to `noise_level`."""
        from hfgen.pipelines.cascade.evaluation import cascade_pipeline, evaluate_cascade

        run = argparse.Namespace(**vars(self.run))
        run.cascade_noise_level = noise_level
        cascade = cascade_pipeline(self.saved.stages()[0], self.stage)
        return evaluate_cascade(cascade, self.data, run, self.accelerator)["cascade_fid"]


def stage_row(name: str, metrics: dict, prefix: str = "") -> str:
    fid = f"{metrics[prefix + 'fid']:.3g}" if prefix + "fid" in metrics else "-"
    return f"| {name} | {metrics[prefix + 'psnr']:.2f} | {metrics[prefix + 'ssim']:.4f} | {fid} |"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_root", default=os.path.join(REPO, "bench-cascade"))
    parser.add_argument("--base_steps", type=int, default=None, help="train_ddpm.py's steps (its default if unset).")
    parser.add_argument(
        "--base_model_name_or_path",
        default=None,
        help="A train_ddpm.py folder at 16 px to use instead of training one.",
    )
    parser.add_argument(
        "--sr_steps", type=int, default=None, help="train_super_resolution.py's steps (its default if unset)."
    )
    parser.add_argument("--sr_flags", default="", help="More flags for train_super_resolution.py, as one string.")
    parser.add_argument("--dataset_name", default=None, help="Another dataset (hfgen/faces): the stage alone.")
    parser.add_argument("--noise_levels", default="0,25,50,100", help="Cascade FID at these sampling noise levels.")
    parser.add_argument("--sr_noise_levels", default="0,50", help="The stage alone at these noise levels.")
    parser.add_argument("--steps", default="5,10,25,50", help="The stage alone at these DDIM steps (noise level 0).")
    parser.add_argument(
        "--measure_only", action="store_true", help="Measure the folders already in --output_root again, no training."
    )
    args = parser.parse_args()
    os.makedirs(args.output_root, exist_ok=True)
    name = "super_resolution-16-32" if args.dataset_name else "cascade-16-32"
    sr_dir = os.path.join(args.output_root, name)

    base_time = sr_time = None
    sr_flags = ["--resolution", "32", "--low_resolution", "16", *shlex.split(args.sr_flags)]
    sr_flags += ["--max_train_steps", str(args.sr_steps)] if args.sr_steps else []
    if args.dataset_name:
        sr_flags += ["--dataset_name", args.dataset_name]
    else:
        base_dir = args.base_model_name_or_path
        if base_dir is None:
            base_dir = os.path.join(args.output_root, "ddpm-16")
            base_flags = ["--resolution", "16"]
            base_flags += ["--max_train_steps", str(args.base_steps)] if args.base_steps else []
            if not args.measure_only:
                base_time = train("train_ddpm.py", base_dir, base_flags)
        sr_flags += ["--base_model_name_or_path", base_dir]
    if not args.measure_only:
        sr_time = train("train_super_resolution.py", sr_dir, sr_flags)

    with open(os.path.join(sr_dir, "metrics.json")) as file:
        record = json.load(file)
    metrics = record["metrics"]
    with open(os.path.join(sr_dir, "training_args.json")) as file:
        target = json.load(file)["prediction_target"]
    times = f": base DDPM 16 px {base_time / 60:.1f} min" if base_time is not None else ""
    times += f", super-resolution {sr_time / 60:.1f} min" if sr_time is not None else ""
    print(f"\nsuper-resolution 16 -> 32 px, {target} model{times}")
    print(f"({record['protocol']['sampler']}; {record['protocol']['dataset']}, {record['protocol']['split']})\n")
    print("| 16 -> 32 px on the held-out images | PSNR (dB) | SSIM | FID |")
    print("|---|---|---|---|")
    print(stage_row("bicubic upsampling", metrics, "bicubic_"))
    print(stage_row(f"super-resolution diffusion ({target})", metrics))
    if "cascade_fid" in metrics:
        print("\n| 32 px samples | FID |")
        print("|---|---|")
        print(f"| base (16 px) upsampled bicubically | {metrics['base_upsampled_fid']:.2f} |")
        print(f"| cascade (base + super-resolution) | {metrics['cascade_fid']:.2f} |")

    saved = SavedRun(sr_dir)
    default_steps = saved.run.num_inference_steps
    settings = [(int(steps), 0) for steps in args.steps.split(",")]
    settings += [(default_steps, int(level)) for level in args.sr_noise_levels.split(",") if args.sr_noise_levels]
    print("\n| the stage alone: DDIM steps, noise level | PSNR (dB) | SSIM | FID |")
    print("|---|---|---|---|")
    for steps, level in sorted(set(settings)):
        print(stage_row(f"{steps}, {level}", saved.stage_metrics(steps, level)), flush=True)
    if "cascade_fid" in metrics:
        print("\n| sampling noise level | cascade FID |")
        print("|---|---|")
        for level in (int(value) for value in args.noise_levels.split(",")):
            print(f"| {level} | {saved.cascade_fid(level):.2f} |", flush=True)


if __name__ == "__main__":
    main()
