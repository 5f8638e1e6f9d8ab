#!/usr/bin/env python
"""Train a vanilla GAN, DCGAN, WGAN-GP or conditional GAN, ending with a Hub-ready folder and measured metrics.

    accelerate launch training_scripts/gan/train_gan.py                              # conditional DCGAN on the digits
    accelerate launch training_scripts/gan/train_gan.py --architecture dcgan --loss wgan-gp --d_steps_per_g_step 5
    accelerate launch training_scripts/gan/train_gan.py --architecture mlp --loss minimax --unconditional
    accelerate launch training_scripts/gan/train_gan.py --train_data_dir my_images/ --resolution 64 --augment ada
    # LoRA fine-tuning of a trained generator on a small new set; saves only the adapter:
    accelerate launch training_scripts/gan/train_gan.py --pretrained_model_name_or_path gan-digits \
        --train_data_dir sevens/ --lora_rank 8 --output_dir gan-sevens-lora

Each step is written out below: `--d_steps_per_g_step` discriminator (critic) updates, then one generator update,
each with its own optimizer and learning rate. The folder loads with `hfgen.GANPipeline.from_pretrained(dir)`,
`hfgen.GANGenerator.from_pretrained(dir)` and `transformers.AutoModel.from_pretrained(dir)` (after `import hfgen`).
"""

import contextlib
import copy
import functools
import logging
import math

import torch
from accelerate.logging import get_logger
from accelerate.utils import set_seed
from tqdm.auto import tqdm

import hfgen
from hfgen.data import (
    BUILTIN_DIGITS,
    collate_images,
    dataset_num_classes,
)
from hfgen.losses import GAN_LOSSES, discriminator_loss, generator_loss, gradient_penalty, r1_penalty
from hfgen.models.gan import LORA_GENERATOR_TARGETS
from hfgen.pipelines.gan.evaluation import gan_sampler
from hfgen.training import save_checkpoint
from hfgen.training.adversarial import (
    GAN_CARD_METRIC_NAMES,
    Phase,
    adapt_augmentation,
    add_gan_arguments,
    check_fits_data,
    check_gan_arguments,
    discriminator_input,
    load_pretrained_pair,
    make_augmentation,
    run_phase,
    save_adversarial_weights,
)
from hfgen.training.arguments import (
    add_data_arguments,
    add_run_arguments,
    check_run_arguments,
    is_power_of_two,
    print_dry_run,
    resolve_max_train_steps,
)
from hfgen.training.cli import check_flag_ranges, make_parser, run_script
from hfgen.training.ema import create_ema, update_ema
from hfgen.training.evaluation import load_run_data, measure_references, run_protocol, validate_generator
from hfgen.training.hub import print_run_summary, push_folder, save_card_grid, write_model_card, write_run_record
from hfgen.training.runs import (
    check_finite,
    check_replicas,
    end_run,
    endless_batches,
    make_accelerator,
    make_lr_schedulers,
    make_train_dataloader,
    random_flip,
    resume_run,
    start_trackers,
    to_training_memory_format,
)

logger = get_logger(__name__)

# The architecture of a new model when no --model_config_name_or_path is given: sized so that the default run on the
# built-in digits trains in a few minutes on 2 CPU cores.
# Default length: 550 steps of batch 64 (25 passes over the digits), whatever the size of the data.
DEFAULT_TRAIN_STEPS = 550
DEFAULT_ARCHITECTURE = dict(
    latent_dim=64, generator_channels=32, discriminator_channels=32, max_channels=128, class_embedding_dim=16
)


