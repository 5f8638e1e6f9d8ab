#!/usr/bin/env python
"""Each training script's time per step against its own bare step, and each family's default step in GFLOP/s.

    HF_HUB_OFFLINE=1 python benchmarks/bench_script_overhead.py

For `train_vae.py`, `train_gan.py` and `train_stylegan.py` at their defaults on the built-in digits:

- script, per step: the script's wall time for two run lengths, the difference divided by the difference in steps,
  so that start-up, decoding the data, the final evaluation and the Hub folder, which both runs share, cancel out.
  Checkpoints and validation are moved past the end of the run; everything else (TensorBoard logging, the progress
  bar, EMA, learning-rate schedules, the data loader) runs as a user gets it. The lengths are multiples of 16, so
  that StyleGAN's lazy regularisers (R1 every 16 steps) come at their rate.
- bare step: the same model, batch, optimizer and phases (what the step computes: the VAE's gradient clipping, the
  GANs' reused fakes and held discriminator, StyleGAN's lazy R1 amortised) on one fixed random batch, without data
  loading, logging, EMA, schedules or checkpoint checks.
- GFLOP per bare step (torch's per-operator formulas, `bench_gan_speed.FlopCounter`, over a whole regulariser
  cycle and divided by its length), GFLOP/s and % of the fp32 matmul peak measured here.

Each bare step and each script run is a fresh process; `--runs` interleaved repeats, medians reported.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

BENCHMARKS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCHMARKS)
sys.path.insert(0, BENCHMARKS)
from bench_gan_speed import FlopCounter, adversarial_step, matmul_peak_gflops, plain_accelerated  # noqa: E402

SCRIPTS = {"vae": "vae/train_vae.py", "gan": "gan/train_gan.py", "stylegan": "gan/train_stylegan.py"}
CYCLE = 16  # steps over which every lazy regulariser has come at its rate


def script_module(family: str):
    folder, name = os.path.split(SCRIPTS[family])
    sys.path.insert(0, os.path.join(REPO, "training_scripts", folder))
    return __import__(name.removesuffix(".py"))


def vae_bare_step():
    """train_vae.py's step: the ELBO of a sampled posterior, gradients clipped to --max_grad_norm, fused AdamW."""
    train_vae = script_module("vae")
    args = train_vae.parse_args([])
    args.color_mode = "L"  # the digits' (the script reads it from the data)
    model = train_vae.build_model(args).train()
    model.to(memory_format=torch.channels_last)
    betas = (args.adam_beta1, args.adam_beta2)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=args.learning_rate, betas=betas, weight_decay=args.adam_weight_decay, fused=True
    )
    images = torch.rand(args.train_batch_size, 1, args.resolution, args.resolution) * 2 - 1

    def step():
        model(images, sample_posterior=True).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad()

    return step, args.train_batch_size


def gan_bare_step():
    """train_gan.py's step: its default conditional DCGAN on 10 classes, D main then G main on the same fakes."""
    train_gan = script_module("gan")
    args = train_gan.parse_args([])
    args.color_mode = "L"
    generator, discriminator = train_gan.build_models(args, num_classes=10)
    # adversarial_step's Adam settings (lr 2e-4, betas (0.5, 0.999)) are train_gan.py's defaults
    step = adversarial_step(
        *plain_accelerated(generator, discriminator), generator.config, batch_size=args.train_batch_size
    )
    return step, args.train_batch_size


def stylegan_bare_step():
    """train_stylegan.py's step: its default conditional StyleGAN 2 at 16 px, D main, lazy R1, G main on the same fakes
    (path length and style mixing are off up to 32 px), through bench_stylegan_speed.py's copy of its loop."""
    from bench_stylegan_speed import hfgen_step

    from hfgen.data import load_digits_dataset

    train_stylegan = script_module("stylegan")
    args = train_stylegan.parse_args([])
    args.color_mode = "L"
    generator, discriminator = train_stylegan.build_models(args, num_classes=10)
    num_train_images = len(load_digits_dataset(args.resolution)["train"])  # for --augment auto, as the script
    step, _ = hfgen_step(args, generator, discriminator, args.train_batch_size, num_train_images)
    iteration = iter(range(10**9))
    return lambda: step(next(iteration)), args.train_batch_size


