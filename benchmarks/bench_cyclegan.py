#!/usr/bin/env python
"""CycleGAN / pix2pix benchmarks on this machine; each part prints a Markdown table.

    # 1. hfgen's CycleGAN training step against the reference implementation's, side by side in one process:
    python benchmarks/bench_cyclegan.py speed --reference_dir pytorch-CycleGAN-and-pix2pix/
    # 2. training and translation images/s of the scripts' default networks on the built-in digit pair:
    python benchmarks/bench_cyclegan.py throughput
    # 3. quality of finished runs (PSNR / SSIM / FID / class preservation against the identity-mapping baseline):
    python benchmarks/bench_cyclegan.py quality cyclegan-digits-colour pix2pix-digits-colour

`speed` builds the same networks both ways, at the papers' configuration (ResNet-9 generators with 64 channels,
70x70 PatchGAN discriminators with 64, instance norm, LSGAN, cycle weight 10, identity 0.5, pool of 50, Adam 2e-4,
batch 1) and times one full training iteration of each (both generators' step, then both discriminators'), median
over `--repeats` after a warm-up. The reference's iteration is its `CycleGANModel.optimize_parameters` (forward,
backward_G, backward_D_A, backward_D_B) written against its own `models/networks.py`, which is loaded from
`--reference_dir` (a checkout of junyanz/pytorch-CycleGAN-and-pix2pix; never part of hfgen). hfgen's is
`train_cyclegan.py`'s `CycleGANStep`, run as the script runs it, under accelerate, with fused Adam and, with instance
norm, joint passes (see `CycleGANStep`); in contiguous memory order, the script's default (channels-last, faster for
the other families, is slower here: instance norm copies channels-last activations back; the table shows it).
"""

import argparse
import functools
import importlib.util
import json
import os
import statistics
import sys
import time
from types import SimpleNamespace

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(REPO, "training_scripts", "translation")


