#!/usr/bin/env python
"""Speed and quality of hfgen's GANs on this machine; prints a Markdown table of what it measured.

    python benchmarks/bench_gan.py --model_dir gan-digits              # a folder written by train_gan.py
    python benchmarks/bench_stylegan.py --model_dir stylegan-digits    # a folder written by train_stylegan.py

- training throughput: real images per second through one full training step of the script's default
  architecture (a discriminator update on a real and a generated batch, then a generator update) at its default
  resolution and batch size, lazy regularisers included at their amortised cost for StyleGAN;
- sampling throughput: images/s of the pipeline, batch 256;
- quality of the trained model in `--model_dir`: digits-FID / KID / IS / precision / recall of samples against the
  held-out split next to the two references measured the same way, and the class accuracy of conditional samples
  (hfgen's digits classifier reads each sample; the share given its label).
"""

import argparse
import os
import sys

import torch
from accelerate import Accelerator

import hfgen
from hfgen.data import BUILTIN_DIGITS, image_transform, load_digits_dataset
from hfgen.losses import discriminator_loss, generator_loss, path_length_penalty, r1_penalty
from hfgen.metrics import digits_reference_metrics, load_digits_feature_extractor, metric_protocol
from hfgen.training.evaluation import RunEvaluation, evaluate_generator

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "training_scripts", "gan"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_gan
import train_stylegan
from bench_vae import timed


def default_models(family: str):
    script = train_gan if family == "gan" else train_stylegan
    args = script.parse_args([])
    args.color_mode = "L"  # the digits' (the script reads it from the data)
    generator, discriminator = script.build_models(args, num_classes=10)
    return args, generator.train(), discriminator.train()


def training_step(family: str, args, generator, discriminator):
    """One step of the script's loop, without the accelerate plumbing."""
    g_optimizer = torch.optim.Adam(generator.parameters(), lr=1e-4, betas=(0.0, 0.99))
    d_optimizer = torch.optim.Adam(discriminator.parameters(), lr=1e-4, betas=(0.0, 0.99))
    batch, size = args.train_batch_size, args.resolution
    real = torch.rand(batch, 1, size, size) * 2 - 1
    labels = torch.arange(batch) % 10
    latent_dim = generator.config.latent_dim
    loss = args.loss if family == "gan" else "non-saturating"
    step = {"count": 0}

    def run():
        lazy_r1 = family == "stylegan" and step["count"] % args.r1_interval == 0
        lazy_pl = family == "stylegan" and step["count"] % args.pl_interval == 0
        with torch.no_grad():
            fake = generator(torch.randn(batch, latent_dim), labels=labels).sample
        real_seen = real.detach().requires_grad_(lazy_r1)
        real_logits = discriminator(real_seen, labels=labels).logits
        d_total = discriminator_loss(real_logits, discriminator(fake, labels=labels).logits, loss)
        if lazy_r1:
            d_total = d_total + r1_penalty(real_logits, real_seen)
        d_optimizer.zero_grad()
        d_total.backward()
        d_optimizer.step()
        discriminator.requires_grad_(False)
        output = generator(torch.randn(batch, latent_dim), labels=labels)
        g_total = generator_loss(discriminator(output.sample, labels=labels).logits, loss)
        if lazy_pl:
            shrunk = batch // args.pl_batch_shrink
            pl_output = generator(torch.randn(shrunk, latent_dim), labels=labels[:shrunk])
            g_total = g_total + path_length_penalty(pl_output.sample, pl_output.ws, torch.zeros(()))[0]
        g_optimizer.zero_grad()
        g_total.backward()
        g_optimizer.step()
        discriminator.requires_grad_(True)
        step["count"] += 1

    return run