BARE_STEPS = {"vae": vae_bare_step, "gan": gan_bare_step, "stylegan": stylegan_bare_step}


def measure_bare_step(family: str, cycles: int) -> dict:
    """Seconds and GFLOP per bare step, amortised over whole regulariser cycles (run in its own process)."""
    torch.manual_seed(0)
    step, batch_size = BARE_STEPS[family]()
    counter = FlopCounter()
    with counter:  # also the warm-up: allocator, oneDNN kernels
        for _ in range(CYCLE):
            step()
    start = time.perf_counter()
    for _ in range(cycles * CYCLE):
        step()
    seconds = (time.perf_counter() - start) / (cycles * CYCLE)
    return {"seconds": seconds, "gflop": counter.flops / CYCLE / 1e9, "batch_size": batch_size}


def script_seconds(family: str, steps: int) -> float:
    """Wall time of one run of the script at its defaults on the digits, for `steps` steps."""
    with tempfile.TemporaryDirectory() as folder:
        command = [
            sys.executable, os.path.join(REPO, "training_scripts", SCRIPTS[family]),
            "--output_dir", folder, "--max_train_steps", str(steps),
            "--checkpointing_steps", "100000", "--validation_steps", "100000", "--num_eval_samples", "40",
        ]  # fmt: skip
        start = time.perf_counter()
        subprocess.run(command, check=True, cwd=REPO, capture_output=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
        return time.perf_counter() - start


def in_fresh_process(family: str, cycles: int) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--single", family, "--cycles", str(cycles)]
    result = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=list(SCRIPTS), choices=list(SCRIPTS))
    parser.add_argument("--runs", type=int, default=3, help="Interleaved repeats of every measurement (median).")
    parser.add_argument("--cycles", type=int, default=2, help=f"Timed cycles of {CYCLE} bare steps per run.")
    parser.add_argument(
        "--script_steps", type=int, nargs=2, default=(48, 144), help="The two run lengths of each script."
    )
    parser.add_argument("--single", default=None, help=argparse.SUPPRESS)  # one bare step, in this process
    args = parser.parse_args()
    if args.single:
        print(json.dumps(measure_bare_step(args.single, args.cycles)))
        return
    short, long = args.script_steps
    if short % CYCLE or long % CYCLE or long <= short:
        parser.error(f"--script_steps: two increasing multiples of {CYCLE}, got {short} {long}")

    peak = matmul_peak_gflops()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32 matmul peak {peak:.0f} GFLOP/s\n")
    bare = {family: [] for family in args.families}
    script = {family: [] for family in args.families}
    for _ in range(args.runs):  # interleaved, so slow drifts of the machine hit every measurement alike
        for family in args.families:
            bare[family].append(in_fresh_process(family, args.cycles))
            per_step = (script_seconds(family, long) - script_seconds(family, short)) / (long - short)
            script[family].append(per_step)
    print("| script (defaults, digits) | batch | bare step, s | GFLOP/step | GFLOP/s | % of matmul peak ", end="")
    print(f"| script, s/step (runs of {short} and {long}) | overhead |\n|---|---|---|---|---|---|---|---|")
    for family in args.families:
        seconds = statistics.median(run["seconds"] for run in bare[family])
        gflop, batch = bare[family][0]["gflop"], bare[family][0]["batch_size"]
        per_step = statistics.median(script[family])
        rate = gflop / seconds
        print(
            f"| {SCRIPTS[family]} | {batch} | {seconds:.4f} | {gflop:.2f} | {rate:.0f} | {100 * rate / peak:.0f}% "
            f"| {per_step:.4f} | {per_step / seconds:.2f}x |"
        )


if __name__ == "__main__":
    main()
