"""Adversarial training written once, for every family that trains a generator against a discriminator (GAN, DCGAN,
WGAN-GP, StyleGAN, and CycleGAN / pix2pix next).

An iteration is a sequence of phases, as in NVIDIA's StyleGAN2-ADA (`loss.py` names them Dmain, Dreg, Gmain, Greg):

    D main   the discriminator's loss on real against generated images
    D reg    its regulariser (R1), every N iterations when lazy
    G main   the generator's loss through the discriminator, whose weights take no gradient
    G reg    its regulariser (path length), every N iterations when lazy

A `Phase` says which network it updates, with which optimizer, how often, and which network it holds still;
`run_phase` does what every phase does the same way (zero the gradients, accumulate over the micro-batches with one
gradient all-reduce at the last, clip, step). What differs between families, the loss of each phase, stays in the
script, next to its loop, as a function of one micro-batch.

Lazy regularisation (Karras et al. 2020, StyleGAN 2, appendix B) has two consistent forms: fold the regulariser into
the main step every N steps, its loss scaled by N, with a plain optimizer (`train_gan.py`); or give it an optimizer
step of its own every N steps, loss scaled by N, with Adam's learning rate and betas corrected by c = N / (N + 1)
because the optimizer then takes N + 1 steps per N minibatches (`train_stylegan.py`, as NVIDIA's implementation does;
`lazy_regularised_adam`).

The rest is what adversarial scripts share around their loops: flags, loading a generator / discriminator pair,
checking that it fits the data, the differentiable augmentation D sees (DiffAugment / ADA), and the weights of the
Hub-ready folder.
"""

import argparse
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .augment import AdaptiveAugmentation
from .cli import check_flag_ranges
from .evaluation import DISTRIBUTION_METRIC_NAMES
from .runs import gradient_sync


@dataclass
class Phase:
    """One optimizer step of an adversarial iteration.

    Args:
        name (`str`): what it is called in logs and errors, e.g. `"D main"`.
        network (`nn.Module` or a list of them): the network it updates, as `accelerator.prepare` returned it (the
            data-parallel wrapper when there is one, so that its gradients are averaged across processes); a list
            for networks stepped together (CycleGAN's two generators, under one optimizer).
        optimizer (`torch.optim.Optimizer`): that network's optimizer.
        interval (`int`, *optional*): runs at iterations that are multiples of this (a lazy regulariser); None never
            runs (a regulariser whose weight is 0).
        held (`nn.Module` or a list of them, *optional*): the other network, which the loss runs through but which
            must not learn from it (the discriminator during a generator phase); its weights take no gradient for the
            phase.
    """

    name: str
    network: nn.Module | list[nn.Module]
    optimizer: torch.optim.Optimizer
    interval: int | None = 1
    held: nn.Module | list[nn.Module] | None = None

    @property
    def networks(self) -> list[nn.Module]:
        return list(self.network) if isinstance(self.network, (list, tuple)) else [self.network]

    @property
    def held_networks(self) -> list[nn.Module]:
        if self.held is None:
            return []
        return list(self.held) if isinstance(self.held, (list, tuple)) else [self.held]

    def is_due(self, iteration: int) -> bool:
        return bool(self.interval) and iteration % self.interval == 0


def run_phase(
    phase: Phase,
    accelerator,
    micro_batches: Sequence,
    loss_of: Callable,
    max_grad_norm: float | None = None,
    guard: Callable | None = None,
) -> dict[str, float]:
    """Take `phase`'s optimizer step on `micro_batches` (one per gradient-accumulation step).

    `loss_of(micro_batch)` returns the phase's loss on one micro-batch and a dict of detached scalars to log. The
    loss is divided by the number of micro-batches, so the step sees their mean; gradients are averaged across
    processes once, on the last micro-batch. `guard(loss, phase_name)`, when given, sees every loss before it is
    back-propagated (e.g. to stop a diverging run). Returns the logged scalars, averaged over the micro-batches.
    """
    phase.optimizer.zero_grad(set_to_none=True)
    for held in phase.held_networks:
        held.requires_grad_(False)
    totals: dict[str, float] = {}
    for index, micro_batch in enumerate(micro_batches):
        with gradient_sync(accelerator, phase.networks, index, len(micro_batches)):
            loss, logs = loss_of(micro_batch)
            if guard is not None:
                guard(loss, phase.name)
            accelerator.backward(loss / len(micro_batches))
        for key, value in logs.items():
            totals[key] = totals.get(key, 0.0) + float(value) / len(micro_batches)
    for held in phase.held_networks:
        held.requires_grad_(True)
    if max_grad_norm is not None:
        accelerator.clip_grad_norm_([p for network in phase.networks for p in network.parameters()], max_grad_norm)
    phase.optimizer.step()
    return totals


