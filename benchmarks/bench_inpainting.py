#!/usr/bin/env python
"""Text-guided inpainting on the built-in digits: a default train_ldm.py model turned into an inpainting model with
train_inpainting.py; prints, as a Markdown table, the inpainting figures of the trained model beside the plain model
inpainting by latent blending and the masked input left unfilled.

    python benchmarks/bench_inpainting.py                        # trains the plain model first (train_ldm.py defaults)
    python benchmarks/bench_inpainting.py --base_dir ldm-digits  # a plain model trained before
    python benchmarks/bench_inpainting.py --base_dir ldm-digits --train_steps 300   # a quicker look

The inpainting run is `train_inpainting.py` with its defaults but `--output_dir`, `--seed` and `--max_train_steps`;
the table reads the `metrics.json` it wrote. Every one of the first `--num_eval_samples` (360: all) held-out digits
gets a fixed mask (a box for even images, strokes for odd ones) and the prompt of its class, or an empty prompt;
FID (hfgen's digits classifier) of the inpainted images against the originals, class preservation (the classifier
reads the inpainted digit as its class), PSNR outside the mask before the input's pixels are pasted back. The
unfilled input is the same whatever the prompt.
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base_dir", default=None, help="A train_ldm.py folder; by default one is trained.")
    parser.add_argument("--train_steps", type=int, default=None, help="Default: train_inpainting.py's.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work_dir", default="bench-inpainting", help="Where the runs write their folders.")
    args = parser.parse_args()

    base = args.base_dir
    if base is None:
        base = os.path.join(args.work_dir, "ldm")
        minutes = launch("train_ldm.py", base, ["--seed", str(args.seed)]) / 60
        print(f"plain model: train_ldm.py defaults, {minutes:.1f} minutes")
    output_dir = os.path.join(args.work_dir, "inpainting")
    extra = ["--pretrained_model_name_or_path", base, "--seed", str(args.seed), "--validation_steps", "100000"]
    if args.train_steps is not None:
        extra += ["--max_train_steps", str(args.train_steps)]
    minutes = launch("train_inpainting.py", output_dir, extra) / 60
    with open(os.path.join(output_dir, "metrics.json")) as file:
        record = json.load(file)

    metrics = record["metrics"]
    print(
        "| method | digits-FID, class prompt | class preservation, class prompt | digits-FID, empty prompt | "
        "class preservation, empty prompt | PSNR outside the mask (dB) |"
    )
    print("|---|---|---|---|---|---|")
    rows = (
        ("inpainting LDM (train_inpainting.py)", "", "unprompted_"),
        ("plain LDM, latent blending", "blending_", "blending_unprompted_"),
        ("masked input, unfilled", "unfilled_", "unfilled_"),
    )
    for name, prompted, unprompted in rows:
        psnr = metrics.get(f"{prompted}psnr_outside")
        print(
            f"| {name} | {metrics[prompted + 'fid']:.3g} | {100 * metrics[prompted + 'class_accuracy']:.1f}% | "
            f"{metrics[unprompted + 'fid']:.3g} | {100 * metrics[unprompted + 'class_accuracy']:.1f}% | "
            f"{'-' if psnr is None else f'{psnr:.1f}'} |"
        )
    print(f"\ninpainting training: {record['step']} steps, {minutes:.1f} minutes (evaluation included)")
    print(f"protocol: {json.dumps(record['protocol'])}")


if __name__ == "__main__":
    main()
