#!/usr/bin/env python
"""Train pix2pix (Isola et al. 2017): a generator translating images of domain A to their paired images of domain B,
against a conditional PatchGAN that judges (input, output) pairs, plus an L1 loss to the true output; ending with a
Hub-ready folder and measured metrics.

    accelerate launch training_scripts/translation/train_pix2pix.py            # the built-in digit pair, paired
    accelerate launch training_scripts/translation/train_pix2pix.py --dataset_name hfgen/photos-graded
    accelerate launch training_scripts/translation/train_pix2pix.py --domain_a edges/ --domain_b photos/ \
        --resolution 256 --generator_channels 64 --discriminator_channels 64 --n_epochs 100 --n_epochs_decay 100

Each iteration is written out below, in the order of the paper's code: one discriminator step on real pairs against
translated ones, then one generator step through the discriminator (held still) plus `--lambda_l1` times the L1
distance to the targets. The folder loads with `hfgen.Pix2PixPipeline.from_pretrained(dir)(condition_images)`.
"""

import contextlib
import logging
import math
import os

import torch
from accelerate.logging import get_logger
from accelerate.utils import set_seed
from tqdm.auto import tqdm

import hfgen
from hfgen.losses import discriminator_loss, generator_loss, gradient_penalty
from hfgen.losses.translation import paired_l1_loss
from hfgen.pipelines.cyclegan.evaluation import pix2pix_translators
from hfgen.training import save_checkpoint
from hfgen.training.adversarial import Phase, run_phase
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
    collate_pairs,
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

# Default length: 800 steps of batch 16 on the built-in pair (about 9 passes over its 1,437 pairs), the second half
# decaying linearly to zero, whatever the size of the data.
DEFAULT_TRAIN_STEPS = 800
COMPONENTS = ["generator", "discriminator"]


def parse_args(input_args=None):
    parser = make_parser("Train pix2pix (paired image-to-image translation) with hfgen.")
    add_translation_data_arguments(parser, paired=True)
    add_translation_model_arguments(parser, paired=True)
    add_run_arguments(parser, family="pix2pix")
    add_translation_schedule_arguments(parser)
    parser.set_defaults(train_batch_size=16, checkpointing_steps=400, validation_steps=400)
    args = parser.parse_args(input_args)
    check_flag_ranges(parser, args, {**MODEL_FLAG_RANGES, **TRANSLATION_FLAG_RANGES})
    check_translation_arguments(parser, args)
    check_run_arguments(parser, args)
    return args


def build_networks(args, channels: int) -> dict:
    """The generator and its conditional discriminator (judging A and B images side by side, channel-wise)."""
    if args.pretrained_model_name_or_path is not None:
        networks = load_translation_networks(
            hfgen.CycleGANGenerator,
            hfgen.CycleGANDiscriminator,
            args.pretrained_model_name_or_path,
            COMPONENTS,
            logger,
        )
        if networks["discriminator"] is None:
            networks["discriminator"] = hfgen.CycleGANDiscriminator(networks["generator"].config)
    else:
        config = translation_config(hfgen.CycleGANConfig, args, channels, channels, paired=True)
        networks = {"generator": hfgen.CycleGANGenerator(config), "discriminator": hfgen.CycleGANDiscriminator(config)}
    check_fits_domains(networks["generator"].config, channels, args.resolution, "the generator")
    if not networks["discriminator"].config.conditional_discriminator:
        raise ValueError(
            f"{args.pretrained_model_name_or_path}: its discriminator is not conditional (a CycleGAN's?): pix2pix's "
            "judges (input, output) pairs; start from a pix2pix folder, or move discriminator/ aside for a new one"
        )
    return networks


