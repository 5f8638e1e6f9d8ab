#!/usr/bin/env python
"""GAN training speed on this machine, side by side with a reference implementation; prints Markdown tables.

    # a scratch copy of pytorch/examples' dcgan/ (only read, never imported as a dependency):
    git clone --depth 1 https://github.com/pytorch/examples /tmp/refs/examples
    python benchmarks/bench_gan_speed.py --reference_dir /tmp/refs/examples

DCGAN step (64 px RGB, nz 100, ngf = ndf = 64, batch 64, one discriminator and one generator update): the networks of
pytorch/examples' `dcgan/main.py` (read from `--reference_dir`) trained by its loop, against hfgen's `GANGenerator` /
`GANDiscriminator` of the same widths, for each `generator_upsampling`, trained as `train_gan.py` trains them: its
phases (`hfgen.training.adversarial.run_phase`: the generator step reuses the fakes and holds the discriminator's
weights out of its backward), channels-last weights (`--channels_last`) and fused Adam. Each configuration runs in a
fresh process, `--runs` times, interleaved; the median is reported. GFLOP per step is counted with torch's own
per-operator formulas and set against the fp32 matmul throughput measured here.

Each script's overhead over its own bare step, and every family's default step in GFLOP/s: bench_script_overhead.py.
"""

import argparse
import ast
import json
import os
import statistics
import subprocess
import sys
import time

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DCGAN = dict(image_size=64, num_channels=3, latent_dim=100, channels=64, batch_size=64)
UPSAMPLINGS = ("transposed", "pixel_shuffle", "nearest")
REFERENCE_NAMES = {"weights_init", "Generator", "Discriminator"}  # what is read from pytorch/examples' dcgan/main.py


class FlopCounter(TorchDispatchMode):
    """Counts the FLOPs of matmuls and convolutions (forward, backward and double backward alike) with torch's
    per-operator formulas. torch's `FlopCounterMode` does the same but also tracks modules, which fails under the
    double backward of R1 / path-length penalties; this mode looks at operators only."""

    def __init__(self):
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.flops += formula(*args, **kwargs, out_val=out)
        return out


def matmul_peak_gflops(size: int = 2048, repeats: int = 10) -> float:
    """fp32 matmul throughput of this machine with torch's threads, the ceiling a training step is set against."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def reference_dcgan_step(reference_dir: str):
    """pytorch/examples' DCGAN networks, built from the class definitions in its `dcgan/main.py` (the script itself
    parses flags and loads data at import, so only its `weights_init`, `Generator` and `Discriminator` run), and one
    iteration of its loop: D on a real batch and on `G(noise).detach()`, D step, then G through D on the same fake."""
    path = os.path.join(reference_dir, "dcgan", "main.py")
    with open(path) as f:
        tree = ast.parse(f.read())
    wanted = [n for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef)) and n.name in REFERENCE_NAMES]
    namespace = {"torch": torch, "nn": torch.nn, "ngpu": 1, "nz": DCGAN["latent_dim"], "nc": DCGAN["num_channels"]}
    namespace.update(ngf=DCGAN["channels"], ndf=DCGAN["channels"])
    exec(compile(ast.Module(body=wanted, type_ignores=[]), path, "exec"), namespace)
    generator, discriminator = namespace["Generator"](1), namespace["Discriminator"](1)
    generator.apply(namespace["weights_init"])
    discriminator.apply(namespace["weights_init"])
    criterion = torch.nn.BCELoss()
    d_optimizer = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    g_optimizer = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    batch = DCGAN["batch_size"]
    real = torch.rand(batch, DCGAN["num_channels"], DCGAN["image_size"], DCGAN["image_size"]) * 2 - 1
    real_label, fake_label = torch.ones(batch), torch.zeros(batch)

    def step():
        discriminator.zero_grad()
        criterion(discriminator(real), real_label).backward()
        fake = generator(torch.randn(batch, DCGAN["latent_dim"], 1, 1))
        criterion(discriminator(fake.detach()), fake_label).backward()
        d_optimizer.step()
        generator.zero_grad()
        criterion(discriminator(fake), real_label).backward()
        g_optimizer.step()

    return step


def hfgen_dcgan_step(upsampling: str):
    """hfgen's DCGAN of the same widths, one iteration of train_gan.py's loop: the D main phase on real images and
    the fakes (drawn with the generator's graph), then the G main phase on the same fakes with D held."""
    import hfgen

    config = hfgen.GANConfig(
        image_size=DCGAN["image_size"],
        num_channels=DCGAN["num_channels"],
        latent_dim=DCGAN["latent_dim"],
        generator_channels=DCGAN["channels"],
        discriminator_channels=DCGAN["channels"],
        max_channels=8 * DCGAN["channels"],
        generator_upsampling=upsampling,
    )
    return adversarial_step(*plain_accelerated(hfgen.GANGenerator(config), hfgen.GANDiscriminator(config)), config)


def plain_accelerated(generator, discriminator):
    """The networks as the scripts train them by default: channels-last (`--channels_last`), on an accelerator."""
    from accelerate import Accelerator

    for network in (generator, discriminator):
        network.to(memory_format=torch.channels_last)
    accelerator = Accelerator(cpu=True)
    return accelerator, generator.train(), discriminator.train()


def adversarial_step(accelerator, generator, discriminator, config, batch_size: int | None = None):
    """One D main + G main iteration through `run_phase`, as train_gan.py runs it (no augmentation, no R1)."""
    from hfgen.losses import discriminator_loss, generator_loss
    from hfgen.training.adversarial import Phase, run_phase

    batch = batch_size or DCGAN["batch_size"]
    betas = (0.5, 0.999)
    d_optimizer = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=betas, fused=True)  # as the scripts
    d_main = Phase("D main", discriminator, d_optimizer)
    g_optimizer = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=betas, fused=True)
    g_main = Phase("G main", generator, g_optimizer, held=discriminator)
    size = config.image_size
    real = torch.rand(batch, config.num_channels, size, size) * 2 - 1
    labels = torch.arange(batch) % config.num_classes if config.num_classes else None

    def d_main_loss(micro_batch):
        real_images, fake = micro_batch
        real_logits = discriminator(real_images, labels=labels).logits
        fake_logits = discriminator(fake.detach(), labels=labels).logits
        return discriminator_loss(real_logits, fake_logits, "non-saturating"), {}

    def g_main_loss(micro_batch):
        _, fake = micro_batch
        return generator_loss(discriminator(fake, labels=labels).logits, "non-saturating"), {}

    def step():
        fake = generator(torch.randn(batch, config.latent_dim), labels=labels).sample
        run_phase(d_main, accelerator, [(real, fake)], d_main_loss)
        run_phase(g_main, accelerator, [(real, fake)], g_main_loss)

    return step