def parse_args(input_args=None):
    parser = make_parser("Train a GAN / DCGAN / WGAN-GP / conditional GAN with hfgen.")
    add_data_arguments(parser, BUILTIN_DIGITS)
    parser.add_argument("--architecture", type=str, default="dcgan", choices=["mlp", "dcgan"])
    parser.add_argument(
        "--generator_upsampling",
        type=str,
        default="nearest",
        choices=["nearest", "transposed", "pixel_shuffle"],
        help="How a new DCGAN generator doubles the resolution: nearest + 3x3 convolution, the paper's 4x4 stride-2 "
        "transposed convolutions (fastest; LoRA cannot adapt them), or sub-pixel convolutions (the paper's layout "
        "as Conv2d layers LoRA reaches). See GANConfig.generator_upsampling.",
    )
    parser.add_argument("--loss", type=str, default="non-saturating", choices=GAN_LOSSES)
    parser.add_argument("--gp_weight", type=float, default=10.0, help="lambda of WGAN-GP's gradient penalty.")
    parser.add_argument("--r1_gamma", type=float, default=0.0, help="R1 penalty weight gamma (0: off).")
    parser.add_argument(
        "--d_steps_per_g_step", type=int, default=1, help="Critic updates per generator update (n_critic)."
    )
    add_gan_arguments(parser, learning_rate=2e-4, betas=(0.5, 0.999))
    add_run_arguments(parser, family="gan")
    parser.set_defaults(checkpointing_steps=250, validation_steps=250)
    args = parser.parse_args(input_args)
    check_run_arguments(parser, args)
    check_gan_arguments(parser, args)
    check_flag_ranges(parser, args, {"d_steps_per_g_step": (1, None, "closed"), "gp_weight": (0, None, "closed")})
    building_from_flags = args.pretrained_model_name_or_path is None and args.model_config_name_or_path is None
    if building_from_flags and args.architecture == "dcgan" and not is_power_of_two(args.resolution):
        parser.error(
            f"--resolution must be a power of two (8, 16, 32, ...) for --architecture dcgan, got {args.resolution}"
        )
    return args


def build_models(args, num_classes: int):
    if args.pretrained_model_name_or_path is not None:
        generator, discriminator = load_pretrained_pair(
            hfgen.GANGenerator, hfgen.GANDiscriminator, args.pretrained_model_name_or_path, logger
        )
    else:
        if args.model_config_name_or_path is not None:
            config = hfgen.GANConfig.from_pretrained(args.model_config_name_or_path)
        else:
            config = hfgen.GANConfig(
                architecture=args.architecture,
                image_size=args.resolution,
                num_channels=1 if args.color_mode == "L" else 3,
                num_classes=num_classes,
                # WGAN-GP's penalty is per image: batch statistics in the critic break it.
                discriminator_norm="layer" if args.loss == "wgan-gp" else "batch",
                generator_upsampling=args.generator_upsampling,
                **DEFAULT_ARCHITECTURE,
            )
        generator, discriminator = hfgen.GANGenerator(config), hfgen.GANDiscriminator(config)
    config = generator.config
    check_fits_data(args, config.num_channels, config.image_size, config.num_classes, num_classes)
    if args.loss == "wgan-gp" and discriminator.config.discriminator_norm == "batch":
        raise ValueError(
            "--loss wgan-gp needs a critic without batch norm: set discriminator_norm to 'layer' or 'none'"
        )
    return generator, discriminator


