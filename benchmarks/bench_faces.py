#!/usr/bin/env python
"""Every family trained with its defaults on a small real folder of faces; prints a Markdown table of what it
measured.

    python benchmarks/bench_faces.py                                   # VAE, DCGAN and StyleGAN on hfgen/faces
    python benchmarks/bench_faces.py --families stylegan --metrics_model facebook/dinov2-small   # with FD-DINOv2

The data is the built-in `hfgen/faces`: the 100 real greyscale faces of scikit-image's `lfw_subset` (80 train / 20
test), the size of a folder a user brings. Each script runs with its defaults but `--dataset_name hfgen/faces` and
`--output_dir`, exactly as a user would start it, and the table reads the `metrics.json` each run wrote:

- the diversity ratio: mean pairwise distance of the samples over that of the real evaluation images (1: as varied
  as the faces, 0: mode collapse), in pixels, or in the `--metrics_model` features when one is given;
- FID / KID / precision / recall through `--metrics_model` (any transformers vision backbone; DINOv2 is the
  documented choice) when given: none ships with hfgen and none can be downloaded offline;
- for the VAE, PSNR / SSIM of reconstructions of the evaluation faces;
- the wall time of the whole run. The sample grids are copied to `--figures_dir` for the README.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = {"vae": "vae/train_vae.py", "gan": "gan/train_gan.py", "stylegan": "gan/train_stylegan.py"}


def train(family: str, output_dir: str, extra: list[str]) -> float:
    """Run the family's script as a user does; returns its wall time in seconds."""
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
        os.path.join(REPO, "training_scripts", SCRIPTS[family]),
        "--dataset_name",
        "hfgen/faces",
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
    parser.add_argument("--families", nargs="+", default=list(SCRIPTS), choices=list(SCRIPTS))
    parser.add_argument("--work_dir", default="bench-faces", help="Where the runs write their folders.")
    parser.add_argument("--figures_dir", default=os.path.join(REPO, "benchmarks", "figures"))
    parser.add_argument("--metrics_model", default=None, help="Backbone for FID / KID / precision / recall.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    extra = ["--seed", str(args.seed)] + (["--metrics_model", args.metrics_model] if args.metrics_model else [])
    os.makedirs(args.figures_dir, exist_ok=True)
    rows = []
    for family in args.families:
        output_dir = os.path.join(args.work_dir, family)
        seconds = train(family, output_dir, extra)
        with open(os.path.join(output_dir, "metrics.json")) as file:
            record = json.load(file)
        metrics = record["metrics"]
        shutil.copy(os.path.join(output_dir, "samples.png"), os.path.join(args.figures_dir, f"faces-{family}.png"))
        measured = [f"diversity ratio {metrics['diversity_ratio']:.2f}"]
        for key, label in (
            ("fid", "FID"),
            ("kid_mean", "KID"),
            ("precision", "precision"),
            ("recall", "recall"),
            ("psnr", "PSNR (dB)"),
            ("ssim", "SSIM"),
        ):
            if key in metrics:
                measured.append(f"{label} {metrics[key]:.3g}")
        references = record.get("references", {})
        if references:
            measured.append(
                "FID references: " + ", ".join(f"{name} {values['fid']:.3g}" for name, values in references.items())
            )
        rows.append((family, record["step"], f"{seconds / 60:.1f} min", "; ".join(measured)))

    print(f"data: hfgen/faces (80 train / 20 test real faces); evaluation split: test; seed {args.seed}")
    print("extractor: " + (args.metrics_model or "none (diversity in pixels; pass --metrics_model for FID)") + "\n")
    print("| family | steps | wall time | measured |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")


if __name__ == "__main__":
    main()