def load_module(name: str, path: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def timed(function, repeats: int) -> float:
    function()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def reference_iteration(reference_dir: str, resolution: int, batch_size: int):
    """One training iteration of the reference CycleGAN, in the order and with the losses of its
    `CycleGANModel.optimize_parameters`, on its own networks (`models/networks.py` of `reference_dir`)."""
    import itertools
    import random

    networks = load_module("reference_networks", os.path.join(reference_dir, "models", "networks.py"))
    norm = networks.get_norm_layer("instance")
    generator_a = networks.ResnetGenerator(3, 3, 64, norm_layer=norm, use_dropout=False, n_blocks=9)
    generator_b = networks.ResnetGenerator(3, 3, 64, norm_layer=norm, use_dropout=False, n_blocks=9)
    discriminator_a = networks.NLayerDiscriminator(3, 64, n_layers=3, norm_layer=norm)
    discriminator_b = networks.NLayerDiscriminator(3, 64, n_layers=3, norm_layer=norm)
    for network in (generator_a, generator_b, discriminator_a, discriminator_b):
        networks.init_weights(network, "normal", 0.02)
    gan_loss = networks.GANLoss("lsgan")
    l1 = torch.nn.L1Loss()
    optimizer_g = torch.optim.Adam(
        itertools.chain(generator_a.parameters(), generator_b.parameters()), lr=2e-4, betas=(0.5, 0.999)
    )
    optimizer_d = torch.optim.Adam(
        itertools.chain(discriminator_a.parameters(), discriminator_b.parameters()), lr=2e-4, betas=(0.5, 0.999)
    )
    pools = {"a": [], "b": []}

    def query(pool, images):  # the reference's ImagePool(50)
        returned = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(pool) < 50:
                pool.append(image)
                returned.append(image)
            elif random.uniform(0, 1) > 0.5:
                index = random.randint(0, 49)
                returned.append(pool[index].clone())
                pool[index] = image
            else:
                returned.append(image)
        return torch.cat(returned, 0)

    def set_requires_grad(nets, flag):
        for net in nets:
            for parameter in net.parameters():
                parameter.requires_grad = flag

    def backward_d(discriminator, real, fake):
        loss = (gan_loss(discriminator(real), True) + gan_loss(discriminator(fake.detach()), False)) * 0.5
        loss.backward()

    real_a = torch.rand(batch_size, 3, resolution, resolution) * 2 - 1
    real_b = torch.rand(batch_size, 3, resolution, resolution) * 2 - 1

    def iteration():
        fake_b = generator_a(real_a)
        rec_a = generator_b(fake_b)
        fake_a = generator_b(real_b)
        rec_b = generator_a(fake_a)
        set_requires_grad([discriminator_a, discriminator_b], False)
        optimizer_g.zero_grad()
        idt_a = generator_a(real_b)
        idt_b = generator_b(real_a)
        loss = (
            l1(idt_a, real_b) * 10 * 0.5
            + l1(idt_b, real_a) * 10 * 0.5
            + gan_loss(discriminator_a(fake_b), True)
            + gan_loss(discriminator_b(fake_a), True)
            + l1(rec_a, real_a) * 10
            + l1(rec_b, real_b) * 10
        )
        loss.backward()
        optimizer_g.step()
        set_requires_grad([discriminator_a, discriminator_b], True)
        optimizer_d.zero_grad()
        backward_d(discriminator_a, real_b, query(pools["b"], fake_b))
        backward_d(discriminator_b, real_a, query(pools["a"], fake_a))
        optimizer_d.step()

    return iteration


def hfgen_iteration(resolution: int, batch_size: int, joint_passes: bool = True, channels_last: bool = False):
    """One training iteration of train_cyclegan.py's `CycleGANStep` on the same configuration, under accelerate."""
    from accelerate import Accelerator

    import hfgen
    from hfgen.training.adversarial import ImagePool

    script = load_module("train_cyclegan", os.path.join(SCRIPTS, "train_cyclegan.py"))
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    config = hfgen.CycleGANConfig(num_residual_blocks=9, upsampling="transposed")
    networks = {
        "generator_ab": hfgen.CycleGANGenerator(config),
        "generator_ba": hfgen.CycleGANGenerator(config.reversed()),
        "discriminator_a": hfgen.CycleGANDiscriminator(config.reversed()),
        "discriminator_b": hfgen.CycleGANDiscriminator(config),
    }
    if channels_last:
        for network in networks.values():
            network.to(memory_format=torch.channels_last)
    generators = [p for name in ("generator_ab", "generator_ba") for p in networks[name].parameters()]
    discriminators = [p for name in ("discriminator_a", "discriminator_b") for p in networks[name].parameters()]
    g_optimizer = torch.optim.Adam(generators, lr=2e-4, betas=(0.5, 0.999), fused=True)
    d_optimizer = torch.optim.Adam(discriminators, lr=2e-4, betas=(0.5, 0.999), fused=True)
    *prepared, g_optimizer, d_optimizer = accelerator.prepare(*networks.values(), g_optimizer, d_optimizer)
    args = SimpleNamespace(
        gan_loss="lsgan", lambda_cycle=10.0, lambda_identity=0.5, gp_weight=10.0, max_grad_norm=None
    )
    step = script.CycleGANStep(
        accelerator,
        dict(zip(networks, prepared, strict=True)),
        networks,
        g_optimizer,
        d_optimizer,
        ImagePool(50),
        ImagePool(50),
        args,
    )
    step.joint_passes = joint_passes
    real_a = torch.rand(batch_size, 3, resolution, resolution, device=accelerator.device) * 2 - 1
    real_b = torch.rand(batch_size, 3, resolution, resolution, device=accelerator.device) * 2 - 1
    return functools.partial(step, [(real_a, real_b)])


def speed(args):
    torch.manual_seed(0)
    rows = []
    if args.reference_dir:
        seconds = timed(reference_iteration(args.reference_dir, args.resolution, args.batch_size), args.repeats)
        rows.append(("reference (junyanz/pytorch-CycleGAN-and-pix2pix networks and step)", seconds))
    for joint, channels_last, note in (
        (True, False, " (train_cyclegan.py's default)"),
        (False, False, ""),
        (True, True, ""),
    ):
        seconds = timed(hfgen_iteration(args.resolution, args.batch_size, joint, channels_last), args.repeats)
        passes, order = "joint" if joint else "separate", "channels-last" if channels_last else "contiguous"
        rows.append((f"hfgen CycleGANStep, {passes} passes, {order}{note}", seconds))
    print(
        f"\nCycleGAN training iteration, ResNet-9 / 70x70 PatchGAN, 64 channels, {args.resolution} px, batch "
        f"{args.batch_size}, {torch.get_num_threads()} threads, median of {args.repeats}:\n"
    )
    print("| implementation | s / iteration | images / s | vs reference |")
    print("|---|---|---|---|")
    reference = rows[0][1] if args.reference_dir else None
    for label, seconds in rows:
        ratio = f"{reference / seconds:.2f}x" if reference else "-"
        print(f"| {label} | {seconds:.3f} | {args.batch_size / seconds:.2f} | {ratio} |")


def throughput(args):
    """Images/s of the default networks of both scripts, training and translating, on the built-in pair's size."""
    import hfgen
    from hfgen.training.translation import translation_config

    cyclegan = load_module("train_cyclegan", os.path.join(SCRIPTS, "train_cyclegan.py"))
    pix2pix = load_module("train_pix2pix", os.path.join(SCRIPTS, "train_pix2pix.py"))
    print(f"\nDefault networks at 32 px, {torch.get_num_threads()} threads, median of {args.repeats}:\n")
    print("| script | training images / s (batch 16) | translation images / s (batch 64) |")
    print("|---|---|---|")
    for name, module, paired in (("train_cyclegan.py", cyclegan, False), ("train_pix2pix.py", pix2pix, True)):
        flags = module.parse_args([])
        config = translation_config(hfgen.CycleGANConfig, flags, 3, 3, paired=paired)
        generator = hfgen.CycleGANGenerator(config).eval()
        images = torch.rand(64, 3, 32, 32) * 2 - 1
        with torch.no_grad():
            translate = timed(functools.partial(generator, images), args.repeats)
        train = run_steps(module, flags, paired, args.repeats)
        print(f"| {name} | {16 / train:.1f} | {64 / translate:.0f} |")


def run_steps(module, flags, paired: bool, repeats: int) -> float:
    """Seconds per training iteration of a script's default networks and step, batch 16 at 32 px."""
    from accelerate import Accelerator

    import hfgen
    from hfgen.losses import discriminator_loss, generator_loss
    from hfgen.losses.translation import paired_l1_loss
    from hfgen.training.adversarial import ImagePool, Phase, run_phase
    from hfgen.training.translation import translation_config

    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    config = translation_config(hfgen.CycleGANConfig, flags, 3, 3, paired=paired)
    real_a, real_b = torch.rand(16, 3, 32, 32) * 2 - 1, torch.rand(16, 3, 32, 32) * 2 - 1
    if not paired:
        networks = {
            "generator_ab": hfgen.CycleGANGenerator(config),
            "generator_ba": hfgen.CycleGANGenerator(config.reversed()),
            "discriminator_a": hfgen.CycleGANDiscriminator(config.reversed()),
            "discriminator_b": hfgen.CycleGANDiscriminator(config),
        }
        for network in networks.values():
            network.to(memory_format=torch.channels_last if flags.channels_last else torch.contiguous_format)
        g_params = [p for name in ("generator_ab", "generator_ba") for p in networks[name].parameters()]
        d_params = [p for name in ("discriminator_a", "discriminator_b") for p in networks[name].parameters()]
        g_optimizer = torch.optim.Adam(g_params, lr=2e-4, betas=(0.5, 0.999), fused=True)
        d_optimizer = torch.optim.Adam(d_params, lr=2e-4, betas=(0.5, 0.999), fused=True)
        step = module.CycleGANStep(
            accelerator, networks, networks, g_optimizer, d_optimizer, ImagePool(50), ImagePool(50), flags
        )
        return timed(lambda: step([(real_a, real_b)]), repeats)
    generator, discriminator = hfgen.CycleGANGenerator(config), hfgen.CycleGANDiscriminator(config)
    for network in (generator, discriminator):
        network.to(memory_format=torch.channels_last if flags.channels_last else torch.contiguous_format)
    g_optimizer = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999), fused=True)
    d_optimizer = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999), fused=True)
    d_phase, g_phase = Phase("D", discriminator, d_optimizer), Phase("G", generator, g_optimizer, held=discriminator)

    def iteration():  # as train_pix2pix.py: D on real and translated pairs, then G through D plus L1
        translated = generator(real_a).sample

        def d_loss(_):
            real = discriminator(torch.cat([real_a, real_b], 1)).logits
            fake = discriminator(torch.cat([real_a, translated.detach()], 1)).logits
            return discriminator_loss(real, fake, "lsgan"), {}

        def g_loss(_):
            fake = discriminator(torch.cat([real_a, translated], 1)).logits
            return 2 * generator_loss(fake, "lsgan") + paired_l1_loss(translated, real_b), {}

        run_phase(d_phase, accelerator, [None], d_loss)
        run_phase(g_phase, accelerator, [None], g_loss)

    return timed(iteration, repeats)


