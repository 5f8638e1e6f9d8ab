#!/usr/bin/env python
"""StyleGAN 2 training speed on this machine, side by side with rosinality/stylegan2-pytorch; prints a Markdown table.

    # a scratch copy of rosinality/stylegan2-pytorch (only read and executed here, never imported by hfgen):
    git clone --depth 1 https://github.com/rosinality/stylegan2-pytorch /tmp/refs/stylegan2-pytorch
    HF_HUB_OFFLINE=1 python benchmarks/bench_stylegan_speed.py --reference_dir /tmp/refs/stylegan2-pytorch

Two networks, each as hfgen's and as rosinality's, 32 px RGB, batch 8, fp32 on CPU, real images uniform in [-1, 1]:

- `default`: `train_stylegan.py`'s default architecture (`build_models`) at 32 px, unconditional (the reference has
  no classes): z = w = 64, 4 mapping layers, channels 64/64/32/16 at 4/8/16/32 px.
- `wide`: z = w = 512, 8 mapping layers, channels 256/256/256/128.

The reference networks are rosinality's `model.py` `Generator(32, z, mapping layers)` / `Discriminator(32)`, its
per-resolution width tables (`self.channels` / `channels`, written for 512 channels and more) replaced by hfgen's in
the source before it runs, so both have the same widths and layer counts, and both resample the same way (the
[1, 3, 3, 1] FIR filter, transposed convolutions up, strided convolutions down: hfgen's default since
`StyleGANConfig.resample_filter`). They differ in the modulated convolution (one grouped convolution per batch in the
reference's default `fused` path, hfgen's scaling of the input and output channels around one ordinary
convolution). Its CUDA kernels are
compiled at import by `op/fused_act.py` and `op/upfirdn2d.py`; both files are run here with that `load(...)` call
taken out of the source (on disk they stay as they are), so that their pure-PyTorch CPU branches run.

One step is the same algorithm in both, with rosinality's `train.py` defaults: the discriminator's logistic loss on
real and generated images, R1 (gamma 10) every 16 steps as a step of its own, the generator's non-saturating loss,
path-length regularisation (weight 2, batch halved) every 4 steps as a step of its own, style mixing with
probability 0.9, Adam (lr 0.002, betas (0, 0.99)) corrected for the lazy regularisers. hfgen's step is
`train_stylegan.py`'s loop given those as flags (`--r1_gamma 10 --pl_weight 2 --style_mixing_prob 0.9`, the rest at
its defaults, channels-last networks included): its four `run_phase` phases through an `Accelerator(cpu=True)`, its
losses, without data loading, logging, EMA, learning-rate schedules and checkpoints. The reference's step is the
body of `train()` in its `train.py`, with the loss functions read from that file, without the same. One difference
is hfgen's own: its generator step reuses the fakes of the discriminator step (drawn with the generator's graph),
where the reference draws the generator anew for each.

The reference runs without augmentation (without `--augment`): its ADA cannot take R1's double backward on torch 2
(its `non_leaking.py` calls `torch._C._jit_get_operation`, which now returns a tuple), and it augments differently
anyway (a geometric warp through FIR filters and `grid_sample`, where hfgen's DiffAugment does colour / translation /
cutout). hfgen runs twice: without augmentation (`--augment none`, the same algorithm as the reference), and with
DiffAugment at probability 1 in front of every discriminator call, R1 taken through it (`hfgen+diffaugment`), which
only adds work on hfgen's side.

Amortisation: the lazy regularisers make steps unequal, so the timed steps are whole cycles of 16 (one R1 step and
four path-length steps in each, whatever step the cycle starts at): `--steps` is rounded up to a multiple of 16. The
GFLOP per step (torch's per-operator formulas for matmuls and convolutions, forward, backward and double backward)
are counted over the first cycle, which is also the warm-up, and divided by 16. Each configuration runs in a fresh
process, `--runs` times, interleaved; the median is reported.
"""

