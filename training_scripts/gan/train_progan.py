#!/usr/bin/env python
"""Train ProGAN (progressive growing of GANs, Karras et al. 2018), ending with a Hub-ready folder and measured metrics.

    accelerate launch training_scripts/gan/train_progan.py            # conditional ProGAN, digits, 4 -> 16 px
    accelerate launch training_scripts/gan/train_progan.py --dataset_name hfgen/faces --resolution 32
    accelerate launch training_scripts/gan/train_progan.py --train_data_dir my_images/ --resolution 64 \
        --stable_steps 2000 --fade_steps 2000

The networks start at `--start_resolution` and grow to `--resolution`: `--stable_steps` at each resolution, then
`--fade_steps` over which the next resolution's block fades in (alpha from 0 to 1), and so on; the final resolution
trains until the end of the run. The stage (resolution, alpha) is a function of the step alone
(`hfgen.training.progressive.GrowingSchedule`), so a run resumed mid-fade continues exactly. Real images are shown to
the discriminator at the stage's resolution, faded the same way.

The loss is by default the non-saturating logistic loss with R1 on real images (`--r1_gamma`, every `--r1_interval`
steps), as hfgen's StyleGAN trains, rather than the paper's WGAN-GP (`--loss wgan-gp`: gradient penalty weight
`--gp_weight` and the drift term, `--drift_weight` times the squared critic score of real images). Why: at the same
1500 steps it scored a lower digits FID (22.9 against 26.1), its double backward runs every 16th step instead of
every step, so about twice the steps fit in the same minutes (where the FID falls to about 8), and ADA, which reads
the sign of the discriminator's scores of real images, works with it: a WGAN critic's scores have no meaningful sign,
so with WGAN-GP small data gets fixed DiffAugment instead. Adam with betas (0, 0.99) as in the paper, and an EMA of
the generator. The folder loads with
`hfgen.ProGANPipeline.from_pretrained(dir)`, `hfgen.ProGANGenerator.from_pretrained(dir)` and
`transformers.AutoModel.from_pretrained(dir)`.
"""

import contextlib
import copy
import functools
import logging

import torch
import torch.nn.functional as F
from accelerate.logging import get_logger
from accelerate.utils import DistributedDataParallelKwargs, set_seed
from tqdm.auto import tqdm

import hfgen
from hfgen.data import BUILTIN_DIGITS, collate_images, dataset_num_classes
from hfgen.losses import discriminator_loss, drift_penalty, generator_loss, gradient_penalty, r1_penalty
from hfgen.models.progan import LORA_PROGAN_TARGETS
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
from hfgen.training.progressive import GrowingSchedule, real_images_at
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

# A new model's architecture when no --model_config_name_or_path is given: small enough for the default run on the
# built-in digits to train in minutes on 2 CPU cores (the paper's is channel_base 8192, channel_max 512, z of 512).
DEFAULT_ARCHITECTURE = dict(latent_dim=64, channel_base=512, channel_max=64)
# The default schedule, in steps of batch 64: each resolution stabilises for DEFAULT_STABLE_STEPS and fades in over
# DEFAULT_FADE_STEPS; the final one then trains for DEFAULT_FINAL_STEPS, where the run's quality is decided.
DEFAULT_STABLE_STEPS = 300
DEFAULT_FADE_STEPS = 300
DEFAULT_FINAL_STEPS = 1500


