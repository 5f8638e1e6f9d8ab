#!/usr/bin/env python
"""How well does a StyleGAN trained on a small folder of faces reconstruct faces it never saw? Inversion into W and W+.

    python benchmarks/bench_stylegan_inversion.py                          # trains train_stylegan.py on hfgen/faces
    python benchmarks/bench_stylegan_inversion.py --generator_dir stylegan-faces --num_steps 500

The generator is `train_stylegan.py` with its defaults on the built-in `hfgen/faces` (80 training faces), or the
folder given. Each of the 20 held-out test faces is inverted with `StyleGANPipeline.invert` (pixel distance at three
scales; no feature model offline) in W and in W+, and the table gives the mean PSNR and SSIM of the reconstructions
against the faces, beside the image the search starts from (the average w) as the baseline, and the wall time. The
figure (`--figures_dir`) shows, per column, a face, its W and its W+ reconstruction.
"""

import argparse
import os
import subprocess
import sys
import time

import torch

REPO = os.path.dirname(os.path.abspath(os.path.dirname(__file__)))


def train_generator(output_dir: str) -> None:
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1"]
    command += ["--mixed_precision", "no", "--dynamo_backend", "no"]
    command += [os.path.join(REPO, "training_scripts", "gan", "train_stylegan.py")]
    command += ["--dataset_name", "hfgen/faces", "--output_dir", output_dir]
    subprocess.run(command, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator_dir", default=None, help="A StyleGAN folder; default: train one on the faces.")
    parser.add_argument("--work_dir", default="/tmp/hfgen-bench-inversion")
    parser.add_argument("--num_steps", type=int, default=300)
    parser.add_argument("--figures_dir", default=os.path.join(REPO, "benchmarks", "figures"))
    args = parser.parse_args()

    import hfgen
    from hfgen.data import load_image_dataset
    from hfgen.metrics import psnr, ssim
    from hfgen.pipelines.sampling import image_grid
    from hfgen.pipelines.stylegan.editing import images_as_pixels

    folder = args.generator_dir
    training_time = None
    if folder is None:
        folder = os.path.join(args.work_dir, "stylegan-faces")
        start = time.perf_counter()
        train_generator(folder)
        training_time = time.perf_counter() - start
    pipeline = hfgen.StyleGANPipeline.from_pretrained(folder)
    pipeline.set_progress_bar_config(disable=True)
    resolution = pipeline.stylegan.config.resolution
    faces = load_image_dataset("hfgen/faces", None, resolution, None, None)["test"]
    images = [face.convert("L") for face in faces["image"]]
    # the faces as the generator sees them (as `invert` reads them: resized bicubic, its colour mode, in [-1, 1])
    config = pipeline.stylegan.config
    targets = images_as_pixels(images, resolution, config.num_channels, "cpu", torch.float32)

    rows = []
    with torch.no_grad():
        average = pipeline.stylegan.mapping.w_avg.expand(len(images), pipeline.stylegan.num_ws, -1)
        start_images = pipeline.stylegan.synthesize(average, noise_mode="const").clamp(-1, 1)
    rows.append(("the average w (where the search starts)", start_images, 0.0))
    reconstructions = {}
    for space in ("w", "w+"):
        start = time.perf_counter()
        output = pipeline.invert(images, num_steps=args.num_steps, space=space, output_type="pt")
        reconstructions[space] = output.images * 2 - 1
        rows.append(
            (
                f"inverted in {space.upper()} ({args.num_steps} steps)",
                reconstructions[space],
                time.perf_counter() - start,
            )
        )

    if training_time is not None:
        print(f"generator: train_stylegan.py defaults on hfgen/faces, {training_time / 60:.1f} min")
    print(f"{len(images)} held-out faces at {resolution} px\n")
    print("| reconstruction | PSNR (dB) | SSIM | time |")
    print("|---|---|---|---|")
    for name, reconstructed, seconds in rows:
        print(
            f"| {name} | {psnr(reconstructed, targets).item():.1f} | {ssim(reconstructed, targets).item():.3f} "
            f"| {seconds:.0f} s |"
        )
    os.makedirs(args.figures_dir, exist_ok=True)

    from PIL import Image

    def as_image(pixels):
        array = ((pixels.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).squeeze(-1).numpy()
        return Image.fromarray(array).resize((64, 64), Image.NEAREST)

    columns = min(8, len(images))
    tiles = [as_image(targets[index]) for index in range(columns)]
    tiles += [as_image(reconstructions["w"][index]) for index in range(columns)]
    tiles += [as_image(reconstructions["w+"][index]) for index in range(columns)]
    path = os.path.join(args.figures_dir, "stylegan-inversion-faces.png")
    image_grid(tiles, columns=columns).save(path)
    print(f"\nfigure: {path} (rows: held-out faces, W, W+)")


if __name__ == "__main__":
    main()
