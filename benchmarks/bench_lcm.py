#!/usr/bin/env python
"""Latent consistency distillation on the built-in digits: a default train_ldm.py teacher distilled into a full LCM
and into LCM-LoRA adapters with train_lcm_distill.py; prints FID, prompt accuracy and images per second of the
students at 1, 2, 4 and 8 LCM steps beside the teacher's 25 DDIM steps (guidance 3), as a Markdown table.

    python benchmarks/bench_lcm.py                                   # trains the teacher first (train_ldm.py defaults)
    python benchmarks/bench_lcm.py --teacher_dir ldm-digits          # a teacher trained before
    python benchmarks/bench_lcm.py --teacher_dir ldm-digits --distill_steps 300   # a quicker look

Each distillation is `train_lcm_distill.py` with its defaults but `--output_dir`, `--seed` and `--max_train_steps`;
the table reads the `metrics.json` each run wrote (FID through hfgen's digits classifier against the held-out digits,
prompt accuracy: the share of samples prompted "a handwritten digit seven" etc. that the classifier reads as the
prompted class; images per second on one batch of 64 prompts, decoding included, on this machine's CPU).
"""

import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(REPO, "training_scripts", "diffusion")


def launch(script: str, output_dir: str, extra: list[str]) -> float:
    """Run a training script as a user does; returns its wall time in seconds."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1"]
    command += ["--mixed_precision", "no", "--dynamo_backend", "no", os.path.join(SCRIPTS, script)]
    command += ["--output_dir", output_dir, "--report_to", "none", *extra]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def percent(metrics: dict, name: str) -> str:
    return f"{100 * metrics[name]:.1f}%" if name in metrics else "-"


def record_steps(name: str) -> int | None:
    """The step count of a metric named `<metric>_<n>_steps` (the students' --extra_steps), else None."""
    parts = name.split("_")
    return int(parts[-2]) if len(parts) >= 3 and parts[-1] == "steps" and parts[-2].isdigit() else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher_dir", default=None, help="A train_ldm.py folder; by default one is trained.")
    parser.add_argument("--distill_steps", type=int, default=None, help="Default: train_lcm_distill.py's.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work_dir", default="bench-lcm", help="Where the runs write their folders.")
    args = parser.parse_args()

    teacher = args.teacher_dir
    if teacher is None:
        teacher = os.path.join(args.work_dir, "teacher")
        minutes = launch("train_ldm.py", teacher, ["--seed", str(args.seed)]) / 60
        print(f"teacher: train_ldm.py defaults, {minutes:.1f} minutes")
    extra = ["--pretrained_model_name_or_path", teacher, "--seed", str(args.seed), "--validation_steps", "100000"]
    if args.distill_steps is not None:
        extra += ["--max_train_steps", str(args.distill_steps)]
    records = {}
    for kind, flags in (("full LCM", []), ("LCM-LoRA", ["--use_lora"])):
        output_dir = os.path.join(args.work_dir, "lcm-lora" if flags else "lcm")
        minutes = launch("train_lcm_distill.py", output_dir, extra + flags) / 60
        with open(os.path.join(output_dir, "metrics.json")) as file:
            records[kind] = (json.load(file), minutes)

    print("| model | sampler | digits-FID | prompt accuracy | images / s | distillation minutes |")
    print("|---|---|---|---|---|---|")
    first, _ = next(iter(records.values()))
    metrics = first["metrics"]
    print(
        f"| teacher (train_ldm.py) | DDIM 25 steps, guidance 3 | {metrics['teacher_fid']:.3g} | "
        f"{percent(metrics, 'teacher_class_accuracy')} | {metrics['teacher_images_per_second']:.1f} | - |"
    )
    for kind, (record, minutes) in records.items():
        metrics = record["metrics"]
        for count in sorted({4} | {steps for steps in map(record_steps, metrics) if steps}):
            suffix = "" if count == 4 else f"_{count}_steps"
            speed = f"{metrics['images_per_second']:.1f}" if count == 4 else "-"
            print(
                f"| {kind} | LCM {count} steps | {metrics['fid' + suffix]:.3g} | "
                f"{percent(metrics, 'class_accuracy' + suffix)} | {speed} | {minutes:.1f} |"
            )
        ratio = metrics["sampling_speedup"]
        print(f"\n{kind}: sampling-time ratio (4 LCM steps against 25 guided DDIM steps) {ratio:.1f}x")
    print(f"\nprotocol: {json.dumps(first['protocol'])}")


if __name__ == "__main__":
    main()