def lazy_regularisation_ratio(interval: int | None) -> float:
    """c = N / (N + 1) for a regulariser that takes its own optimizer step every N minibatches; 1 when it is off
    (`interval` None or 0), so a disabled regulariser leaves the optimizer exactly as configured."""
    if not interval:
        return 1.0
    if interval < 1:
        raise ValueError(f"a lazy regularisation interval must be at least 1, got {interval}")
    return interval / (interval + 1)


def lazy_regularised_adam(
    parameters, learning_rate: float, betas: tuple[float, float], interval: int | None
) -> torch.optim.Adam:
    """Adam for a network whose regulariser runs as its own step every `interval` minibatches (None: no
    regulariser): learning rate scaled by c and betas raised to the power c, c = interval / (interval + 1)."""
    ratio = lazy_regularisation_ratio(interval)
    betas = (betas[0] ** ratio, betas[1] ** ratio)
    return torch.optim.Adam(parameters, lr=learning_rate * ratio, betas=betas, fused=True)


# Below this many training images, --augment auto turns ADA on: Karras et al. (2020, "Training generative adversarial
# networks with limited data") see discriminator overfitting well below 10k images; the built-in digits (1,437) train
# well without it, the built-in faces (80) collapse without it.
SMALL_DATASET_IMAGES = 1000


GAN_CARD_METRIC_NAMES = {
    **DISTRIBUTION_METRIC_NAMES,
    "class_accuracy": "class accuracy of conditional samples (digits classifier)",
}


def add_gan_arguments(parser: argparse.ArgumentParser, learning_rate: float, betas: tuple[float, float]) -> None:
    """Flags of both GAN scripts: conditioning, starting weights, LoRA, optimizers, EMA, augmentation, safety."""
    parser.add_argument(
        "--unconditional",
        action="store_true",
        help="Ignore the dataset's labels (by default a labelled dataset trains a conditional model).",
    )
    parser.add_argument(
        "--pretrained_model_name_or_path",
        type=str,
        default=None,
        help="A folder or Hub id written by this script: the generator, and its discriminator/ if kept.",
    )
    parser.add_argument("--model_config_name_or_path", type=str, default=None, help="A model config for a new model.")
    parser.add_argument(
        "--lora_rank",
        type=int,
        default=0,
        help="Fine-tune the pretrained generator with PEFT LoRA of this rank and save only the adapter.",
    )
    parser.add_argument("--generator_learning_rate", type=float, default=learning_rate)
    parser.add_argument("--discriminator_learning_rate", type=float, default=learning_rate)
    parser.add_argument("--adam_beta1", type=float, default=betas[0])
    parser.add_argument("--adam_beta2", type=float, default=betas[1])
    parser.add_argument("--r1_interval", type=int, default=16, help="Lazy regularisation: R1 every this many D steps.")
    parser.add_argument("--ema_decay", type=float, default=0.999, help="EMA of the generator's weights (0: off).")
    parser.add_argument(
        "--augment",
        type=str,
        default="auto",
        choices=["auto", "none", "diffaugment", "ada"],
        help="Differentiable augmentation of what D sees: fixed probability, or adapted (ADA); auto: "
        f"ADA below {SMALL_DATASET_IMAGES} training images, where D would otherwise memorise "
        "them and G collapse, none above.",
    )
    parser.add_argument("--augment_policy", type=str, default="color,translation,cutout")
    parser.add_argument(
        "--augment_probability",
        type=float,
        default=None,
        help="Start (ada) or fixed (diffaugment) probability; defaults to 0 for ada and 1 for diffaugment.",
    )
    parser.add_argument("--ada_target", type=float, default=0.6)
    add_adversarial_run_arguments(parser)


