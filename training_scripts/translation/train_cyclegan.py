#!/usr/bin/env python
"""Train a CycleGAN (Zhu et al. 2017): two generators translating between two unpaired image sets, each judged by a
PatchGAN, held together by cycle consistency; ending with a Hub-ready folder and measured metrics.

    accelerate launch training_scripts/translation/train_cyclegan.py           # the built-in digit pair
    accelerate launch training_scripts/translation/train_cyclegan.py --dataset_name hfgen/photos-graded
    accelerate launch training_scripts/translation/train_cyclegan.py --domain_a horses/ --domain_b zebras/ \
        --resolution 128 --generator_channels 64 --num_residual_blocks 9 --n_epochs 100 --n_epochs_decay 100

Each iteration is written out below, in the order of the paper's code: one step of both generators (adversarial
losses through both discriminators, held still; cycle losses A -> B -> A and B -> A -> B; identity losses), then one
step of both discriminators on real images against translations drawn from a history of the last `--pool_size`.
The folder loads with `hfgen.CycleGANPipeline.from_pretrained(dir)(images, direction="a_to_b" | "b_to_a")`.
"""

import logging
import math
import os

import torch
from accelerate.logging import get_logger
from accelerate.utils import set_seed
from tqdm.auto import tqdm

import hfgen
from hfgen.data import collate_images
from hfgen.losses import discriminator_loss, generator_loss, gradient_penalty
from hfgen.losses.translation import cycle_consistency_loss, identity_loss
from hfgen.pipelines.cyclegan.evaluation import cyclegan_translators
from hfgen.training import save_checkpoint
from hfgen.training.adversarial import ImagePool, Phase, run_phase
from hfgen.training.arguments import add_run_arguments, check_run_arguments, print_dry_run
from hfgen.training.cli import check_flag_ranges, make_parser, run_script
from hfgen.training.hub import print_run_summary, push_folder, save_card_grid, write_model_card, write_run_record
from hfgen.training.runs import (
    check_finite,
    check_replicas,
    end_run,
    endless_batches,
    make_accelerator,
    make_train_dataloader,
    random_flip,
    resume_run,
    start_trackers,
    to_training_memory_format,
)
from hfgen.training.translation import (
    ADVERSARIAL_SCALE,
    GAN_LOSS_NAMES,
    MODEL_FLAG_RANGES,
    TRANSLATION_CARD_METRIC_NAMES,
    TRANSLATION_FLAG_RANGES,
    add_translation_data_arguments,
    add_translation_model_arguments,
    add_translation_schedule_arguments,
    check_fits_domains,
    check_translation_arguments,
    evaluate_translations,
    load_translation_data,
    load_translation_networks,
    make_translation_scheduler,
    resolve_translation_steps,
    save_translation_grid,
    translation_config,
    translation_grid_rows,
    translation_references,
)

logger = get_logger(__name__)

# Default length: 1,200 steps of batch 16 on the built-in pair (about 13 passes over its 1,437 A images), the second
# half decaying linearly to zero, whatever the size of the data.
DEFAULT_TRAIN_STEPS = 1200
DIRECTIONS = ("a_to_b", "b_to_a")
COMPONENTS = ["generator_ab", "generator_ba", "discriminator_a", "discriminator_b"]


def parse_args(input_args=None):
    parser = make_parser("Train a CycleGAN (unpaired image-to-image translation) with hfgen.")
    add_translation_data_arguments(parser, paired=False)
    add_translation_model_arguments(parser, paired=False)
    add_run_arguments(parser, family="cyclegan")
    add_translation_schedule_arguments(parser)
    # Channels-last order makes the other families faster, but slows CycleGAN's instance-normalised networks (9% per
    # step measured, benchmarks/bench_cyclegan.py): instance norm copies channels-last activations back.
    parser.set_defaults(train_batch_size=16, checkpointing_steps=400, validation_steps=400, channels_last=False)
    # Two generators and two discriminators, each run several times per step: networks of a quarter of the papers'
    # width keep the default run to minutes on a CPU (ResNet-4 with 16 channels; the papers': ResNet-9 with 64).
    parser.set_defaults(generator_channels=16, discriminator_channels=16, num_residual_blocks=4)
    args = parser.parse_args(input_args)
    check_flag_ranges(parser, args, {**MODEL_FLAG_RANGES, **TRANSLATION_FLAG_RANGES})
    check_translation_arguments(parser, args)
    check_run_arguments(parser, args)
    return args