import argparse
import ast
import itertools
import json
import math
import os
import random
import statistics
import subprocess
import sys
import time
import types

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_gan_speed import FlopCounter, matmul_peak_gflops

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH, RESOLUTION = 8, 32
# rosinality's train.py defaults, given to both loops
LEARNING_RATE, BETAS = 0.002, (0.0, 0.99)
R1_GAMMA, R1_INTERVAL = 10.0, 16
PL_WEIGHT, PL_INTERVAL, PL_BATCH_SHRINK = 2.0, 4, 2
STYLE_MIXING_PROB = 0.9
CYCLE = math.lcm(R1_INTERVAL, PL_INTERVAL)  # steps in which every lazy regulariser runs at its rate
WIDE_ARCHITECTURE = dict(latent_dim=512, w_dim=512, mapping_layers=8, channel_base=4096, channel_max=256)
CONFIGURATIONS = ("default", "wide")
# hfgen+diffaugment: hfgen's step with DiffAugment at probability 1 in front of the discriminator (R1 taken through it,
# as train_stylegan.py does with augmentation on), against the same reference without augmentation: more work on
# hfgen's side only, so its ratio is a lower bound
IMPLEMENTATIONS = ("reference", "hfgen", "hfgen+diffaugment")
# What is read from rosinality's train.py: its loss functions and latent sampling (the script itself needs CUDA and
# an LMDB dataset, and its loop writes samples and checkpoints).
REFERENCE_TRAIN_NAMES = {
    "requires_grad",
    "d_logistic_loss",
    "d_r1_loss",
    "g_nonsaturating_loss",
    "g_path_regularize",
    "make_noise",
    "mixing_noise",
}


def stylegan_flags() -> list[str]:
    """train_stylegan.py's command line for this comparison: 32 px RGB, unconditional, rosinality's regularisers."""
    return [
        "--resolution", str(RESOLUTION), "--color_mode", "RGB", "--unconditional",
        "--generator_learning_rate", str(LEARNING_RATE), "--discriminator_learning_rate", str(LEARNING_RATE),
        "--adam_beta1", str(BETAS[0]), "--adam_beta2", str(BETAS[1]),
        "--r1_gamma", str(R1_GAMMA), "--r1_interval", str(R1_INTERVAL),
        "--pl_weight", str(PL_WEIGHT), "--pl_interval", str(PL_INTERVAL), "--pl_batch_shrink", str(PL_BATCH_SHRINK),
        "--style_mixing_prob", str(STYLE_MIXING_PROB), "--augment", "none",
    ]  # fmt: skip


def hfgen_models(configuration: str):
    """train_stylegan.py's parsed flags and hfgen's generator and discriminator of `configuration`."""
    import hfgen

    sys.path.insert(0, os.path.join(REPO, "training_scripts", "gan"))
    import train_stylegan

    args = train_stylegan.parse_args(stylegan_flags())
    if configuration == "default":
        return (args, *train_stylegan.build_models(args, num_classes=0))
    config = hfgen.StyleGANConfig(resolution=RESOLUTION, num_channels=3, **WIDE_ARCHITECTURE)
    return args, hfgen.StyleGANGenerator(config), hfgen.StyleGANDiscriminator(config)