def main(args):
    accelerator = make_accelerator(args)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)

    # 1. data: the pairs, every image checked before training starts
    data = load_translation_data(args, accelerator, paired=True, logger=logger)
    channels = 1 if args.color_mode == "L" else 3

    # 2. networks, built with the same seed everywhere; then each process draws its own dropout and flips
    set_seed(args.seed)
    networks = build_networks(args, channels)
    if args.dry_run:
        print_dry_run(args, accelerator, model_config=networks["generator"].config.to_dict())
        return None
    to_training_memory_format(args, *networks.values())
    set_seed(args.seed, device_specific=True)
    train_dataloader = make_train_dataloader(data.train_a, args, collate_pairs)

    # 3. optimisation: one Adam per network (fused: one kernel for all its parameters)
    betas = (args.adam_beta1, args.adam_beta2)
    g_optimizer = torch.optim.Adam(networks["generator"].parameters(), lr=args.learning_rate, betas=betas, fused=True)
    d_optimizer = torch.optim.Adam(
        networks["discriminator"].parameters(), lr=args.learning_rate, betas=betas, fused=True
    )
    batches_per_epoch = math.ceil(len(train_dataloader) / accelerator.num_processes)
    resolve_translation_steps(args, batches_per_epoch, DEFAULT_TRAIN_STEPS)
    # Not prepared: accelerate would step a prepared schedule once per process per step.
    g_scheduler = make_translation_scheduler(args, g_optimizer, batches_per_epoch)
    d_scheduler = make_translation_scheduler(args, d_optimizer, batches_per_epoch)
    generator, discriminator, g_optimizer, d_optimizer, train_dataloader = accelerator.prepare(
        networks["generator"], networks["discriminator"], g_optimizer, d_optimizer, train_dataloader
    )
    for state in (g_scheduler, d_scheduler):
        accelerator.register_for_checkpointing(state)
    start_trackers(accelerator, args, "train_pix2pix")

    # 4. resume: networks, optimizers, schedules and RNG states come back together
    global_step = resume_run(accelerator, args.output_dir, args.resume_from_checkpoint, logger)
    logger.info(
        f"{args.max_train_steps} steps of batch {args.train_batch_size} x {args.gradient_accumulation_steps} x "
        f"{accelerator.num_processes} processes, {batches_per_epoch} steps per epoch"
    )
    progress = tqdm(
        range(args.max_train_steps), initial=global_step, desc="steps", disable=not accelerator.is_local_main_process
    )
    batches = endless_batches(accelerator, train_dataloader, global_step * args.gradient_accumulation_steps)
    unwrapped_generator = accelerator.unwrap_model(generator)
    unwrapped_discriminator = accelerator.unwrap_model(discriminator)
    loss_name = GAN_LOSS_NAMES[args.gan_loss]
    adversarial_scale = ADVERSARIAL_SCALE.get(args.gan_loss, 1.0)

    # 5. the loop: the discriminator's step on real and translated pairs, then the generator's on the same
    # translations (the generator runs forward once per iteration, as in the paper's code)
    d_phase = Phase("D", discriminator, d_optimizer)
    g_phase = Phase("G", generator, g_optimizer, held=unwrapped_discriminator)

    def add_translations(micro_batches, keep_graph: bool) -> list:
        """`(source, target, translated)` per micro-batch; with `keep_graph` the translations carry the generator's
        graph, for the generator step to reuse."""
        with_translations = []
        for source, target in micro_batches:
            with contextlib.nullcontext() if keep_graph else torch.no_grad():
                with_translations.append((source, target, generator(source).sample))
        return with_translations

    def d_loss_of(micro_batch):
        source, target, translated = micro_batch
        real_pairs = torch.cat([source, target], dim=1)
        fake_pairs = torch.cat([source, translated.detach()], dim=1)
        real_logits, fake_logits = discriminator(real_pairs).logits, discriminator(fake_pairs).logits
        # The paper's code halves D's loss to slow it against the generator; hfgen's LSGAN loss is already halved.
        loss = discriminator_loss(real_logits, fake_logits, loss_name) * (1.0 if loss_name == "lsgan" else 0.5)
        if loss_name == "wgan-gp":

            def critic(pairs):
                return discriminator(pairs).logits.flatten(1).mean(dim=1)

            loss = loss + gradient_penalty(critic, real_pairs, fake_pairs, weight=args.gp_weight)
        return loss, {
            "d_loss": loss.detach(),
            "d_real": real_logits.detach().mean(),
            "d_fake": fake_logits.detach().mean(),
        }

    def g_loss_of(micro_batch):
        source, target, translated = micro_batch
        if not translated.requires_grad:  # drawn without the generator's graph (gradient accumulation): again
            translated = generator(source).sample
        fake_logits = unwrapped_discriminator(torch.cat([source, translated], dim=1)).logits
        adversarial = generator_loss(fake_logits, loss_name) * adversarial_scale
        l1 = paired_l1_loss(translated, target, args.lambda_l1)
        return adversarial + l1, {
            "g_loss": (adversarial + l1).detach(),
            "g_adversarial": adversarial.detach(),
            "l1": l1.detach(),
        }

    def guard(loss, phase_name: str):
        check_finite(loss, f"the {phase_name} loss", global_step, args.output_dir, args.loss_limit)

    reconstruction_losses = []
    generator.train()
    discriminator.train()
    while global_step < args.max_train_steps:
        pairs = []
        for _ in range(args.gradient_accumulation_steps):
            batch = next(batches)
            source, target = batch["pixel_values_a"], batch["pixel_values_b"]
            if args.random_flip:  # paired: both images of a pair flipped together
                source, target = random_flip(source, paired=target)
            pairs.append((source, target))
        # Under gradient accumulation, holding every micro-batch's generator graph at once would defeat the memory
        # accumulation saves: the generator step then translates again.
        micro_batches = add_translations(pairs, keep_graph=args.gradient_accumulation_steps == 1)
        d_logs = run_phase(d_phase, accelerator, micro_batches, d_loss_of, args.max_grad_norm, guard)
        g_logs = run_phase(g_phase, accelerator, micro_batches, g_loss_of, args.max_grad_norm, guard)
        reconstruction_losses.append(g_logs["l1"])
        if args.lr_scheduler != "plateau":
            g_scheduler.step()
            d_scheduler.step()

        global_step += 1
        progress.update(1)
        logs = {**d_logs, **g_logs, "lr": g_optimizer.param_groups[0]["lr"]}
        progress.set_postfix(d_loss=f"{logs['d_loss']:.3f}", l1=f"{logs['l1']:.3f}")
        accelerator.log(logs, step=global_step)

        if global_step % args.checkpointing_steps == 0:
            save_checkpoint(accelerator, args.output_dir, global_step, args.checkpoints_total_limit)
        if global_step % args.validation_steps == 0:
            if args.lr_scheduler == "plateau":
                for scheduler in (g_scheduler, d_scheduler):
                    scheduler.step(sum(reconstruction_losses) / len(reconstruction_losses))
            reconstruction_losses.clear()
            if global_step < args.max_train_steps:
                validate(unwrapped_generator, data, args, accelerator, global_step)
    progress.close()

    # 6. the end of the run: final metrics (all processes); then, on the main process, the Hub-ready folder
    # (the generator as a pipeline, the discriminator beside it, grid, record, card) and the upload
    run_facts = check_replicas(accelerator, generator, global_step, logger)
    metrics = validate(unwrapped_generator, data, args, accelerator, global_step)
    if accelerator.is_main_process:
        unwrapped_generator.eval()
        hfgen.Pix2PixPipeline(generator=unwrapped_generator).save_pretrained(args.output_dir)
        if args.save_discriminator:
            unwrapped_discriminator.save_pretrained(os.path.join(args.output_dir, "discriminator"))
        rows, row_names = translation_grid_rows(pix2pix_translators(unwrapped_generator), data, 8, accelerator.device)
        folder = os.path.join(args.output_dir, "validation")
        save_card_grid(save_translation_grid(rows, folder, "final", accelerator, global_step), args.output_dir, 8)
        baselines = translation_references(data, ("a_to_b",))
        record = write_run_record(args, metrics, None, {**run_facts, "baselines": baselines}, data.protocol)
        config = unwrapped_generator.config
        write_model_card(
            args,
            "pix2pix",
            record,
            TRANSLATION_CARD_METRIC_NAMES,
            tags=["pix2pix", "image-to-image", f"{config.generator_architecture}-generator", args.gan_loss],
            pipeline_tag="image-to-image",
            datasets=data.datasets,
            config=config.to_dict(),
            baselines=record.get("baselines"),
            grid_rows=row_names,
            has_discriminator=args.save_discriminator,
        )
        print_run_summary(args.output_dir, data, metrics)
        if args.push_to_hub:
            push_folder(args, "train_pix2pix.py", logger)
    end_run(accelerator)
    return metrics


@torch.no_grad()
def validate(generator_model, data, args, accelerator, step: int) -> dict:
    """The grid A / A -> B / true B of held-out pairs (main process) and the metrics (all processes) of the generator
    in eval mode (dropout off, batch norm's running statistics); logged."""
    was_training = generator_model.training
    generator_model.eval()
    translate = pix2pix_translators(generator_model)
    if accelerator.is_main_process:
        rows, _ = translation_grid_rows(translate, data, args.num_validation_images, accelerator.device)
        save_translation_grid(rows, os.path.join(args.output_dir, "validation"), "translations", accelerator, step)
    metrics = evaluate_translations(translate, data, accelerator, seed=args.seed)
    accelerator.log({f"eval/{name}": value for name, value in metrics.items()}, step=step)
    logger.info(f"step {step}: " + ", ".join(f"{name} {value:.4g}" for name, value in metrics.items()))
    generator_model.train(was_training)
    return metrics


if __name__ == "__main__":
    run_script(main, parse_args())
