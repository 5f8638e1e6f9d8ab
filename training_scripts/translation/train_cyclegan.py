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
COMPONENTS = {
    "generator_ab": "generator_ab",
    "generator_ba": "generator_ba",
    "discriminator_a": "discriminator_a",
    "discriminator_b": "discriminator_b",
}


def parse_args(input_args=None):
    parser = make_parser("Train a CycleGAN (unpaired image-to-image translation) with hfgen.")
    add_translation_data_arguments(parser, paired=False)
    add_translation_model_arguments(parser, paired=False)
    add_run_arguments(parser, family="cyclegan")
    add_translation_schedule_arguments(parser)
    parser.set_defaults(train_batch_size=16, checkpointing_steps=400, validation_steps=400)
    args = parser.parse_args(input_args)
    check_flag_ranges(parser, args, {**MODEL_FLAG_RANGES, **TRANSLATION_FLAG_RANGES})
    check_translation_arguments(parser, args)
    check_run_arguments(parser, args)
    return args


def build_networks(args, channels: int) -> dict:
    """Both generators and both discriminators: from `--pretrained_model_name_or_path`, else new ones (B -> A is
    A -> B's configuration with the channels swapped; D_A judges domain A, D_B domain B)."""
    if args.pretrained_model_name_or_path is not None:
        networks = load_translation_networks(args.pretrained_model_name_or_path, COMPONENTS, logger)
        config = networks["generator_ab"].config
        if networks["discriminator_b"] is None:
            networks["discriminator_b"] = hfgen.CycleGANDiscriminator(config)
        if networks["discriminator_a"] is None:
            networks["discriminator_a"] = hfgen.CycleGANDiscriminator(config.reversed())
    else:
        config = translation_config(args, channels, channels, paired=False)
        networks = {
            "generator_ab": hfgen.CycleGANGenerator(config),
            "generator_ba": hfgen.CycleGANGenerator(config.reversed()),
            "discriminator_a": hfgen.CycleGANDiscriminator(config.reversed()),
            "discriminator_b": hfgen.CycleGANDiscriminator(config),
        }
    for name in ("generator_ab", "generator_ba"):
        check_fits_domains(networks[name].config, channels, args.resolution, name)
    return networks


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
    generator_ab, generator_ba, discriminator_a, discriminator_b, g_optimizer, d_optimizer, loader_a, loader_b = (
        accelerator.prepare(*networks.values(), g_optimizer, d_optimizer, loader_a, loader_b)
    )
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
    loss_name = GAN_LOSS_NAMES[args.gan_loss]
    adversarial_scale = ADVERSARIAL_SCALE.get(args.gan_loss, 1.0)
    identity_weight = args.lambda_identity
    if (
        identity_weight
        and unwrapped["generator_ab"].config.in_channels != unwrapped["generator_ab"].config.out_channels
    ):
        raise ValueError(
            "--lambda_identity needs both domains in the same colour mode: set it to 0 or --color_mode RGB"
        )

    # 5. the loop: both generators' step, then both discriminators' step on pooled translations
    g_phase = Phase("G", [generator_ab, generator_ba], g_optimizer, held=[discriminator_a, discriminator_b])
    # The generators' step runs the discriminators outside their data-parallel wrappers: they take no gradient there.
    held_a, held_b = unwrapped["discriminator_a"], unwrapped["discriminator_b"]
    d_phase = Phase("D", [discriminator_a, discriminator_b], d_optimizer)

    def g_loss_of(batch):
        real_a, real_b = batch
        fake_b = generator_ab(real_a).sample
        fake_a = generator_ba(real_b).sample
        adversarial_b = generator_loss(held_b(fake_b).logits, loss_name) * adversarial_scale
        adversarial_a = generator_loss(held_a(fake_a).logits, loss_name) * adversarial_scale
        cycle_a = cycle_consistency_loss(generator_ba(fake_b).sample, real_a, args.lambda_cycle)
        cycle_b = cycle_consistency_loss(generator_ab(fake_a).sample, real_b, args.lambda_cycle)
        loss = adversarial_a + adversarial_b + cycle_a + cycle_b
        logs = {"g_adversarial": (adversarial_a + adversarial_b).detach(), "cycle": (cycle_a + cycle_b).detach()}
        if identity_weight:
            same_b = identity_loss(generator_ab(real_b).sample, real_b, args.lambda_cycle, identity_weight)
            same_a = identity_loss(generator_ba(real_a).sample, real_a, args.lambda_cycle, identity_weight)
            loss = loss + same_a + same_b
            logs["identity"] = (same_a + same_b).detach()
        translations.update(fake_a=fake_a.detach(), fake_b=fake_b.detach())
        return loss, {"g_loss": loss.detach(), **logs}

    def d_loss_of(batch):
        real_a, real_b = batch
        loss, logs = 0.0, {}
        for name, discriminator, real, pool in (
            ("a", discriminator_a, real_a, pool_a),
            ("b", discriminator_b, real_b, pool_b),
        ):
            fake = pool.query(translations[f"fake_{name}"])
            real_logits, fake_logits = discriminator(real).logits, discriminator(fake).logits
            # The paper's code halves D's loss to slow it against the generators; hfgen's LSGAN loss is already halved.
            d_loss = discriminator_loss(real_logits, fake_logits, loss_name) * (1.0 if loss_name == "lsgan" else 0.5)
            if loss_name == "wgan-gp":

                def critic(images, discriminator=discriminator):
                    return discriminator(images).logits.flatten(1).mean(dim=1)

                d_loss = d_loss + gradient_penalty(critic, real, fake, weight=args.gp_weight)
            loss = loss + d_loss
            logs[f"d_{name}_loss"] = d_loss.detach()
        return loss, logs

    def guard(loss, phase_name: str):
        check_finite(loss, f"the {phase_name} loss", global_step, args.output_dir, args.loss_limit)

    translations = {}
    reconstruction_losses = []
    for network in (generator_ab, generator_ba, discriminator_a, discriminator_b):
        network.train()
    while global_step < args.max_train_steps:
        micro_batches = []
        for _ in range(args.gradient_accumulation_steps):
            real_a, real_b = next(batches_a)["pixel_values"], next(batches_b)["pixel_values"]
            if args.random_flip:  # unpaired: each domain flipped on its own
                real_a, real_b = random_flip(real_a), random_flip(real_b)
            micro_batches.append((real_a, real_b))
        # Under gradient accumulation D sees the last micro-batch's translations only: keeping every micro-batch's
        # translations would hold them all in memory, which accumulation is there to avoid.
        g_logs = run_phase(g_phase, accelerator, micro_batches, g_loss_of, args.max_grad_norm, guard)
        d_logs = run_phase(d_phase, accelerator, micro_batches[-1:], d_loss_of, args.max_grad_norm, guard)
        reconstruction_losses.append(g_logs["cycle"])
        if args.lr_scheduler != "plateau":
            g_scheduler.step()
            d_scheduler.step()

        global_step += 1
        progress.update(1)
        logs = {**g_logs, **d_logs, "lr": g_optimizer.param_groups[0]["lr"]}
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
    run_facts = check_replicas(accelerator, generator_ab, global_step, logger)
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
        rows, row_names = translation_grid_rows(translators(unwrapped), data, 8, accelerator.device)
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