def main(args):
    accelerator = make_accelerator(args)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)

    # 1. data: every image is checked before training starts
    data = load_run_data(args, accelerator, logger)
    num_classes = 0 if args.unconditional else dataset_num_classes(data.dataset["train"])

    # 2. models: built with the same seed everywhere, then each process gets its own stream of noise
    set_seed(args.seed)
    generator, discriminator = build_models(args, num_classes)
    if args.dry_run:
        print_dry_run(args, accelerator, model_config=generator.config.to_dict(), num_classes=num_classes)
        return None
    if args.lora_rank:
        from peft import LoraConfig, get_peft_model

        if generator.config.generator_upsampling == "transposed":
            raise ValueError(
                f"--lora_rank: {args.pretrained_model_name_or_path} upsamples with transposed convolutions, which "
                "PEFT LoRA cannot adapt; fine-tune it without --lora_rank, or train models meant for LoRA with "
                "--generator_upsampling pixel_shuffle or nearest"
            )

        generator = get_peft_model(
            generator,
            LoraConfig(
                r=args.lora_rank,
                lora_alpha=args.lora_rank,
                target_modules=LORA_GENERATOR_TARGETS,
                modules_to_save=["norm", "input_norm"],
            ),
        )  # LoRA cannot adapt batch norm: it is trained in full
    to_training_memory_format(args, generator, discriminator)
    set_seed(args.seed, device_specific=True)
    use_ema = args.ema_decay > 0 and not args.lora_rank
    ema_generator = create_ema(generator) if use_ema else None

    train_dataloader = make_train_dataloader(data.train, args, collate_images)

    # 3. optimisation: one optimizer (and schedule) per network
    betas = (args.adam_beta1, args.adam_beta2)
    # fused: one kernel for all the parameters; the per-tensor default costs 14% of a step on CPUs
    trainable = [parameter for parameter in generator.parameters() if parameter.requires_grad]
    g_optimizer = torch.optim.Adam(trainable, lr=args.generator_learning_rate, betas=betas, fused=True)
    d_optimizer = torch.optim.Adam(
        discriminator.parameters(), lr=args.discriminator_learning_rate, betas=betas, fused=True
    )
    batches_per_step = args.d_steps_per_g_step * args.gradient_accumulation_steps
    batches_per_epoch = math.ceil(len(train_dataloader) / accelerator.num_processes)
    resolve_max_train_steps(args, batches_per_epoch, batches_per_step, DEFAULT_TRAIN_STEPS)
    g_scheduler, d_scheduler = make_lr_schedulers(args, accelerator, g_optimizer, d_optimizer)
    generator, discriminator, g_optimizer, d_optimizer, train_dataloader, g_scheduler, d_scheduler = (
        accelerator.prepare(
            generator, discriminator, g_optimizer, d_optimizer, train_dataloader, g_scheduler, d_scheduler
        )
    )
    augment = make_augmentation(args, accelerator, len(data.train))
    if ema_generator is not None:
        ema_generator.to(accelerator.device)
        accelerator.register_for_checkpointing(ema_generator)
    start_trackers(accelerator, args, "train_gan")

    # 4. resume: networks, optimizers, schedules, EMA, augmentation state and RNG states come back together
    global_step = resume_run(accelerator, args.output_dir, args.resume_from_checkpoint, logger)

    logger.info(
        f"{len(data.train)} training images, {num_classes or 'no'} classes, {args.max_train_steps} steps of "
        f"{args.d_steps_per_g_step} D + 1 G update(s), batch {args.train_batch_size} x "
        f"{args.gradient_accumulation_steps} x {accelerator.num_processes} processes"
    )
    progress = tqdm(
        range(args.max_train_steps), initial=global_step, desc="steps", disable=not accelerator.is_local_main_process
    )
    batches = endless_batches(accelerator, train_dataloader, global_step * batches_per_step)
    unwrapped_generator = accelerator.unwrap_model(generator)
    unwrapped_discriminator = accelerator.unwrap_model(discriminator)
    latent_dim = unwrapped_generator.config.latent_dim
    d_step_count = global_step * args.d_steps_per_g_step

    # 5. the loop: --d_steps_per_g_step discriminator (critic) steps, then one generator step on the fakes of the last
    # one (the generator runs forward once per iteration, as in the DCGAN reference loop). R1, when on, is folded
    # into the discriminator's main step every --r1_interval steps (hfgen/training/adversarial.py says why).
    d_main = Phase("D main", discriminator, d_optimizer)
    g_main = Phase("G main", generator, g_optimizer, held=unwrapped_discriminator)

    def next_real_batch():
        batch = next(batches)
        real = random_flip(batch["pixel_values"]) if args.random_flip else batch["pixel_values"]
        return real, batch["labels"] if num_classes else None

    def add_fakes(micro_batches, keep_graph: bool) -> list:
        """`(real, labels, fake)` per micro-batch, the fakes drawn for the labels of the real images. With
        `keep_graph` they carry the generator's graph, for the generator step to reuse."""
        with_fakes = []
        for real, labels in micro_batches:
            z = torch.randn(real.shape[0], latent_dim, device=real.device)
            with contextlib.nullcontext() if keep_graph else torch.no_grad():
                fake = (generator if keep_graph else unwrapped_generator)(z, labels=labels).sample
            with_fakes.append((real, labels, fake))
        return with_fakes

    def d_main_loss(micro_batch, apply_r1: bool):
        """Real images against generated ones, which get no gradient here."""
        real, labels, fake = micro_batch
        fake = fake.detach()
        # R1 is taken with respect to the real images before augmentation, through it.
        real = real.detach().requires_grad_(apply_r1)
        real_seen = discriminator_input(real, augment)
        fake_seen = discriminator_input(fake, augment)
        real_logits = discriminator(real_seen, labels=labels).logits
        fake_logits = discriminator(fake_seen, labels=labels).logits
        loss = discriminator_loss(real_logits, fake_logits, args.loss)
        logs = {
            "d_loss": loss.detach(),
            "d_real": real_logits.detach().mean(),
            "d_fake": fake_logits.detach().mean(),
            "real_sign": real_logits.detach().sign().mean(),
        }
        if args.loss == "wgan-gp":

            def critic(images):
                return discriminator(images, labels=labels).logits

            loss = loss + gradient_penalty(critic, real_seen, fake_seen, weight=args.gp_weight)
        if apply_r1:
            loss = loss + r1_penalty(real_logits, real) * (args.r1_gamma / 2) * args.r1_interval
        return loss, logs

    def g_main_loss(micro_batch):
        """Fool the discriminator, just updated, with the fakes its last step saw."""
        real, labels, fake = micro_batch
        if not fake.requires_grad:  # drawn without the generator's graph (gradient accumulation): draw again
            z = torch.randn(real.shape[0], latent_dim, device=real.device)
            fake = generator(z, labels=labels).sample
        loss = generator_loss(
            unwrapped_discriminator(discriminator_input(fake, augment), labels=labels).logits, args.loss
        )
        return loss, {"g_loss": loss.detach()}

    def guard(loss, phase_name: str):
        check_finite(loss, f"the {phase_name} loss", global_step, args.output_dir, args.loss_limit)

    generator.train()
    discriminator.train()
    while global_step < args.max_train_steps:
        for d_step in range(args.d_steps_per_g_step):
            real_batches = [next_real_batch() for _ in range(args.gradient_accumulation_steps)]
            # The generator step reuses the last fakes, except under gradient accumulation, where holding every
            # micro-batch's generator graph at once would defeat the memory that accumulation saves.
            reuse = d_step == args.d_steps_per_g_step - 1 and args.gradient_accumulation_steps == 1
            micro_batches = add_fakes(real_batches, keep_graph=reuse)
            apply_r1 = args.r1_gamma > 0 and d_step_count % args.r1_interval == 0
            d_loss_of = functools.partial(d_main_loss, apply_r1=apply_r1)
            d_logs = run_phase(d_main, accelerator, micro_batches, d_loss_of, args.max_grad_norm, guard)
            d_step_count += 1
            real_count = sum(real.shape[0] for real, _ in real_batches)
            adapt_augmentation(augment, accelerator, d_logs["real_sign"] * real_count, real_count)
        g_logs = run_phase(g_main, accelerator, micro_batches, g_main_loss, args.max_grad_norm, guard)
        g_scheduler.step()
        d_scheduler.step()
        if ema_generator is not None:
            update_ema(ema_generator, unwrapped_generator, args.ema_decay, global_step)

        global_step += 1
        progress.update(1)
        logs = {
            "d_loss": d_logs["d_loss"],
            "g_loss": g_logs["g_loss"],
            "d_real": d_logs["d_real"],
            "d_fake": d_logs["d_fake"],
            "lr_g": g_scheduler.get_last_lr()[0],
        }
        if augment is not None:
            logs["augment_p"] = augment.probability
        progress.set_postfix(d_loss=f"{logs['d_loss']:.3f}", g_loss=f"{logs['g_loss']:.3f}")
        accelerator.log(logs, step=global_step)

        if global_step % args.checkpointing_steps == 0:
            save_checkpoint(accelerator, args.output_dir, global_step, args.checkpoints_total_limit)
        if global_step % args.validation_steps == 0 and global_step < args.max_train_steps:
            validate(
                unwrapped_generator if ema_generator is None else ema_generator,
                data,
                num_classes,
                args,
                accelerator,
                global_step,
            )
            generator.train()
    progress.close()

    # 6. the end of the run: final metrics (all processes); then, on the main process, the Hub-ready folder (weights,
    # sample grid, record of the run, model card) and the upload
    final_generator = unwrapped_generator if ema_generator is None else ema_generator
    run_facts = check_replicas(accelerator, generator, global_step, logger)
    metrics = validate(final_generator, data, num_classes, args, accelerator, global_step)
    if accelerator.is_main_process:
        references = measure_references(data.evaluation, args)
        final_generator.eval()
        # A LoRA run saves only the adapter (PeftModel.save_pretrained); its samples come from a merged copy.
        pipeline = hfgen.GANPipeline(gan=lora_merged_copy(final_generator))
        pipeline.set_progress_bar_config(disable=True)
        keep_discriminator = args.save_discriminator and not args.lora_rank
        save_adversarial_weights(
            args.output_dir,
            pipeline,
            final_generator,
            unwrapped_discriminator if keep_discriminator else None,
            adapter_only=bool(args.lora_rank),
        )
        # samples.png: 8 rows; with classes, one column per class
        sample_kwargs = {"class_labels": [i % num_classes for i in range(8 * num_classes)]} if num_classes else {}
        seeded = torch.Generator(device="cpu").manual_seed(args.seed)
        samples = pipeline(batch_size=8 * (num_classes or 8), generator=seeded, **sample_kwargs).images
        save_card_grid(samples, args.output_dir, columns=num_classes or 8)
        record = write_run_record(
            args, metrics, references, run_facts, run_protocol(data.evaluation, args.num_eval_samples)
        )
        config = pipeline.gan.config
        write_model_card(
            args,
            "gan",
            record,
            GAN_CARD_METRIC_NAMES,
            tags=["gan", config.architecture, args.loss]
            + (["conditional-gan"] if num_classes else [])
            + (["lora"] if args.lora_rank else []),
            config=config,
            lora=bool(args.lora_rank),
            has_discriminator=keep_discriminator,
            sample_kwargs=sample_kwargs,
        )
        print_run_summary(args.output_dir, data.evaluation, metrics)
        if args.push_to_hub:
            push_folder(args, "train_gan.py", logger)
    end_run(accelerator)
    return metrics


def lora_merged_copy(generator_model):
    """A `GANGenerator` for pipelines: a LoRA-adapted generator merged into a copy (exact for plain layers; the
    training model keeps its adapter); any other generator as it is."""
    if hasattr(generator_model, "merge_and_unload"):
        return copy.deepcopy(generator_model).merge_and_unload()
    return generator_model


@torch.no_grad()
def validate(generator_model, data, num_classes: int, args, accelerator, step: int) -> dict:
    """Sample grid (main process) and metrics (all processes) of `generator_model`, in eval mode; logged."""
    was_training = generator_model.training
    generator_model.eval()
    pipeline = hfgen.GANPipeline(gan=lora_merged_copy(generator_model))
    sample = gan_sampler(generator_model)
    metrics = validate_generator(pipeline, sample, data, args, accelerator, step, logger, num_classes)
    generator_model.train(was_training)
    return metrics


if __name__ == "__main__":
    run_script(main, parse_args())