def build_networks(args, channels: int) -> dict:
    """Both generators and both discriminators: from `--pretrained_model_name_or_path`, else new ones (B -> A is
    A -> B's configuration with the channels swapped; D_A judges domain A, D_B domain B)."""
    if args.pretrained_model_name_or_path is not None:
        networks = load_translation_networks(
            hfgen.CycleGANGenerator,
            hfgen.CycleGANDiscriminator,
            args.pretrained_model_name_or_path,
            COMPONENTS,
            logger,
        )
        config = networks["generator_ab"].config
        if networks["discriminator_b"] is None:
            networks["discriminator_b"] = hfgen.CycleGANDiscriminator(config)
        if networks["discriminator_a"] is None:
            networks["discriminator_a"] = hfgen.CycleGANDiscriminator(config.reversed())
    else:
        config = translation_config(hfgen.CycleGANConfig, args, channels, channels, paired=False)
        networks = {
            "generator_ab": hfgen.CycleGANGenerator(config),
            "generator_ba": hfgen.CycleGANGenerator(config.reversed()),
            "discriminator_a": hfgen.CycleGANDiscriminator(config.reversed()),
            "discriminator_b": hfgen.CycleGANDiscriminator(config),
        }
    for name in ("generator_ab", "generator_ba"):
        check_fits_domains(networks[name].config, channels, args.resolution, name)
    config = networks["generator_ab"].config
    if args.lambda_identity and config.in_channels != config.out_channels:
        raise ValueError(
            "--lambda_identity needs both domains in the same colour mode: set it to 0 or --color_mode RGB"
        )
    return networks


