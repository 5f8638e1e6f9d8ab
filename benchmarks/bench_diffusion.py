#!/usr/bin/env python
"""Diffusion benchmarks on this machine; each part prints a Markdown table.

    # 1. training images/s of train_ddpm.py against diffusers' examples/unconditional_image_generation/
    #    train_unconditional.py on the same UNet config, batch and data. The reference needs torchvision, so it runs
    #    from its own scratch venv (see ../shared/OFFLINE-FACTS.md section 7), never as a dependency of hfgen:
    python benchmarks/bench_diffusion.py training --reference_script /tmp/refdiff/train_unconditional.py \
        --reference_python /tmp/refdiff/venv/bin/python
    # 2. sampling images/s and digits-FID of DDPM (1000 steps) and DDIM (several step counts) on one trained model:
    python benchmarks/bench_diffusion.py sampling --model_dir ddpm-digits
    # 3. prompt accuracy and FID of a latent diffusion model against the guidance scale:
    python benchmarks/bench_diffusion.py guidance --model_dir ldm-digits

Training speed is timed as users run the scripts: each script runs as a subprocess twice, for a short and a long
schedule, and the difference of the wall times over the difference of the steps gives the seconds per step, free of
start-up, data loading, saving and evaluation, which both runs share. The runs alternate (reference, hfgen, ...) and
the median of `--runs` is reported. The data is the built-in digits written out as RGB PNGs (the reference converts
every image to RGB), the UNet the 32-64-64 one of OFFLINE-FACTS (1.11 M parameters), batch 32, fp32, EMA on in both.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_DDPM = os.path.join(REPO, "training_scripts", "diffusion", "train_ddpm.py")
BENCH_UNET = dict(
    sample_size=32,
    in_channels=3,
    out_channels=3,
    layers_per_block=1,
    block_out_channels=[32, 64, 64],
    down_block_types=["DownBlock2D", "AttnDownBlock2D", "DownBlock2D"],
    up_block_types=["UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
    norm_num_groups=8,
    attention_head_dim=8,
)
BATCH_SIZE = 32


# --- 1. training speed ---


def write_digit_folders(folder: str, counts: tuple[int, ...]) -> dict[int, str]:
    """The first `count` built-in training digits as 32 px RGB PNGs, one folder per count."""
    from hfgen.data import load_digits_dataset

    train = load_digits_dataset(32)["train"]
    folders = {}
    for count in counts:
        path = os.path.join(folder, f"digits_{count}", "train")
        os.makedirs(path, exist_ok=True)
        for index in range(count):
            train[index % len(train)]["image"].convert("RGB").save(os.path.join(path, f"{index:05d}.png"))
        folders[count] = os.path.dirname(path)
    return folders


def timed_run(command: list[str], cwd: str) -> float:
    environment = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONWARNINGS="ignore")
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} failed:\n{result.stderr[-3000:]}")
    return elapsed


def hfgen_command(data_dir: str, config_dir: str, output_dir: str, steps: int) -> list[str]:
    return [
        sys.executable,
        TRAIN_DDPM,
        "--train_data_dir",
        data_dir,
        "--model_config_name_or_path",
        config_dir,
        "--color_mode",
        "RGB",
        "--resolution",
        "32",
        "--train_batch_size",
        str(BATCH_SIZE),
        "--max_train_steps",
        str(steps),
        "--validation_split",
        "4",
        "--num_eval_samples",
        "4",
        "--num_inference_steps",
        "2",
        "--checkpointing_steps",
        "100000",
        "--validation_steps",
        "100000",
        "--report_to",
        "none",
        "--output_dir",
        output_dir,
    ]


def reference_command(python: str, script: str, data_dir: str, config_dir: str, output_dir: str) -> list[str]:
    # one epoch over the folder: its size sets the number of steps
    return [
        python,
        script,
        "--train_data_dir",
        data_dir,
        "--model_config_name_or_path",
        config_dir,
        "--resolution",
        "32",
        "--train_batch_size",
        str(BATCH_SIZE),
        "--eval_batch_size",
        "4",
        "--num_epochs",
        "1",
        "--ddpm_num_inference_steps",
        "2",
        "--save_images_epochs",
        "1",
        "--save_model_epochs",
        "1",
        "--use_ema",
        "--mixed_precision",
        "no",
        "--dataloader_num_workers",
        "0",
        "--output_dir",
        output_dir,
    ]


def bare_step_seconds(repeats: int = 10) -> float:
    """A forward, backward and AdamW step of the same UNet on a random batch: the floor both scripts sit on."""
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(**BENCH_UNET)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    images, timesteps = torch.randn(BATCH_SIZE, 3, 32, 32), torch.randint(0, 1000, (BATCH_SIZE,))
    times = []
    for index in range(repeats + 2):
        start = time.perf_counter()
        loss = (unet(images, timesteps).sample - images).square().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if index >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def training(args) -> None:
    from diffusers import UNet2DModel

    short, long = args.steps
    with tempfile.TemporaryDirectory() as scratch:
        folders = write_digit_folders(scratch, (short * BATCH_SIZE, long * BATCH_SIZE))
        config_dir = os.path.join(scratch, "unet")
        UNet2DModel(**BENCH_UNET).save_config(config_dir)
        seconds = {"reference": [], "hfgen": []}
        for run in range(args.runs):
            for name in ("reference", "hfgen"):
                wall = {}
                for steps in (short, long):
                    output_dir = os.path.join(scratch, f"{name}-{steps}-{run}")
                    data_dir = folders[steps * BATCH_SIZE]
                    if name == "hfgen":
                        command = hfgen_command(data_dir, config_dir, output_dir, steps)
                    else:
                        command = reference_command(
                            args.reference_python, args.reference_script, data_dir, config_dir, output_dir
                        )
                    wall[steps] = timed_run(command, scratch)
                seconds[name].append((wall[long] - wall[short]) / (long - short))
                print(f"run {run}: {name} {seconds[name][-1]:.3f} s/step", file=sys.stderr)
    bare = bare_step_seconds()
    reference = statistics.median(seconds["reference"])
    ours = statistics.median(seconds["hfgen"])
    print(
        f"\nDDPM training step, UNet2DModel 32-64-64 (1.11 M), batch {BATCH_SIZE}, 32 px RGB digits, fp32, EMA on, "
        f"torch threads {torch.get_num_threads()}; median of {args.runs} runs of {short} and {long} steps\n"
    )
    print("| script | s/step | images/s | vs reference |")
    print("|---|---|---|---|")
    print(f"| diffusers train_unconditional.py | {reference:.3f} | {BATCH_SIZE / reference:.1f} | 1.00x |")
    print(f"| hfgen train_ddpm.py | {ours:.3f} | {BATCH_SIZE / ours:.1f} | {reference / ours:.2f}x |")
    print(
        f"| bare fwd + bwd + AdamW (hfgen's torch) | {bare:.3f} | {BATCH_SIZE / bare:.1f} | {reference / bare:.2f}x |"
    )


# --- 2. sampling speed and quality ---


def digits_fid(samples: torch.Tensor, test_images: torch.Tensor) -> dict:
    from hfgen.metrics import GenerativeMetrics, load_digits_feature_extractor

    metrics = GenerativeMetrics(load_digits_feature_extractor(), sync_on_compute=False)
    metrics.update(test_images, real=True)
    metrics.update(samples, real=False)
    values = metrics.compute()
    return {
        "fid": values["fid"],
        "kid_mean": values["kid_mean"],
        "precision": values["precision"],
        "recall": values["recall"],
    }


def test_digits(resolution: int, color_mode: str) -> torch.Tensor:
    from hfgen.data import images_as_tensor, load_digits_dataset

    return images_as_tensor(load_digits_dataset(resolution)["test"], resolution, color_mode)


@torch.no_grad()
def sampling(args) -> None:
    from diffusers import DDIMScheduler, DDPMScheduler

    import hfgen

    pipeline = hfgen.DDPMPipeline.from_pretrained(args.model_dir)
    pipeline.set_progress_bar_config(disable=True)
    config = pipeline.unet.config
    test_images = test_digits(config.sample_size, "L" if config.in_channels == 1 else "RGB")
    ddpm_config = pipeline.scheduler.config
    samplers = [] if args.no_ddpm else [("DDPM", ddpm_config.num_train_timesteps, None)]
    samplers += [("DDIM", steps, eta) for eta in args.etas for steps in args.ddim_steps]
    rows = []
    for name, steps, eta in samplers:
        scheduler_class = DDPMScheduler if name == "DDPM" else DDIMScheduler
        pipeline.scheduler = scheduler_class.from_config(ddpm_config)
        extra = {} if eta is None else {"eta": eta}
        samples, start = [], time.perf_counter()
        generator = torch.Generator().manual_seed(args.seed)
        for first in range(0, args.num_samples, args.batch_size):
            count = min(args.batch_size, args.num_samples - first)
            images = pipeline(
                batch_size=count, num_inference_steps=steps, generator=generator, output_type="pt", **extra
            ).images
            samples.append(images * 2 - 1)
        elapsed = time.perf_counter() - start
        metrics = None if args.no_fid else digits_fid(torch.cat(samples), test_images)
        rows.append((name, steps, eta, args.num_samples / elapsed, metrics))
        print(f"{name} {steps} eta {eta}: {rows[-1][3]:.3f} images/s, {metrics}", file=sys.stderr)
    print(
        f"\nSampling {args.num_samples} images of {args.model_dir} (batch {args.batch_size}), digits-FID against the "
        f"{len(test_images)} test digits; torch threads {torch.get_num_threads()}\n"
    )
    print("| sampler | steps | eta | images/s | FID | KID | precision | recall |")
    print("|---|---|---|---|---|---|---|---|")
    for name, steps, eta, speed, metrics in rows:
        quality = (
            "- | - | - | -"
            if metrics is None
            else f"{metrics['fid']:.2f} | {metrics['kid_mean']:.3f} | {metrics['precision']:.3f} | "
            f"{metrics['recall']:.3f}"
        )
        print(f"| {name} | {steps} | {'-' if eta is None else eta} | {speed:.3f} | {quality} |")


# --- 3. guidance ---


@torch.no_grad()
def guidance(args) -> None:
    import hfgen
    from hfgen.data.captions import LabelCaptions
    from hfgen.metrics import load_digits_classifier, to_classifier_pixels

    pipeline = hfgen.LatentDiffusionPipeline.from_pretrained(args.model_dir)
    pipeline.set_progress_bar_config(disable=True)
    captions = LabelCaptions([str(digit) for digit in range(10)])
    classifier = load_digits_classifier()
    channels = pipeline.vae.config.in_channels
    size = pipeline.unet.config.sample_size * 2 ** (len(pipeline.vae.config.block_out_channels) - 1)
    test_images = test_digits(size, "L" if channels == 1 else "RGB")
    labels = torch.arange(args.num_samples) % 10
    print(
        f"\nPrompt accuracy of {args.num_samples} samples of {args.model_dir} (prompts "
        f"'{captions.templates[0]}' with the ten digits, balanced; {args.steps} DDIM steps; chance 10%)\n"
    )
    print("| guidance scale | prompt accuracy | FID | samples/s |")
    print("|---|---|---|---|")
    for scale in args.scales:
        generator = torch.Generator().manual_seed(args.seed)
        samples, start = [], time.perf_counter()
        for first in range(0, args.num_samples, args.batch_size):
            prompts = [captions.prompt(int(label)) for label in labels[first : first + args.batch_size]]
            images = pipeline(
                prompt=prompts,
                guidance_scale=scale,
                num_inference_steps=args.steps,
                generator=generator,
                output_type="pt",
            ).images
            samples.append(images * 2 - 1)
        elapsed = time.perf_counter() - start
        samples = torch.cat(samples)
        predicted = classifier(to_classifier_pixels(samples, classifier.config.image_size)).logits.argmax(dim=1)
        accuracy = (predicted == labels).float().mean().item()
        fid = digits_fid(samples, test_images)["fid"]
        print(f"| {scale:g} | {accuracy * 100:.1f}% | {fid:.2f} | {args.num_samples / elapsed:.1f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parts = parser.add_subparsers(dest="part", required=True)
    part = parts.add_parser("training")
    part.add_argument("--reference_script", required=True, help="diffusers' train_unconditional.py (scratch copy)")
    part.add_argument("--reference_python", required=True, help="The Python of a scratch venv with torchvision.")
    part.add_argument("--steps", type=int, nargs=2, default=(10, 40))
    part.add_argument("--runs", type=int, default=3)
    part = parts.add_parser("sampling")
    part.add_argument("--model_dir", required=True)
    part.add_argument("--ddim_steps", type=int, nargs="+", default=[10, 25, 50, 100])
    part.add_argument("--etas", type=float, nargs="+", default=[0.0, 1.0], help="DDIM's eta values to run.")
    part.add_argument("--no_ddpm", action="store_true", help="Leave out DDPM's full chain (the slow reference).")
    part.add_argument("--no_fid", action="store_true", help="Time only (e.g. a few images on a quiet machine).")
    part.add_argument("--num_samples", type=int, default=360)
    part.add_argument("--batch_size", type=int, default=180)
    part.add_argument("--seed", type=int, default=0)
    part = parts.add_parser("guidance")
    part.add_argument("--model_dir", required=True)
    part.add_argument("--scales", type=float, nargs="+", default=[1.0, 2.0, 3.0, 5.0, 7.5])
    part.add_argument("--steps", type=int, default=25)
    part.add_argument("--num_samples", type=int, default=360)
    part.add_argument("--batch_size", type=int, default=120)
    part.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    {"training": training, "sampling": sampling, "guidance": guidance}[args.part](args)


if __name__ == "__main__":
    main()
