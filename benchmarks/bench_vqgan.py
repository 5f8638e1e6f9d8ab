#!/usr/bin/env python
"""The VQ-GAN (train_vqgan.py) trained on the built-in digits and faces; prints a Markdown table of what it measured.

    python benchmarks/bench_vqgan.py                                   # digits and faces, the script's defaults
    python benchmarks/bench_vqgan.py --datasets hfgen/digits --max_train_steps 100 --prior_train_steps 300

Each run is `train_vqgan.py` with its defaults (architecture, losses, codebook, schedule) but `--dataset_name`,
`--output_dir` and the lengths given here. The table reads the `metrics.json` each run wrote: PSNR, SSIM and rFID of
the held-out images' reconstructions, the codebook perplexity and the share of codes those images never use, and the
prior's sample FID (on the digits through hfgen's digits classifier; the faces have no feature extractor offline, so
their rFID and FID are not measured and the diversity ratio is in pixels). On the digits it adds the share of prior
samples the digits classifier reads confidently (one class at probability >= 0.9, as bench_vae.py counts it), the
unconditional prior's stand-in for a class accuracy. The sample grids are copied to `--figures_dir`.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "training_scripts", "vae", "train_vqgan.py")


def train(dataset: str, output_dir: str, extra: list[str]) -> float:
    """Run train_vqgan.py as a user does; returns its wall time in seconds."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1"]
    command += ["--mixed_precision", "no", "--dynamo_backend", "no", SCRIPT, "--dataset_name", dataset]
    command += ["--output_dir", output_dir, "--report_to", "none", *extra]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


@torch.no_grad()
def readable_prior_samples(output_dir: str, num_samples: int, seed: int) -> tuple[float, float]:
    """Share of the prior's samples, and of the digits' test images, that the digits classifier reads confidently."""
    from bench_vae import readable_share

    import hfgen
    from hfgen.data import collate_images, image_transform, load_digits_dataset

    pipeline = hfgen.VQGANPipeline.from_pretrained(output_dir)
    pipeline.set_progress_bar_config(disable=True)
    generator = torch.Generator().manual_seed(seed)
    samples = pipeline(batch_size=num_samples, generator=generator, output_type="pt").images * 2 - 1
    test = load_digits_dataset()["test"].with_transform(image_transform(32, "L"))
    reals = collate_images([test[i] for i in range(len(test))])["pixel_values"]
    return readable_share(samples), readable_share(reals)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["hfgen/digits", "hfgen/faces"])
    parser.add_argument("--max_train_steps", type=int, default=None, help="Default: the script's.")
    parser.add_argument("--prior_train_steps", type=int, default=None, help="Default: the script's.")
    parser.add_argument("--work_dir", default="bench-vqgan", help="Where the runs write their folders.")
    parser.add_argument("--figures_dir", default=os.path.join(REPO, "benchmarks", "figures"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    os.makedirs(args.figures_dir, exist_ok=True)
    extra = ["--seed", str(args.seed)]
    for flag in ("max_train_steps", "prior_train_steps"):
        if getattr(args, flag) is not None:
            extra += [f"--{flag}", str(getattr(args, flag))]
    rows = []
    for dataset in args.datasets:
        name = os.path.basename(dataset)
        output_dir = os.path.join(args.work_dir, name)
        shutil.rmtree(output_dir, ignore_errors=True)
        seconds = train(dataset, output_dir, extra)
        with open(os.path.join(output_dir, "metrics.json")) as file:
            record = json.load(file)
        metrics = record["metrics"]
        shutil.copy(os.path.join(output_dir, "samples.png"), os.path.join(args.figures_dir, f"vqgan-{name}.png"))
        measured = [
            f"{label} {metrics[key]:.3g}"
            for key, label in (
                ("psnr", "PSNR"),
                ("ssim", "SSIM"),
                ("rfid", "rFID"),
                ("codebook_perplexity", "perplexity"),
                ("unused_code_share", "unused codes"),
                ("fid", "prior FID"),
                ("precision", "precision"),
                ("recall", "recall"),
                ("diversity_ratio", "diversity ratio"),
            )
            if key in metrics
        ]
        if record["protocol"].get("extractor") == "digits classifier" and "fid" in metrics:
            readable, readable_real = readable_prior_samples(output_dir, record["protocol"]["num_fake_samples"], 0)
            measured.append(f"readable samples {readable:.1%} (test digits {readable_real:.1%})")
        references = record.get("references", {})
        if references:
            measured.append(
                "FID references: " + ", ".join(f"{ref} {values['fid']:.3g}" for ref, values in references.items())
            )
        with open(os.path.join(output_dir, "training_args.json")) as file:
            recorded = json.load(file)
        steps = f"{recorded['max_train_steps']} + {recorded['prior_train_steps']}"
        rows.append((dataset, record["protocol"]["split"], steps, f"{seconds / 60:.1f} min", "; ".join(measured)))
        print(json.dumps({"dataset": dataset, "seconds": seconds, "metrics": metrics}), flush=True)

    print("\ntrain_vqgan.py defaults (steps: autoencoder + prior), 1 process on this machine's CPUs\n")
    print("| data | evaluated split | steps | wall time | measured |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")


if __name__ == "__main__":
    main()