class CycleGANStep:
    """One training iteration, in the order of the paper's code: a step of both generators (adversarial losses
    through both discriminators, which are held still; cycle losses A -> B -> A and B -> A -> B; identity losses),
    then a step of both discriminators on real images against translations drawn from the image pools.

    With per-image normalisation (instance norm or none), two passes of one generator on two batches give the same
    result as one pass on both batches together, which runs faster: the cycle pass G_BA(G_AB(a)) and the identity
    pass G_BA(a) run as one, as do the discriminator's real and pooled passes. Batch norm mixes the images of a batch,
    so with it every pass runs on its own, as in the paper's code.

    Args:
        networks (`dict`): `generator_ab`, `generator_ba`, `discriminator_a` (judging A), `discriminator_b`, as
            `accelerator.prepare` returned them; `unwrapped`: the same networks unwrapped.
        g_optimizer, d_optimizer: one Adam for both generators, one for both discriminators.
        pool_a, pool_b (`ImagePool`): the histories of translations to A and to B.
        args: the run's flags (`gan_loss`, `lambda_cycle`, `lambda_identity`, `gp_weight`, `max_grad_norm`).
    """

    def __init__(self, accelerator, networks, unwrapped, g_optimizer, d_optimizer, pool_a, pool_b, args):
        self.accelerator, self.networks, self.args = accelerator, networks, args
        self.pools = {"a": pool_a, "b": pool_b}
        self.loss_name = GAN_LOSS_NAMES[args.gan_loss]
        self.adversarial_scale = ADVERSARIAL_SCALE.get(args.gan_loss, 1.0)
        self.joint_passes = all(network.config.norm != "batch" for network in unwrapped.values())
        # The generators' step runs the discriminators outside their data-parallel wrappers: they take no gradient
        # there, and a wrapper would wait for gradients that never come.
        self.held = {"a": unwrapped["discriminator_a"], "b": unwrapped["discriminator_b"]}
        self.g_phase = Phase(
            "G",
            [networks["generator_ab"], networks["generator_ba"]],
            g_optimizer,
            held=[networks["discriminator_a"], networks["discriminator_b"]],
        )
        self.d_phase = Phase("D", [networks["discriminator_a"], networks["discriminator_b"]], d_optimizer)
        self.guard = None
        self.translations = {}

    def generator_loss(self, batch):
        args, generator_ab, generator_ba = self.args, self.networks["generator_ab"], self.networks["generator_ba"]
        real_a, real_b = batch
        fake_b = generator_ab(real_a).sample
        fake_a = generator_ba(real_b).sample
        if args.lambda_identity and self.joint_passes:
            rebuilt_a, same_a = generator_ba(torch.cat([fake_b, real_a])).sample.chunk(2)
            rebuilt_b, same_b = generator_ab(torch.cat([fake_a, real_b])).sample.chunk(2)
        else:
            rebuilt_a, rebuilt_b = generator_ba(fake_b).sample, generator_ab(fake_a).sample
            if args.lambda_identity:
                same_a, same_b = generator_ba(real_a).sample, generator_ab(real_b).sample
        adversarial = sum(
            generator_loss(self.held[name](fake).logits, self.loss_name) * self.adversarial_scale
            for name, fake in (("a", fake_a), ("b", fake_b))
        )
        cycle = cycle_consistency_loss(rebuilt_a, real_a, args.lambda_cycle) + cycle_consistency_loss(
            rebuilt_b, real_b, args.lambda_cycle
        )
        loss = adversarial + cycle
        logs = {"g_adversarial": adversarial.detach(), "cycle": cycle.detach()}
        if args.lambda_identity:
            identity = identity_loss(same_a, real_a, args.lambda_cycle, args.lambda_identity) + identity_loss(
                same_b, real_b, args.lambda_cycle, args.lambda_identity
            )
            loss = loss + identity
            logs["identity"] = identity.detach()
        self.translations = {"a": fake_a.detach(), "b": fake_b.detach()}
        return loss, {"g_loss": loss.detach(), **logs}

    def discriminator_loss(self, batch):
        loss, logs = 0.0, {}
        for name, real in zip("ab", batch, strict=True):
            discriminator = self.networks[f"discriminator_{name}"]
            fake = self.pools[name].query(self.translations[name])
            if self.joint_passes:
                real_logits, fake_logits = discriminator(torch.cat([real, fake])).logits.chunk(2)
            else:
                real_logits, fake_logits = discriminator(real).logits, discriminator(fake).logits
            # The paper's code halves D's loss to slow it against the generators; hfgen's LSGAN loss already is.
            d_loss = discriminator_loss(real_logits, fake_logits, self.loss_name)
            d_loss = d_loss * (1.0 if self.loss_name == "lsgan" else 0.5)
            if self.loss_name == "wgan-gp":

                def critic(images, discriminator=discriminator):
                    return discriminator(images).logits.flatten(1).mean(dim=1)

                d_loss = d_loss + gradient_penalty(critic, real, fake, weight=self.args.gp_weight)
            loss = loss + d_loss
            logs[f"d_{name}_loss"] = d_loss.detach()
        return loss, logs

    def __call__(self, micro_batches: list) -> dict:
        """Both steps on `micro_batches` (one `(real_a, real_b)` per gradient-accumulation step); returns the logs.
        Under gradient accumulation the discriminators see the last micro-batch's translations only: keeping every
        micro-batch's would hold them all in memory, which accumulation is there to avoid."""
        max_norm = self.args.max_grad_norm
        g_logs = run_phase(self.g_phase, self.accelerator, micro_batches, self.generator_loss, max_norm, self.guard)
        d_logs = run_phase(
            self.d_phase, self.accelerator, micro_batches[-1:], self.discriminator_loss, max_norm, self.guard
        )
        return {**g_logs, **d_logs}