def parse_args(input_args=None):
    parser = make_parser("Train ProGAN (progressive growing of GANs) with hfgen.")
    add_data_arguments(parser, BUILTIN_DIGITS)
    parser.add_argument(
        "--start_resolution",
        type=int,
        default=None,
        help="Resolution of the first stage, a power of two from 4 to --resolution. Default: 4 for a new model, "
        "--resolution (no growing) for --pretrained_model_name_or_path.",
    )
    parser.add_argument(
        "--stable_steps",
        type=int,
        default=DEFAULT_STABLE_STEPS,
        help="Steps at each resolution once it is faded in (the final resolution: until the run ends).",
    )
    parser.add_argument(
        "--fade_steps",
        type=int,
        default=DEFAULT_FADE_STEPS,
        help="Steps over which each new resolution fades in (alpha rising linearly from 0 to 1; 0: no fade).",
    )
    parser.add_argument(
        "--final_steps",
        type=int,
        default=DEFAULT_FINAL_STEPS,
        help="Steps at the final resolution once it is faded in: the run's length is the growing plus these, unless "
        "--max_train_steps or --num_train_epochs is given.",
    )
    parser.add_argument(
        "--loss",
        type=str,
        default="non-saturating",
        choices=["non-saturating", "wgan-gp"],
        help="non-saturating (logistic) loss with R1 on real images (--r1_gamma, every --r1_interval steps), or the "
        "paper's WGAN-GP with its drift term (--gp_weight, --drift_weight).",
    )
    parser.add_argument(
        "--r1_gamma", type=float, default=1.0, help="R1 weight gamma of the non-saturating loss (0: off)."
    )
    parser.add_argument("--gp_weight", type=float, default=10.0, help="lambda of WGAN-GP's gradient penalty.")
    parser.add_argument(
        "--drift_weight", type=float, default=0.001, help="Weight of the drift term E[D(real)^2] (the paper's 0.001)."
    )
    add_gan_arguments(parser, learning_rate=1e-3, betas=(0.0, 0.99))
    add_run_arguments(parser, family="progan")
    parser.set_defaults(resolution=16, checkpointing_steps=300, validation_steps=300)
    args = parser.parse_args(input_args)
    check_run_arguments(parser, args)
    check_gan_arguments(parser, args)
    check_flag_ranges(
        parser,
        args,
        {
            "start_resolution": (4, None, "closed"),
            "stable_steps": (1, None, "closed"),
            "fade_steps": (0, None, "closed"),
            "final_steps": (1, None, "closed"),
            "gp_weight": (0, None, "closed"),
            "r1_gamma": (0, None, "closed"),
            "drift_weight": (0, None, "closed"),
        },
    )
    if not is_power_of_two(args.resolution) or args.resolution < 4:
        parser.error(f"--resolution must be a power of two (8, 16, 32, ...) for ProGAN, got {args.resolution}")
    if args.start_resolution is not None:
        if not is_power_of_two(args.start_resolution):
            parser.error(f"--start_resolution must be a power of two (4, 8, 16, ...), got {args.start_resolution}")
        if args.start_resolution > args.resolution:
            parser.error(
                f"--start_resolution {args.start_resolution} is above --resolution {args.resolution}: the networks "
                "grow from the start resolution up to the final one"
            )
    return args


def build_models(args, num_classes: int):
    if args.pretrained_model_name_or_path is not None:
        generator, discriminator = load_pretrained_pair(
            hfgen.ProGANGenerator, hfgen.ProGANDiscriminator, args.pretrained_model_name_or_path, logger
        )
    else:
        if args.model_config_name_or_path is not None:
            config = hfgen.ProGANConfig.from_pretrained(args.model_config_name_or_path)
        else:
            config = hfgen.ProGANConfig(
                resolution=args.resolution,
                num_channels=1 if args.color_mode == "L" else 3,
                num_classes=num_classes,
                **DEFAULT_ARCHITECTURE,
            )
        generator, discriminator = hfgen.ProGANGenerator(config), hfgen.ProGANDiscriminator(config)
    config = generator.config
    check_fits_data(args, config.num_channels, config.resolution, config.num_classes, num_classes)
    return generator, discriminator


def lora_merged_copy(generator_model):
    """A `ProGANGenerator` for pipelines: a LoRA-adapted generator merged into a copy (the training model keeps its
    adapter); any other generator as it is."""
    if hasattr(generator_model, "merge_and_unload"):
        return copy.deepcopy(generator_model).merge_and_unload()
    return generator_model