def quality(family: str, model_dir: str, num_samples: int, seed: int) -> dict:
    if family == "gan":
        generator = hfgen.GANGenerator.from_pretrained(model_dir).eval()
        resolution = generator.config.image_size
    else:
        generator = hfgen.StyleGANGenerator.from_pretrained(model_dir).eval()
        resolution = generator.config.resolution
    digits = load_digits_dataset(resolution)
    evaluation = RunEvaluation(
        dataset=BUILTIN_DIGITS,
        split="test",
        train=digits["train"],
        evaluation=digits["test"],
        feature_extractor=load_digits_feature_extractor(),
        note="",
    )
    test = digits["test"].with_transform(image_transform(resolution, "L"))

    def sample(batch_size, labels, torch_generator):
        z = torch.randn(batch_size, generator.config.latent_dim, generator=torch_generator)
        if family == "gan":
            return generator(z, labels=labels).sample
        return generator(z, labels=labels, noise_mode="random", generator=torch_generator).sample

    return evaluate_generator(
        sample, evaluation, test, Accelerator(cpu=True), num_samples, seed, generator.config.num_classes
    )


def main(family: str = "gan"):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model_dir",
        type=str,
        default=f"{'gan' if family == 'gan' else 'stylegan'}-digits",
        help="Output folder of the training script.",
    )
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--sample_batch_size", type=int, default=256)
    parser.add_argument("--num_samples", type=int, default=360)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device cpu")
    torch.manual_seed(0)
    script_args, generator, discriminator = default_models(family)
    step_seconds = timed(training_step(family, script_args, generator, discriminator), args.repeats)
    rows = [
        (
            f"training throughput (default architecture, {script_args.resolution} px, batch "
            f"{script_args.train_batch_size})",
            f"{script_args.train_batch_size / step_seconds:.0f} real images/s ({step_seconds:.3f} s per D + G step)",
        )
    ]

    pipeline_class = hfgen.GANPipeline if family == "gan" else hfgen.StyleGANPipeline
    pipeline = pipeline_class.from_pretrained(args.model_dir)
    pipeline.set_progress_bar_config(disable=True)
    component = pipeline.gan if family == "gan" else pipeline.stylegan
    labels = 3 if component.config.num_classes else None
    generator_rng = torch.Generator().manual_seed(0)
    sample_seconds = timed(
        lambda: pipeline(
            batch_size=args.sample_batch_size, class_labels=labels, generator=generator_rng, output_type="pt"
        ),
        args.repeats,
    )
    rows.append(
        (
            f"sampling throughput (pipeline, batch {args.sample_batch_size})",
            f"{args.sample_batch_size / sample_seconds:.0f} images/s",
        )
    )

    measured = quality(family, args.model_dir, args.num_samples, args.seed)
    references = digits_reference_metrics(num_samples=args.num_samples, seed=0)
    for key, label in (
        ("fid", "digits-FID"),
        ("kid_mean", "digits-KID"),
        ("inception_score_mean", "digits-IS"),
        ("precision", "precision (k=3)"),
        ("recall", "recall (k=3)"),
    ):
        reference_text = ", ".join(f"{name}: {values[key]:.3g}" for name, values in references.items())
        rows.append((f"{label} of {args.num_samples} samples", f"{measured[key]:.3g} (references: {reference_text})"))
    rows.append(
        (
            f"diversity ratio of {args.num_samples} samples (digits features; 1: as varied as real digits)",
            f"{measured['diversity_ratio']:.3f}",
        )
    )
    if "class_accuracy" in measured:
        rows.append(
            (
                f"class accuracy of {args.num_samples} conditional samples (digits classifier)",
                f"{100 * measured['class_accuracy']:.1f}%",
            )
        )

    print(f"\nmodel: {os.path.abspath(args.model_dir)}")
    print(f"protocol: {metric_protocol(args.num_samples, dataset='hfgen/digits', split='test')}\n")
    print("| measure | value |\n|---|---|")
    for label, value in rows:
        print(f"| {label} | {value} |")


if __name__ == "__main__":
    main("gan")