def main(args):
    accelerator = make_accelerator(args)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)

    # 1. data: both domains, every image checked before training starts
    data = load_translation_data(args, accelerator, paired=False, logger=logger)
    channels = 1 if args.color_mode == "L" else 3

    # 2. networks, built with the same seed everywhere; then each process draws its own pool swaps
    set_seed(args.seed)
    networks = build_networks(args, channels)
    if args.dry_run:
        print_dry_run(args, accelerator, model_config=networks["generator_ab"].config.to_dict())
        return None
    to_training_memory_format(args, *networks.values())
    set_seed(args.seed, device_specific=True)
    loader_a = make_train_dataloader(data.train_a, args, collate_images)
    loader_b = make_train_dataloader(data.train_b, args, collate_images)

    # 3. optimisation: one Adam for both generators, one for both discriminators, as in the paper's code
    betas = (args.adam_beta1, args.adam_beta2)
    generator_parameters = [p for name in ("generator_ab", "generator_ba") for p in networks[name].parameters()]
    discriminator_parameters = [
        p for name in ("discriminator_a", "discriminator_b") for p in networks[name].parameters()
    ]
    # fused: one kernel for all the parameters instead of one per tensor
    g_optimizer = torch.optim.Adam(generator_parameters, lr=args.learning_rate, betas=betas, fused=True)
    d_optimizer = torch.optim.Adam(discriminator_parameters, lr=args.learning_rate, betas=betas, fused=True)
    # An epoch is a pass over the larger domain (the paper's dataset length), per process.
    batches_per_epoch = math.ceil(max(len(loader_a), len(loader_b)) / accelerator.num_processes)
    resolve_translation_steps(args, batches_per_epoch, DEFAULT_TRAIN_STEPS)
    # Not prepared: accelerate would step a prepared schedule once per process per step.
    g_scheduler = make_translation_scheduler(args, g_optimizer, batches_per_epoch)
    d_scheduler = make_translation_scheduler(args, d_optimizer, batches_per_epoch)
    *prepared, g_optimizer, d_optimizer, loader_a, loader_b = accelerator.prepare(
        *networks.values(), g_optimizer, d_optimizer, loader_a, loader_b
    )
    networks_prepared = dict(zip(networks, prepared, strict=True))
    pool_a, pool_b = ImagePool(args.pool_size), ImagePool(args.pool_size)
    for state in (g_scheduler, d_scheduler, pool_a, pool_b):
        accelerator.register_for_checkpointing(state)
    start_trackers(accelerator, args, "train_cyclegan")

    # 4. resume: networks, optimizers, schedules, image pools and RNG states come back together
    global_step = resume_run(accelerator, args.output_dir, args.resume_from_checkpoint, logger)
    logger.info(
        f"{args.max_train_steps} steps of batch {args.train_batch_size} x {accelerator.num_processes} processes, "
        f"{batches_per_epoch} steps per epoch"
    )
    progress = tqdm(
        range(args.max_train_steps), initial=global_step, desc="steps", disable=not accelerator.is_local_main_process
    )
    batches_a = endless_batches(accelerator, loader_a, global_step * args.gradient_accumulation_steps)
    batches_b = endless_batches(accelerator, loader_b, global_step * args.gradient_accumulation_steps)
    unwrapped = {name: accelerator.unwrap_model(network) for name, network in networks.items()}

    # 5. the loop: both generators' step, then both discriminators' step on pooled translations (CycleGANStep)
    step = CycleGANStep(accelerator, networks_prepared, unwrapped, g_optimizer, d_optimizer, pool_a, pool_b, args)

    def guard(loss, phase_name: str):
        check_finite(loss, f"the {phase_name} loss", global_step, args.output_dir, args.loss_limit)

    step.guard = guard
    reconstruction_losses = []
    for network in networks_prepared.values():
        network.train()
    while global_step < args.max_train_steps:
        micro_batches = []
        for _ in range(args.gradient_accumulation_steps):
            real_a, real_b = next(batches_a)["pixel_values"], next(batches_b)["pixel_values"]
            if args.random_flip:  # unpaired: each domain flipped on its own
                real_a, real_b = random_flip(real_a), random_flip(real_b)
            micro_batches.append((real_a, real_b))
        logs = step(micro_batches)
        reconstruction_losses.append(logs["cycle"])
        if args.lr_scheduler != "plateau":
            g_scheduler.step()
            d_scheduler.step()

        global_step += 1
        progress.update(1)
        logs["lr"] = g_optimizer.param_groups[0]["lr"]
        progress.set_postfix(g_loss=f"{logs['g_loss']:.3f}", cycle=f"{logs['cycle']:.3f}")
        accelerator.log(logs, step=global_step)

        if global_step % args.checkpointing_steps == 0:
            save_checkpoint(accelerator, args.output_dir, global_step, args.checkpoints_total_limit)
        if global_step % args.validation_steps == 0:
            if args.lr_scheduler == "plateau":
                for scheduler in (g_scheduler, d_scheduler):
                    scheduler.step(sum(reconstruction_losses) / len(reconstruction_losses))
            reconstruction_losses.clear()
            if global_step < args.max_train_steps:
                validate(unwrapped, data, args, accelerator, global_step)
    progress.close()

    # 6. the end of the run: final metrics (all processes); then, on the main process, the Hub-ready folder (both
    # generators as a pipeline, the discriminators beside them, grid, record, card) and the upload
    run_facts = check_replicas(accelerator, networks_prepared["generator_ab"], global_step, logger)
    metrics = validate(unwrapped, data, args, accelerator, global_step)
    if accelerator.is_main_process:
        for network in unwrapped.values():
            network.eval()
        pipeline = hfgen.CycleGANPipeline(
            generator_ab=unwrapped["generator_ab"], generator_ba=unwrapped["generator_ba"]
        )
        pipeline.save_pretrained(args.output_dir)
        if args.save_discriminator:
            for name in ("discriminator_a", "discriminator_b"):
                unwrapped[name].save_pretrained(os.path.join(args.output_dir, name))
        translate = cyclegan_translators(unwrapped["generator_ab"], unwrapped["generator_ba"])
        rows, row_names = translation_grid_rows(translate, data, 8, accelerator.device)
        grid_images = save_translation_grid(
            rows, os.path.join(args.output_dir, "validation"), "final", accelerator, global_step
        )
        save_card_grid(grid_images, args.output_dir, columns=8)
        baselines = translation_references(data, DIRECTIONS)
        record = write_run_record(args, metrics, None, {**run_facts, "baselines": baselines}, data.protocol)
        config = unwrapped["generator_ab"].config
        write_model_card(
            args,
            "cyclegan",
            record,
            TRANSLATION_CARD_METRIC_NAMES,
            tags=["cyclegan", "image-to-image", f"{config.generator_architecture}-generator", args.gan_loss],
            pipeline_tag="image-to-image",
            datasets=data.datasets,
            config=config.to_dict(),
            baselines=record.get("baselines"),
            grid_rows=row_names,
            has_discriminator=args.save_discriminator,
        )
        print_run_summary(args.output_dir, data, metrics)
        if args.push_to_hub:
            push_folder(args, "train_cyclegan.py", logger)
    end_run(accelerator)
    return metrics


@torch.no_grad()
def validate(networks: dict, data, args, accelerator, step: int) -> dict:
    """The grid A / A -> B / A -> B -> A / B / B -> A / B -> A -> B of held-out images (main process) and the metrics
    (all processes) of the generators in eval mode; logged."""
    generators = [networks["generator_ab"], networks["generator_ba"]]
    modes = [generator.training for generator in generators]
    for generator in generators:
        generator.eval()
    translate = cyclegan_translators(*generators)
    if accelerator.is_main_process:
        rows, _ = translation_grid_rows(translate, data, args.num_validation_images, accelerator.device)
        save_translation_grid(rows, os.path.join(args.output_dir, "validation"), "translations", accelerator, step)
    metrics = evaluate_translations(translate, data, accelerator, seed=args.seed)
    accelerator.log({f"eval/{name}": value for name, value in metrics.items()}, step=step)
    logger.info(f"step {step}: " + ", ".join(f"{name} {value:.4g}" for name, value in metrics.items()))
    for generator, mode in zip(generators, modes, strict=True):
        generator.train(mode)
    return metrics


if __name__ == "__main__":
    run_script(main, parse_args())