def translators(networks: dict) -> dict:
    """The run's translations in both directions, from the unwrapped generators."""
    return {
        "a_to_b": lambda images: networks["generator_ab"](images).sample,
        "b_to_a": lambda images: networks["generator_ba"](images).sample,
    }


@torch.no_grad()
def validate(networks: dict, data, args, accelerator, step: int) -> dict:
    """The grid A / A -> B / A -> B -> A / B / B -> A / B -> A -> B of held-out images (main process) and the metrics
    (all processes) of the generators in eval mode; logged."""
    generators = [networks["generator_ab"], networks["generator_ba"]]
    modes = [generator.training for generator in generators]
    for generator in generators:
        generator.eval()
    if accelerator.is_main_process:
        rows, _ = translation_grid_rows(translators(networks), data, args.num_validation_images, accelerator.device)
        save_translation_grid(rows, os.path.join(args.output_dir, "validation"), "translations", accelerator, step)
    metrics = evaluate_translations(translators(networks), data, accelerator, seed=args.seed)
    accelerator.log({f"eval/{name}": value for name, value in metrics.items()}, step=step)
    logger.info(f"step {step}: " + ", ".join(f"{name} {value:.4g}" for name, value in metrics.items()))
    for generator, mode in zip(generators, modes, strict=True):
        generator.train(mode)
    return metrics


if __name__ == "__main__":
    run_script(main, parse_args())