def hfgen_step(args, generator, discriminator, batch_size: int = BATCH, num_train_images: int = BATCH):
    """One iteration of train_stylegan.py's loop (`main`), its phases and loss functions as written there, for one
    micro-batch of `batch_size` per step (no gradient accumulation): the fakes keep the generator's graph for the G
    main phase, so the script's branches for accumulation (fakes drawn without graph, drawn again for G main) are left
    out. A regulariser whose weight is 0 is off, as in the script; `--augment auto` resolves for `num_train_images`;
    labels cycle through the classes when conditional."""
    from accelerate import Accelerator

    from hfgen.losses import augmented_r1_penalty, discriminator_loss, generator_loss, path_length_penalty
    from hfgen.training.adversarial import (
        Phase,
        adapt_augmentation,
        discriminator_input,
        lazy_regularised_adam,
        make_augmentation,
        run_phase,
    )
    from hfgen.training.runs import check_finite, to_training_memory_format

    to_training_memory_format(args, generator, discriminator)  # --channels_last, on by default
    accelerator = Accelerator(cpu=True)
    betas = (args.adam_beta1, args.adam_beta2)
    g_interval = args.pl_interval if args.pl_weight > 0 else None
    d_interval = args.r1_interval if args.r1_gamma > 0 else None
    g_optimizer = lazy_regularised_adam(generator.parameters(), args.generator_learning_rate, betas, g_interval)
    d_optimizer = lazy_regularised_adam(
        discriminator.parameters(), args.discriminator_learning_rate, betas, d_interval
    )
    generator, discriminator, g_optimizer, d_optimizer = accelerator.prepare(
        generator, discriminator, g_optimizer, d_optimizer
    )
    augment = make_augmentation(args, accelerator, num_train_images)
    path_length_state = torch.nn.Module()
    path_length_state.register_buffer("mean", torch.zeros((), device=accelerator.device))
    unwrapped_discriminator = accelerator.unwrap_model(discriminator)
    config = accelerator.unwrap_model(generator).config
    generator.train()
    discriminator.train()

    d_main = Phase("D main", discriminator, d_optimizer)
    d_reg = Phase("D R1", discriminator, d_optimizer, interval=d_interval)
    g_main = Phase("G main", generator, g_optimizer, held=unwrapped_discriminator)
    g_reg = Phase("G path length", generator, g_optimizer, interval=g_interval, held=unwrapped_discriminator)
    real = torch.rand(batch_size, config.num_channels, config.resolution, config.resolution) * 2 - 1
    labels = torch.arange(batch_size) % config.num_classes if config.num_classes else None

    def generate(model, z, labels):
        mixing = {}
        if torch.rand(()) < args.style_mixing_prob:
            mixing = {
                "crossover_layer": int(torch.randint(1, config.num_ws, ())),
                "mixing_latents": torch.randn_like(z),
            }
        output = model(z, labels=labels, **mixing)
        return output.sample, output.ws

    def add_fakes(micro_batches) -> list:
        with_fakes = []
        for real_images, labels in micro_batches:
            z = torch.randn(real_images.shape[0], config.latent_dim, device=real_images.device)
            fake, _ = generate(generator, z, labels)
            with_fakes.append((real_images, labels, fake))
        return with_fakes

    def d_main_loss(micro_batch):
        real_images, labels, fake = micro_batch
        fake = fake.detach()
        real_logits = discriminator(discriminator_input(real_images, augment), labels=labels).logits
        fake_logits = discriminator(discriminator_input(fake, augment), labels=labels).logits
        loss = discriminator_loss(real_logits, fake_logits, "non-saturating")
        logs = {
            "d_loss": loss.detach(),
            "d_real": real_logits.detach().mean(),
            "d_fake": fake_logits.detach().mean(),
            "real_sign": real_logits.detach().sign().mean(),
        }
        return loss, logs

    def d_reg_loss(micro_batch):
        real_images, labels, _ = micro_batch

        def discriminate(images):
            return discriminator(images, labels=labels).logits

        r1, logits = augmented_r1_penalty(discriminate, real_images, augment)
        return r1 * (args.r1_gamma / 2) * d_interval + 0 * logits.sum(), {"r1_penalty": r1.detach()}

    def g_main_loss(micro_batch):
        _, labels, fake = micro_batch
        logits = unwrapped_discriminator(discriminator_input(fake, augment), labels=labels).logits
        loss = generator_loss(logits, "non-saturating")
        return loss, {"g_loss": loss.detach()}

    def g_reg_loss(micro_batch):
        real_images, labels, _ = micro_batch
        pl_batch = max(1, real_images.shape[0] // args.pl_batch_shrink)
        z = torch.randn(pl_batch, config.latent_dim, device=accelerator.device)
        images, ws = generate(generator, z, None if labels is None else labels[:pl_batch])
        penalty, new_mean = path_length_penalty(images, ws, path_length_state.mean)
        path_length_state.mean.copy_(accelerator.reduce(new_mean, reduction="mean"))
        return penalty * args.pl_weight * g_interval + 0 * images.sum(), {"path_length_penalty": penalty.detach()}

    def guard(loss, phase_name: str):
        check_finite(loss, f"the {phase_name} loss", 0, args.output_dir, args.loss_limit)

    def step(iteration: int):
        micro_batches = add_fakes([(real, labels)])
        logs = run_phase(d_main, accelerator, micro_batches, d_main_loss, args.max_grad_norm, guard)
        adapt_augmentation(augment, accelerator, logs.pop("real_sign") * batch_size, batch_size)
        if d_reg.is_due(iteration):
            run_phase(d_reg, accelerator, micro_batches, d_reg_loss, args.max_grad_norm)
        run_phase(g_main, accelerator, micro_batches, g_main_loss, args.max_grad_norm, guard)
        if g_reg.is_due(iteration):
            run_phase(g_reg, accelerator, micro_batches, g_reg_loss, args.max_grad_norm)

    return step, (generator, discriminator)


def load_reference_source(path: str, name: str, rewrite=None) -> types.ModuleType:
    """The reference's file at `path`, run as module `name` and registered in `sys.modules` under it (so that the
    reference's own imports find it); its syntax tree passes through `rewrite` first when given."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    if rewrite is not None:
        tree = ast.fix_missing_locations(rewrite(tree))
    module = types.ModuleType(name)
    module.__file__ = path
    module.__package__ = name.rpartition(".")[0]
    sys.modules[name] = module
    exec(compile(tree, path, "exec"), module.__dict__)
    return module


def without_cuda_build(tree: ast.Module) -> ast.Module:
    """`fused = load(...)` / `upfirdn2d_op = load(...)` (compiling the CUDA kernels at import) becomes `... = None`:
    on CPU the reference takes its pure-PyTorch branches (`if input.device.type == "cpu"`), which never use them."""
    for node in tree.body:
        call = node.value if isinstance(node, ast.Assign) else None
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "load":
            node.value = ast.Constant(None)
    return tree


def with_widths(widths: dict[int, int]):
    """A rewrite of rosinality's model.py giving `Generator` and `Discriminator` these channels per resolution: each
    builds its width table as a dict literal in `__init__` (`self.channels = {...}`, `channels = {...}`)."""

    def rewrite(tree: ast.Module) -> ast.Module:
        patched = set()
        for cls in tree.body:
            if isinstance(cls, ast.ClassDef) and cls.name in ("Generator", "Discriminator"):
                for node in ast.walk(cls):
                    is_dict = isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)
                    if is_dict and ast.unparse(node.targets[0]) in ("self.channels", "channels"):
                        node.value = ast.parse(repr(widths), mode="eval").body
                        patched.add(cls.name)
        missing = {"Generator", "Discriminator"} - patched
        if missing:
            raise ValueError(f"rosinality's model.py: no channel table found in {sorted(missing)}.__init__")
        return tree

    return rewrite


def load_reference(reference_dir: str, widths: dict[int, int]) -> tuple[types.ModuleType, types.ModuleType]:
    """rosinality's model.py (with `widths`) and the loss functions of its train.py, with its `op` package loaded
    from source without building its CUDA kernels."""
    op_dir = os.path.join(reference_dir, "op")
    op = types.ModuleType("op")
    op.__path__, op.__package__ = [op_dir], "op"
    sys.modules["op"] = op
    for name in ("conv2d_gradfix", "fused_act", "upfirdn2d"):
        setattr(op, name, load_reference_source(os.path.join(op_dir, f"{name}.py"), f"op.{name}", without_cuda_build))
    with open(os.path.join(op_dir, "__init__.py")) as f:
        exec(compile(f.read(), os.path.join(op_dir, "__init__.py"), "exec"), op.__dict__)
    model = load_reference_source(os.path.join(reference_dir, "model.py"), "model", with_widths(widths))

    def only_train_functions(tree: ast.Module) -> ast.Module:
        body = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in REFERENCE_TRAIN_NAMES]
        # what those functions use of train.py's imports
        imports = ["import math", "import random", "import torch", "from torch import autograd"]
        imports += ["from torch.nn import functional as F", "from op import conv2d_gradfix"]
        tree.body = ast.parse("\n".join(imports)).body + body
        return tree

    train = load_reference_source(os.path.join(reference_dir, "train.py"), "reference_train", only_train_functions)
    return model, train


def reference_step(config, reference_dir: str):
    """One iteration of the loop in rosinality's `train()` (train.py) without `--augment`, with the widths of hfgen's
    `config`."""
    model, train = load_reference(reference_dir, {r: config.channels_at(r) for r in config.resolutions})
    generator = model.Generator(RESOLUTION, config.latent_dim, config.mapping_layers)
    discriminator = model.Discriminator(RESOLUTION)
    g_ratio, d_ratio = PL_INTERVAL / (PL_INTERVAL + 1), R1_INTERVAL / (R1_INTERVAL + 1)
    g_optim = torch.optim.Adam(
        generator.parameters(), lr=LEARNING_RATE * g_ratio, betas=(BETAS[0] ** g_ratio, BETAS[1] ** g_ratio)
    )
    d_optim = torch.optim.Adam(
        discriminator.parameters(), lr=LEARNING_RATE * d_ratio, betas=(BETAS[0] ** d_ratio, BETAS[1] ** d_ratio)
    )
    real = torch.rand(BATCH, 3, RESOLUTION, RESOLUTION) * 2 - 1
    latent, device = config.latent_dim, "cpu"
    state = {"mean_path_length": 0}

    def step(i: int):
        real_img = real.clone()  # a fresh batch, as from its loader: the R1 step sets requires_grad on it
        train.requires_grad(generator, False)
        train.requires_grad(discriminator, True)
        fake_img, _ = generator(train.mixing_noise(BATCH, latent, STYLE_MIXING_PROB, device))
        fake_pred = discriminator(fake_img)
        real_pred = discriminator(real_img)
        d_loss = train.d_logistic_loss(real_pred, fake_pred)
        discriminator.zero_grad()
        d_loss.backward()
        d_optim.step()

        if i % R1_INTERVAL == 0:
            real_img.requires_grad = True
            real_pred = discriminator(real_img)
            r1_loss = train.d_r1_loss(real_pred, real_img)
            discriminator.zero_grad()
            (R1_GAMMA / 2 * r1_loss * R1_INTERVAL + 0 * real_pred[0]).backward()
            d_optim.step()

        train.requires_grad(generator, True)
        train.requires_grad(discriminator, False)
        fake_img, _ = generator(train.mixing_noise(BATCH, latent, STYLE_MIXING_PROB, device))
        g_loss = train.g_nonsaturating_loss(discriminator(fake_img))
        generator.zero_grad()
        g_loss.backward()
        g_optim.step()

        if i % PL_INTERVAL == 0:
            path_batch_size = max(1, BATCH // PL_BATCH_SHRINK)
            noise = train.mixing_noise(path_batch_size, latent, STYLE_MIXING_PROB, device)
            fake_img, latents = generator(noise, return_latents=True)
            path_loss, state["mean_path_length"], _ = train.g_path_regularize(
                fake_img, latents, state["mean_path_length"]
            )
            generator.zero_grad()
            (PL_WEIGHT * PL_INTERVAL * path_loss + 0 * fake_img[0, 0, 0, 0]).backward()
            g_optim.step()

    return step, (generator, discriminator)


def architecture(config) -> str:
    widths = "/".join(str(config.channels_at(r)) for r in config.resolutions)
    return f"z = w = {config.latent_dim}, {config.mapping_layers} mapping layers, channels {widths}"


def measure(name: str, reference_dir: str, steps: int) -> dict:
    """Images per second and GFLOP per step of one configuration (run in its own process), over whole cycles."""
    configuration, implementation = name.rsplit("-", 1)
    torch.manual_seed(0)
    random.seed(0)  # the reference draws style mixing from Python's RNG
    args, generator, discriminator = hfgen_models(configuration)
    config = generator.config
    if implementation == "reference":  # hfgen's networks only give it their widths
        step, networks = reference_step(config, reference_dir)
    else:
        if implementation == "hfgen+diffaugment":
            args.augment, args.augment_probability = "diffaugment", 1.0
        step, networks = hfgen_step(args, generator, discriminator)
    iterations = itertools.count()  # the step index, which decides when the lazy regularisers run

    def run(count: int):
        for _ in range(count):
            step(next(iterations))

    counter = FlopCounter()
    with counter:  # also the warm-up (allocator, oneDNN kernels)
        run(CYCLE)
    timed_steps = CYCLE * math.ceil(steps / CYCLE)
    start = time.perf_counter()
    run(timed_steps)
    seconds = (time.perf_counter() - start) / timed_steps
    return {
        "name": name,
        "architecture": architecture(config),
        "parameters": [sum(p.numel() for p in network.parameters()) for network in networks],
        "seconds": seconds,
        "images_per_second": BATCH / seconds,
        "gflop": counter.flops / CYCLE / 1e9,
    }


def in_fresh_process(name: str, reference_dir: str, steps: int) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--single", name, "--steps", str(steps)]
    command += ["--reference_dir", reference_dir]
    result = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference_dir", required=True, help="A scratch copy of rosinality/stylegan2-pytorch.")
    parser.add_argument("--runs", type=int, default=3, help="Fresh-process runs of each configuration (median).")
    parser.add_argument(
        "--steps", type=int, default=32, help=f"Timed steps per run, rounded up to whole cycles of {CYCLE}."
    )
    parser.add_argument("--single", default=None, help=argparse.SUPPRESS)  # one configuration, in this process
    args = parser.parse_args()
    if args.single:
        print(json.dumps(measure(args.single, args.reference_dir, args.steps)))
        return

    peak = max(matmul_peak_gflops() for _ in range(3))  # a ceiling: other load on the machine only lowers a reading
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32 matmul peak {peak:.0f} GFLOP/s")
    timed_steps = CYCLE * math.ceil(args.steps / CYCLE)
    print(
        f"per step: means over whole cycles of {CYCLE} steps ({CYCLE // R1_INTERVAL} R1 and {CYCLE // PL_INTERVAL} "
        f"path-length steps in each), {timed_steps} timed steps per run\n"
    )
    names = [
        f"{configuration}-{implementation}" for configuration in CONFIGURATIONS for implementation in IMPLEMENTATIONS
    ]
    results = {name: [] for name in names}
    for _ in range(args.runs):  # interleaved, so slow drifts of the machine hit every configuration alike
        for name in names:
            results[name].append(in_fresh_process(name, args.reference_dir, args.steps))
    print(
        f"| StyleGAN 2 step ({RESOLUTION} px RGB, batch {BATCH}, fp32) | params G / D (M) | img/s (median) "
        "| hfgen / reference | GFLOP/step | GFLOP/s | % of matmul peak |\n|---|---|---|---|---|---|---|"
    )
    for configuration in CONFIGURATIONS:
        reference = statistics.median(run["images_per_second"] for run in results[f"{configuration}-reference"])
        for implementation in IMPLEMENTATIONS:
            runs = results[f"{configuration}-{implementation}"]
            speed = statistics.median(run["images_per_second"] for run in runs)
            rate = runs[0]["gflop"] / statistics.median(run["seconds"] for run in runs)
            generator, discriminator = (count / 1e6 for count in runs[0]["parameters"])
            ratio = "-" if implementation == "reference" else f"{speed / reference:.2f}x"
            label = f"{configuration} ({runs[0]['architecture']}): {implementation}"
            print(
                f"| {label} | {generator:.2f} / {discriminator:.2f} | {speed:.1f} | {ratio} | {runs[0]['gflop']:.2f} "
                f"| {rate:.0f} | {100 * rate / peak:.0f}% |"
            )


if __name__ == "__main__":
    main()