def add_adversarial_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of every adversarial script: when a diverging run stops, and whether the discriminator is kept."""
    parser.add_argument(
        "--loss_limit",
        type=float,
        default=1e5,
        help="A loss beyond this magnitude (or NaN) stops the run, keeping the last checkpoint.",
    )
    parser.add_argument(
        "--save_discriminator",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Keep the discriminator(s) in the Hub folder, for later fine-tuning.",
    )


GAN_FLAG_RANGES = {
    "r1_interval": (1, None, "closed"),
    "r1_gamma": (0, None, "closed"),
    "lora_rank": (0, None, "closed"),
    "generator_learning_rate": (0, None, "open"),
    "discriminator_learning_rate": (0, None, "open"),
    "ema_decay": (0, 1, "high_open"),
    "augment_probability": (0, 1, "closed"),
    "ada_target": (0, 1, "open"),
    "loss_limit": (0, None, "open"),
}


def critic_scores_have_no_sign(args: argparse.Namespace) -> bool:
    """Whether the run's discriminator is a WGAN critic: only differences of its scores count (a gradient penalty, and
    in ProGAN a drift term, hold them near 0), so the sign of its scores of real images, which ADA reads as a sign of
    overfitting, says nothing."""
    return getattr(args, "loss", None) == "wgan-gp"


def check_gan_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    check_flag_ranges(parser, args, GAN_FLAG_RANGES)
    if args.lora_rank and args.pretrained_model_name_or_path is None:
        parser.error("--lora_rank fine-tunes a trained generator: give --pretrained_model_name_or_path")
    if args.augment == "ada" and critic_scores_have_no_sign(args):
        parser.error(
            "--augment ada adapts to the sign of the discriminator's scores of real images, which a WGAN critic "
            "leaves arbitrary (only score differences count): with --loss wgan-gp use --augment diffaugment or none"
        )


def load_pretrained_pair(generator_class, discriminator_class, path: str, logger):
    """A trained generator and, when its folder kept one in `discriminator/`, its discriminator (else a new one)."""
    generator = generator_class.from_pretrained(path)
    discriminator_dir = os.path.join(path, "discriminator")
    if os.path.isdir(discriminator_dir):
        return generator, discriminator_class.from_pretrained(discriminator_dir)
    logger.info("no discriminator/ next to the generator: starting a new discriminator")
    return generator, discriminator_class(generator.config)


def check_fits_data(
    args: argparse.Namespace, channels: int, resolution: int, num_classes: int, data_num_classes: int
) -> None:
    """Raise a clear error when a (pretrained or configured) model does not fit the data and flags."""
    data_channels = 1 if args.color_mode == "L" else 3
    problems = []
    if channels != data_channels:
        problems.append(f"it takes {channels}-channel images but --color_mode {args.color_mode} gives {data_channels}")
    if resolution != args.resolution:
        problems.append(f"it makes {resolution}px images but --resolution is {args.resolution}")
    if num_classes != data_num_classes:
        problems.append(
            f"it is conditional on {num_classes} classes (0: unconditional) but the data gives "
            f"{data_num_classes} (use --unconditional to ignore labels)"
        )
    if problems:
        raise ValueError("the model does not fit the data: " + "; ".join(problems))


def make_augmentation(args: argparse.Namespace, accelerator, num_train_images: int) -> AdaptiveAugmentation | None:
    """The run's augmentation (None for `--augment none`), registered so checkpoints keep its probability.

    Resolves `--augment auto` for the data (on small datasets ADA, or fixed DiffAugment for a WGAN critic, whose
    scores ADA cannot read) and the default starting probability (0 for ADA, which raises it as D overfits; 1 for
    fixed DiffAugment), and records both in `args`.
    """
    if args.augment == "auto":
        small_data_augmentation = "diffaugment" if critic_scores_have_no_sign(args) else "ada"
        args.augment = small_data_augmentation if num_train_images < SMALL_DATASET_IMAGES else "none"
    if args.augment_probability is None:
        args.augment_probability = 1.0 if args.augment == "diffaugment" else 0.0
    if args.augment == "none":
        return None
    augment = AdaptiveAugmentation(
        args.augment_policy, args.augment_probability, adaptive=args.augment == "ada", target=args.ada_target
    )
    accelerator.register_for_checkpointing(augment)
    return augment


def adapt_augmentation(augment: AdaptiveAugmentation | None, accelerator, sign_sum: float, count: int) -> None:
    """Feed ADA the sign statistic of D on this process's real images (the sum of sign(logit) over `count` images),
    summed over all processes so that p stays the same on each."""
    if augment is None:
        return
    totals = accelerator.reduce(torch.tensor([sign_sum, float(count)], device=accelerator.device), reduction="sum")
    augment.accumulate(totals[0].item(), int(totals[1].item()))


def discriminator_input(images: torch.Tensor, augment: AdaptiveAugmentation | None) -> torch.Tensor:
    """What the discriminator sees of `images`: their augmentation, real and generated alike (identity without)."""
    return augment(images) if augment is not None else images


def save_adversarial_weights(output_dir: str, pipeline, generator, discriminator=None, adapter_only: bool = False):
    """The weights of the Hub-ready folder: the pipeline folder (`model_index.json` + its component folder), the
    generator's `config.json` + `model.safetensors` at the top (for `from_pretrained(folder)` / `AutoModel`), and the
    discriminator in `discriminator/` when given (for later fine-tuning). `adapter_only` (a LoRA run, `generator` a
    PEFT model) saves the adapter alone: `adapter_model.safetensors` + `adapter_config.json`."""
    if not adapter_only:
        pipeline.save_pretrained(output_dir)
    generator.save_pretrained(output_dir)
    if discriminator is not None and not adapter_only:
        discriminator.save_pretrained(os.path.join(output_dir, "discriminator"))


class ImagePool:
    """A history of generated images for the discriminator (Shrivastava et al. 2017, as CycleGAN uses it): until
    `size` images are stored, each new image is stored and returned; after, each new image is, with probability 1/2,
    swapped for a stored one drawn at random (the stored one is returned and the new one takes its place), else
    returned itself. The discriminator so also sees older translations, which damps oscillations.

    Draws come from torch's global RNG (seeded per process and saved in checkpoints); the stored images are saved
    too (`state_dict` / `load_state_dict`, for `accelerator.register_for_checkpointing`), so a resumed run draws what
    the uninterrupted one would have. `size=0` turns the pool off.
    """

    def __init__(self, size: int = 50):
        if size < 0:
            raise ValueError(f"the image pool size must be >= 0, got {size}")
        self.size = size
        self.images: list[torch.Tensor] = []

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        returned = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                returned.append(image)
            elif torch.rand(()).item() < 0.5:
                index = int(torch.randint(0, self.size, ()).item())
                returned.append(self.images[index].to(image.device))  # loaded from a checkpoint: on the CPU
                self.images[index] = image.clone()
            else:
                returned.append(image)
        return torch.stack(returned)

    def state_dict(self) -> dict:
        return {"size": self.size, "images": [image.cpu() for image in self.images]}

    def load_state_dict(self, state: dict) -> None:
        self.size = state["size"]
        self.images = list(state["images"])


def constant_then_linear_decay(optimizer: torch.optim.Optimizer, constant_steps: int, decay_steps: int):
    """CycleGAN's and pix2pix's schedule: the learning rate stays at its start for `constant_steps` steps (the papers'
    `n_epochs` in steps), then falls linearly to zero over `decay_steps` (`n_epochs_decay`); a `LambdaLR`, whose
    position a checkpoint saves."""
    if constant_steps < 0 or decay_steps < 0:
        raise ValueError(f"the schedule's lengths must be >= 0, got {constant_steps} and {decay_steps}")

    def factor(step: int) -> float:
        if step < constant_steps:
            return 1.0
        if decay_steps == 0:
            return 0.0
        return max(0.0, 1.0 - (step - constant_steps) / decay_steps)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