def main(args):
    # Each step uses only the layers of its stage: data-parallel training must not wait for the others' gradients.
    accelerator = make_accelerator(args, kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)

    # 1. data: every image is checked before training starts
    data = load_run_data(args, accelerator, logger)
    num_classes = 0 if args.unconditional else dataset_num_classes(data.dataset["train"])

    # 2. models, and the growing schedule: a pretrained model is fine-tuned fully grown unless told otherwise
    set_seed(args.seed)
    generator, discriminator = build_models(args, num_classes)
    if args.start_resolution is None:
        args.start_resolution = args.resolution if args.pretrained_model_name_or_path is not None else 4
    schedule = GrowingSchedule(args.start_resolution, args.resolution, args.stable_steps, args.fade_steps)
    if args.dry_run:
        print_dry_run(args, accelerator, model_config=generator.config.to_dict(), num_classes=num_classes)
        return None
    if args.lora_rank:
        from peft import LoraConfig, get_peft_model

        generator = get_peft_model(
            generator, LoraConfig(r=args.lora_rank, lora_alpha=args.lora_rank, target_modules=LORA_PROGAN_TARGETS)
        )
    to_training_memory_format(args, generator, discriminator)
    set_seed(args.seed, device_specific=True)
    use_ema = args.ema_decay > 0 and not args.lora_rank
    ema_generator = create_ema(generator) if use_ema else None
    train_dataloader = make_train_dataloader(data.train, args, collate_images)

    # 3. optimisation: one Adam per network over all its layers, from the start. The layers of later stages get no
    # gradient (None) until their stage: Adam leaves them, and their moments, untouched until then.
    betas = (args.adam_beta1, args.adam_beta2)
    trainable = [parameter for parameter in generator.parameters() if parameter.requires_grad]
    g_optimizer = torch.optim.Adam(trainable, lr=args.generator_learning_rate, betas=betas, fused=True)
    d_optimizer = torch.optim.Adam(
        discriminator.parameters(), lr=args.discriminator_learning_rate, betas=betas, fused=True
    )
    batches_per_step = args.gradient_accumulation_steps
    batches_per_epoch = -(-len(train_dataloader) // accelerator.num_processes)
    resolve_max_train_steps(args, batches_per_epoch, batches_per_step, schedule.growth_steps + args.final_steps)
    if args.max_train_steps <= schedule.growth_steps:
        raise ValueError(
            f"--max_train_steps {args.max_train_steps} ends before the networks have grown from "
            f"{args.start_resolution} to {args.resolution} px (the last fade-in ends at step {schedule.growth_steps} "
            "with --stable_steps / --fade_steps as given): raise it, or shorten --stable_steps / --fade_steps"
        )
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
    start_trackers(accelerator, args, "train_progan")

    # 4. resume: networks, optimizers, schedules, EMA, augmentation state and RNG states; the stage follows the step
    global_step = resume_run(accelerator, args.output_dir, args.resume_from_checkpoint, logger)

    logger.info(
        f"{len(data.train)} training images, {num_classes or 'no'} classes, {args.max_train_steps} steps growing "
        f"{args.start_resolution} -> {args.resolution} px ({args.stable_steps} stable + {args.fade_steps} fade-in "
        f"steps per resolution), batch {args.train_batch_size} x {args.gradient_accumulation_steps} x "
        f"{accelerator.num_processes} processes"
    )
    progress = tqdm(
        range(args.max_train_steps), initial=global_step, desc="steps", disable=not accelerator.is_local_main_process
    )
    batches = endless_batches(accelerator, train_dataloader, global_step * batches_per_step)
    unwrapped_generator = accelerator.unwrap_model(generator)
    unwrapped_discriminator = accelerator.unwrap_model(discriminator)
    latent_dim = unwrapped_generator.config.latent_dim

    # 5. the loop: one critic step (WGAN-GP plus drift), then one generator step on the same fakes, both at the
    # stage (resolution, alpha) of the step
    d_main = Phase("D main", discriminator, d_optimizer)
    g_main = Phase("G main", generator, g_optimizer, held=unwrapped_discriminator)

    def next_real_batch(stage: dict):
        batch = next(batches)
        real = random_flip(batch["pixel_values"]) if args.random_flip else batch["pixel_values"]
        return real_images_at(real, **stage), batch["labels"] if num_classes else None

    def add_fakes(micro_batches, stage: dict) -> list:
        """`(real, labels, fake)` per micro-batch, the fakes drawn at the stage for the labels of the real images.
        Without gradient accumulation they carry the generator's graph and the generator step reuses them; with it
        they are drawn without, and the generator step draws its own."""
        keep_graph = len(micro_batches) == 1
        with_fakes = []
        for real, labels in micro_batches:
            z = torch.randn(real.shape[0], latent_dim, device=real.device)
            with contextlib.nullcontext() if keep_graph else torch.no_grad():
                fake = (generator if keep_graph else unwrapped_generator)(z, labels=labels, **stage).sample
            with_fakes.append((real, labels, fake))
        return with_fakes

    def d_main_loss(micro_batch, stage: dict, apply_r1: bool):
        """Real against generated images (no gradient to the generator), at the stage. Non-saturating: R1 on the real
        images when due, with respect to them before augmentation. WGAN-GP: the gradient penalty at points between
        them, and the drift term that keeps the critic's scores near 0."""
        real, labels, fake = micro_batch
        real = real.detach().requires_grad_(apply_r1)
        real_seen = discriminator_input(real, augment)
        fake_seen = discriminator_input(fake.detach(), augment)
        real_logits = discriminator(real_seen, labels=labels, **stage).logits
        fake_logits = discriminator(fake_seen, labels=labels, **stage).logits
        loss = discriminator_loss(real_logits, fake_logits, args.loss)
        logs = {
            "d_loss": loss.detach(),
            "d_real": real_logits.detach().mean(),
            "d_fake": fake_logits.detach().mean(),
            "real_sign": real_logits.detach().sign().mean(),
        }
        if args.loss == "wgan-gp":

            def critic(images):
                return discriminator(images, labels=labels, **stage).logits

            loss = loss + gradient_penalty(critic, real_seen, fake_seen, weight=args.gp_weight)
            loss = loss + args.drift_weight * drift_penalty(real_logits)
        if apply_r1:
            loss = loss + r1_penalty(real_logits, real) * (args.r1_gamma / 2) * args.r1_interval
        return loss, logs

    def g_main_loss(micro_batch, stage: dict):
        """Raise the critic's score, just updated, of the fakes its step saw."""
        real, labels, fake = micro_batch
        if not fake.requires_grad:  # drawn without the generator's graph (gradient accumulation): draw again
            z = torch.randn(real.shape[0], latent_dim, device=real.device)
            fake = generator(z, labels=labels, **stage).sample
        logits = unwrapped_discriminator(discriminator_input(fake, augment), labels=labels, **stage).logits
        loss = generator_loss(logits, args.loss)
        return loss, {"g_loss": loss.detach()}

    def guard(loss, phase_name: str):
        check_finite(loss, f"the {phase_name} loss", global_step, args.output_dir, args.loss_limit)

    generator.train()
    discriminator.train()
    while global_step < args.max_train_steps:
        resolution, alpha = schedule.at(global_step)
        stage = {"resolution": resolution, "alpha": alpha}
        real_batches = [next_real_batch(stage) for _ in range(args.gradient_accumulation_steps)]
        micro_batches = add_fakes(real_batches, stage)
        apply_r1 = args.loss == "non-saturating" and args.r1_gamma > 0 and global_step % args.r1_interval == 0
        d_loss_of = functools.partial(d_main_loss, stage=stage, apply_r1=apply_r1)
        logs = run_phase(d_main, accelerator, micro_batches, d_loss_of, args.max_grad_norm, guard)
        real_count = sum(real.shape[0] for real, _ in real_batches)
        adapt_augmentation(augment, accelerator, logs.pop("real_sign") * real_count, real_count)
        g_loss_of = functools.partial(g_main_loss, stage=stage)
        logs.update(run_phase(g_main, accelerator, micro_batches, g_loss_of, args.max_grad_norm, guard))
        g_scheduler.step()
        d_scheduler.step()
        if ema_generator is not None:
            update_ema(ema_generator, unwrapped_generator, args.ema_decay, global_step)

        global_step += 1
        progress.update(1)
        logs.update(resolution=resolution, alpha=alpha, lr_g=g_scheduler.get_last_lr()[0])
        if augment is not None:
            logs["augment_p"] = augment.probability
        progress.set_postfix(res=resolution, alpha=f"{alpha:.2f}", d_loss=f"{logs['d_loss']:.3f}")
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
                stage,
            )
            generator.train()
    progress.close()

    # 6. the end of the run: final metrics of the fully grown generator (all processes); then, on the main process,
    # the Hub-ready folder (weights, sample grid, record of the run, model card) and the upload
    final_generator = unwrapped_generator if ema_generator is None else ema_generator
    run_facts = check_replicas(accelerator, generator, global_step, logger)
    metrics = validate(final_generator, data, num_classes, args, accelerator, global_step)
    if accelerator.is_main_process:
        references = measure_references(data.evaluation, args)
        final_generator.eval()
        # A LoRA run saves only the adapter (PeftModel.save_pretrained); its samples come from a merged copy.
        pipeline = hfgen.ProGANPipeline(gan=lora_merged_copy(final_generator))
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
        write_model_card(
            args,
            "progan",
            record,
            GAN_CARD_METRIC_NAMES,
            tags=["gan", "progan", args.loss]
            + (["conditional-gan"] if num_classes else [])
            + (["lora"] if args.lora_rank else []),
            config=pipeline.gan.config,
            lora=bool(args.lora_rank),
            has_discriminator=keep_discriminator,
            sample_kwargs=sample_kwargs,
        )
        print_run_summary(args.output_dir, data.evaluation, metrics)
        if args.push_to_hub:
            push_folder(args, "train_progan.py", logger)
    end_run(accelerator)
    return metrics