def quality(args):
    print("\n| run | metric | value | identity mapping / ceiling |")
    print("|---|---|---|---|")
    for folder in args.folders:
        with open(os.path.join(folder, "metrics.json")) as file:
            record = json.load(file)
        baselines = record.get("baselines") or {}
        for name, value in record["metrics"].items():
            baseline = ", ".join(f"{label} {number:.4g}" for label, number in baselines.get(name, {}).items())
            print(f"| {os.path.basename(os.path.normpath(folder))} | {name} | {value:.4g} | {baseline or '-'} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parts = parser.add_subparsers(dest="part", required=True)
    part = parts.add_parser("speed")
    part.add_argument("--reference_dir", default=None, help="A checkout of junyanz/pytorch-CycleGAN-and-pix2pix.")
    part.add_argument("--resolution", type=int, default=128)
    part.add_argument("--batch_size", type=int, default=1)
    part.add_argument("--repeats", type=int, default=5)
    part = parts.add_parser("throughput")
    part.add_argument("--repeats", type=int, default=10)
    part = parts.add_parser("quality")
    part.add_argument("folders", nargs="+", help="Folders written by train_cyclegan.py / train_pix2pix.py.")
    args = parser.parse_args()
    {"speed": speed, "throughput": throughput, "quality": quality}[args.part](args)


if __name__ == "__main__":
    sys.exit(main())