def measure(name: str, reference_dir: str | None, steps: int) -> dict:
    """Images per second and GFLOP per step of one configuration (run in its own process)."""
    torch.manual_seed(0)
    if name == "dcgan-reference":
        step = reference_dcgan_step(reference_dir)
    else:
        step = hfgen_dcgan_step(name.removeprefix("dcgan-hfgen-"))
    for _ in range(3):  # warm-up: allocator, oneDNN kernels
        step()
    counter = FlopCounter()
    with counter:
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps
    return {
        "name": name,
        "seconds": seconds,
        "images_per_second": DCGAN["batch_size"] / seconds,
        "gflop": counter.flops / 1e9,
    }


def in_fresh_process(name: str, reference_dir: str | None, steps: int) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--single", name, "--steps", str(steps)]
    if reference_dir:
        command += ["--reference_dir", reference_dir]
    result = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference_dir", default=None, help="A scratch copy of pytorch/examples.")
    parser.add_argument("--runs", type=int, default=3, help="Fresh-process runs of each configuration (median).")
    parser.add_argument("--steps", type=int, default=10, help="Timed steps per run, after 3 warm-up steps.")
    parser.add_argument("--single", default=None, help=argparse.SUPPRESS)  # one configuration, in this process
    args = parser.parse_args()
    if args.single:
        print(json.dumps(measure(args.single, args.reference_dir, args.steps)))
        return

    peak = matmul_peak_gflops()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32 matmul peak {peak:.0f} GFLOP/s\n")
    names = [f"dcgan-hfgen-{upsampling}" for upsampling in UPSAMPLINGS]
    if args.reference_dir:
        names.insert(0, "dcgan-reference")
    results = {name: [] for name in names}
    for _ in range(args.runs):  # interleaved, so slow drifts of the machine hit every configuration alike
        for name in names:
            results[name].append(in_fresh_process(name, args.reference_dir, args.steps))
    reference = None
    if args.reference_dir:
        reference = statistics.median(run["images_per_second"] for run in results["dcgan-reference"])
    print(
        "| DCGAN step (64 px RGB, nz 100, ngf = ndf = 64, batch 64) | img/s (median) | vs reference | GFLOP/step ",
        end="",
    )
    print("| GFLOP/s | % of matmul peak |\n|---|---|---|---|---|---|")
    for name, runs in results.items():
        speed = statistics.median(run["images_per_second"] for run in runs)
        seconds = statistics.median(run["seconds"] for run in runs)
        gflop = runs[0]["gflop"]
        ratio = f"{speed / reference:.2f}x" if reference else "-"
        rate = gflop / seconds
        print(f"| {name} | {speed:.1f} | {ratio} | {gflop:.1f} | {rate:.0f} | {100 * rate / peak:.0f}% |")


if __name__ == "__main__":
    main()