def stage_sampler(generator_model, stage: dict, resolution: int):
    """`sample(batch_size, labels, generator)` for the metrics at a growing stage: the stage's images, enlarged
    (nearest neighbour) to the data's `resolution`, as a stage's images are compared with the real ones."""

    def sample(batch_size, labels, torch_generator):
        z = torch.randn(batch_size, generator_model.config.latent_dim, generator=torch_generator)
        images = generator_model(z.to(generator_model.device), labels=labels, **stage).sample
        return F.interpolate(images, size=resolution, mode="nearest")

    return sample


@torch.no_grad()
def validate(generator_model, data, num_classes: int, args, accelerator, step: int, stage: dict | None = None) -> dict:
    """Sample grid (main process) and metrics (all processes) of `generator_model` in eval mode, logged: at the growing
    `stage` the run is at (during training), or fully grown (`stage` None: the end of the run)."""
    was_training = generator_model.training
    generator_model.eval()
    pipeline = hfgen.ProGANPipeline(gan=lora_merged_copy(generator_model))
    if stage is None:
        sample, stage = gan_sampler(generator_model), {}
    else:
        sample = stage_sampler(generator_model, stage, args.resolution)
    metrics = validate_generator(pipeline, sample, data, args, accelerator, step, logger, num_classes, **stage)
    generator_model.train(was_training)
    return metrics


if __name__ == "__main__":
    run_script(main, parse_args())
