#!/usr/bin/env python
"""Speed and quality of hfgen's VAE on this machine; prints a Markdown table of what it measured.

    python benchmarks/bench_vae.py --model_dir vae-digits     # a folder written by training_scripts/vae/train_vae.py

- training throughput: images/s of optimizer steps (forward, backward, AdamW) on the default architecture of
  train_vae.py at 32 px, batch 64;
- sampling throughput: images/s of `VAEPipeline` prior sampling and of `reconstruct`, batch 256;
- quality of the trained model in `--model_dir`: test PSNR / SSIM of reconstructions, and digits-FID / KID / IS /
  precision / recall of prior samples against the held-out split, next to the two references measured the same way.
"""

import argparse
import os
import sys
import time

import torch

import hfgen
from hfgen.data import collate_images, image_transform, load_digits_dataset
from hfgen.metrics import (
    GenerativeMetrics,
    digits_reference_metrics,
    load_digits_classifier,
    load_digits_feature_extractor,
    metric_protocol,
    psnr,
    sample_diversity_ratio,
    ssim,
    to_classifier_pixels,
)

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "training_scripts", "vae"))
from train_vae import DEFAULT_ARCHITECTURE, LATENT_CHANNELS_PER_IMAGE_CHANNEL


def timed(function, repeats: int) -> float:
    function()  # warm-up: first calls allocate and pick kernels
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - start) / repeats


def training_throughput(batch_size: int, repeats: int) -> float:
    model = hfgen.VAEModel(
        hfgen.VAEConfig(
            in_channels=1, sample_size=32, latent_channels=LATENT_CHANNELS_PER_IMAGE_CHANNEL, **DEFAULT_ARCHITECTURE
        )
    )
    model.train()
    model.to(memory_format=torch.channels_last)  # as train_vae.py trains it (--channels_last, fused AdamW)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    images = torch.rand(batch_size, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1

    def step():
        loss = model(images, sample_posterior=True).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return batch_size / timed(step, repeats)


def sampling_throughput(pipeline, test_images, batch_size: int, repeats: int) -> tuple:
    generator = torch.Generator().manual_seed(0)
    sample_seconds = timed(lambda: pipeline(batch_size=batch_size, generator=generator, output_type="pt"), repeats)
    recon_seconds = timed(
        lambda: pipeline.reconstruct(test_images[:batch_size] * 0.5 + 0.5, output_type="pt"), repeats
    )
    return batch_size / sample_seconds, min(batch_size, len(test_images)) / recon_seconds


# A sample counts as readable when the digits classifier gives one class at least this probability.
READABLE_CONFIDENCE = 0.9


@torch.no_grad()
def readable_share(images: torch.Tensor) -> float:
    """Share of `images` (in [-1, 1]) that hfgen's digits classifier assigns to one class with probability >= 0.9:
    a digit a reader would name at once, rather than an ambiguous loop."""
    classifier = load_digits_classifier()
    probabilities = classifier(to_classifier_pixels(images, classifier.config.image_size)).logits.softmax(dim=1)
    return (probabilities.max(dim=1).values >= READABLE_CONFIDENCE).float().mean().item()


@torch.no_grad()
def quality(pipeline, test_images, num_samples: int, seed: int) -> dict:
    vae = pipeline.vae
    reconstructions = vae(test_images, sample_posterior=False).sample.clamp(-1, 1)
    metrics = GenerativeMetrics(load_digits_feature_extractor(), sync_on_compute=False)
    metrics.update(test_images, real=True)
    samples = pipeline(batch_size=num_samples, generator=torch.Generator().manual_seed(seed), output_type="pt").images
    metrics.update(samples * 2 - 1, real=False)
    return {
        "psnr": psnr(reconstructions, test_images).item(),
        "ssim": ssim(reconstructions, test_images).item(),
        "readable": readable_share(samples * 2 - 1),
        "readable_real": readable_share(test_images),
        "diversity_ratio": sample_diversity_ratio(samples * 2 - 1, test_images, load_digits_feature_extractor())[
            "diversity_ratio"
        ],
        **metrics.compute(),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", type=str, default="vae-digits", help="Output folder of train_vae.py.")
    parser.add_argument("--train_batch_size", type=int, default=64)
    parser.add_argument("--sample_batch_size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--num_samples", type=int, default=360)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device cpu")
    rows = [
        (
            f"training throughput (default architecture, 32 px, batch {args.train_batch_size})",
            f"{training_throughput(args.train_batch_size, args.repeats):.0f} images/s",
        )
    ]

    pipeline = hfgen.VAEPipeline.from_pretrained(args.model_dir)
    pipeline.set_progress_bar_config(disable=True)
    resolution = pipeline.vae.config.sample_size
    test = load_digits_dataset(resolution)["test"].with_transform(image_transform(resolution, "L"))
    test_images = collate_images([test[i] for i in range(len(test))])["pixel_values"]
    sampling, reconstruction = sampling_throughput(pipeline, test_images, args.sample_batch_size, args.repeats)
    rows.append((f"prior sampling throughput (batch {args.sample_batch_size})", f"{sampling:.0f} images/s"))
    rows.append((f"reconstruction throughput (batch {args.sample_batch_size})", f"{reconstruction:.0f} images/s"))

    measured = quality(pipeline, test_images, args.num_samples, args.seed)
    references = digits_reference_metrics(num_samples=args.num_samples, seed=0)
    rows.append(("test PSNR of reconstructions (posterior mean)", f"{measured['psnr']:.2f} dB"))
    rows.append(("test SSIM of reconstructions", f"{measured['ssim']:.3f}"))
    for key, label in (
        ("fid", "digits-FID"),
        ("kid_mean", "digits-KID"),
        ("inception_score_mean", "digits-IS"),
        ("precision", "precision (k=3)"),
        ("recall", "recall (k=3)"),
    ):
        reference_text = ", ".join(f"{name}: {values[key]:.3g}" for name, values in references.items())
        rows.append(
            (f"{label} of {args.num_samples} prior samples", f"{measured[key]:.3g} (references: {reference_text})")
        )

    rows.append(
        (
            f"readable prior samples (digits classifier confidence >= {READABLE_CONFIDENCE})",
            f"{100 * measured['readable']:.1f}% (real test digits: {100 * measured['readable_real']:.1f}%)",
        )
    )
    rows.append(
        (
            "diversity ratio of the prior samples (digits features; 1: as varied as real digits)",
            f"{measured['diversity_ratio']:.3f}",
        )
    )

    print(f"\nmodel: {os.path.abspath(args.model_dir)}")
    print(f"protocol: {metric_protocol(args.num_samples, dataset='hfgen/digits', split='test')}\n")
    print("| measure | value |\n|---|---|")
    for label, value in rows:
        print(f"| {label} | {value} |")


if __name__ == "__main__":
    main()
