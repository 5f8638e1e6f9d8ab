#!/usr/bin/env python
"""Train StyleGAN 2 (or StyleGAN 1 with --style_block adain, StyleGAN 3 with --generator_architecture alias_free),
ending with a Hub-ready folder and measured metrics.

    accelerate launch training_scripts/gan/train_stylegan.py                      # conditional StyleGAN 2, digits
    accelerate launch training_scripts/gan/train_stylegan.py --style_block adain --generator_architecture plain \
        --discriminator_architecture plain --unconditional                        # StyleGAN 1 layers
    accelerate launch training_scripts/gan/train_stylegan.py --train_data_dir my_images/ --resolution 64 --augment ada
    accelerate launch training_scripts/gan/train_stylegan.py --generator_architecture alias_free \
        [--equivariance rotation]                                                 # StyleGAN3-T (-R), digits

The loop is StyleGAN 2's: a discriminator step (logistic loss, lazy R1 every --r1_interval steps) and a generator
step (non-saturating loss, style mixing with probability --style_mixing_prob, lazy path-length regularisation every
--pl_interval steps), separate Adam optimizers whose learning rate and betas are corrected for the lazy
regularisation, and an EMA of the generator. Up to 32 px the defaults leave path length and style mixing off, as
StyleGAN2-ADA does for small images (SMALL_IMAGE_RESOLUTION below says why). The folder loads with
`hfgen.StyleGANPipeline.from_pretrained(dir)`, `hfgen.StyleGANGenerator.from_pretrained(dir)` and
`transformers.AutoModel.from_pretrained(dir)`.

StyleGAN 3 (`--generator_architecture alias_free`) trains with StyleGAN 3's settings: the alias-free generator with a
2-layer mapping network, StyleGAN 2's discriminator, no path length and no style mixing at any resolution, and the
magnitude averages' decay NVIDIA derives from the batch size.
"""

import contextlib
import copy
import logging

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
from hfgen.losses import augmented_r1_penalty, discriminator_loss, generator_loss, path_length_penalty
from hfgen.models.stylegan import LORA_STYLE_TARGETS
from hfgen.pipelines.stylegan.evaluation import stylegan_sampler, without_peft_wrapper
from hfgen.training import save_checkpoint
from hfgen.training.adversarial import (
    GAN_CARD_METRIC_NAMES,
    Phase,
    adapt_augmentation,
    add_gan_arguments,
    check_fits_data,
    check_gan_arguments,
    discriminator_input,
    lazy_regularised_adam,
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

# A new model's architecture when no --model_config_name_or_path is given: small enough for the default run on the
# built-in digits to train in minutes on 2 CPU cores. The default resolution is 16: the digit scans are 8x8, so 16
# keeps all their detail at a quarter of the cost of 32.
# Default length: 1760 steps of batch 64 (80 passes over the digits), whatever the size of the data. On the digits,
# recall rises from 0.39 at 880 steps to 0.51 at 1760 with the paper's regularisers, and class accuracy with it.
DEFAULT_TRAIN_STEPS = 1760
# Up to this resolution the defaults are StyleGAN2-ADA's small-image ("cifar") setting: no path-length regularisation
# and no style mixing, which regularise the smooth latent-to-image map that large images need and, on 16 px digits,
# cost variety (recall 0.51 -> 0.62 without them at 1760 steps, FID 10.6 -> 6.0, same class accuracy). Above it,
# the paper's: path length 2, style mixing 0.9.
SMALL_IMAGE_RESOLUTION = 32
DEFAULT_ARCHITECTURE = dict(latent_dim=64, w_dim=64, mapping_layers=4, channel_base=512, channel_max=64)
# StyleGAN 3's new model: NVIDIA's 2-layer mapping network and w average decay; 6 synthesis layers (NVIDIA: 14) and a
# 6-pixel margin (NVIDIA: 10), because every layer runs its filtered leaky ReLU at twice its sampling rate on the image
# plus its margins: even so a 16 px step costs about 8 times the StyleGAN 2 default's on the CPU (G and D forward and
# backward, batch 32, 2 cores: 1.9 s against 0.25 s).
DEFAULT_ALIAS_FREE_ARCHITECTURE = dict(
    latent_dim=64,
    w_dim=64,
    mapping_layers=2,
    w_avg_beta=0.998,
    channel_base=512,
    channel_max=64,
    num_synthesis_layers=6,
    margin_size=6,
    use_noise=False,
)


def parse_args(input_args=None):
    parser = make_parser("Train StyleGAN 1 / 2 / 3 with hfgen.")
    add_data_arguments(parser, BUILTIN_DIGITS)
    parser.add_argument("--style_block", type=str, default="modulated", choices=["modulated", "adain"])
    parser.add_argument(
        "--generator_architecture",
        type=str,
        default="skip",
        choices=["skip", "plain", "alias_free"],
        help="skip: StyleGAN 2; plain: one RGB output (StyleGAN 1); alias_free: StyleGAN 3.",
    )
    parser.add_argument(
        "--equivariance",
        type=str,
        default="translation",
        choices=["translation", "rotation"],
        help="With alias_free: StyleGAN3-T (3x3 convolutions) or StyleGAN3-R (1x1 convolutions, radial filters).",
    )
    parser.add_argument("--discriminator_architecture", type=str, default="resnet", choices=["resnet", "plain"])
    parser.add_argument(
        "--r1_gamma",
        type=float,
        default=1.0,
        help="R1 weight gamma (0.01 to 10 depending on data). On the digits, 1 gives a lower FID and a "
        "higher recall than 0.1 at the same class accuracy; 4 raises recall further but costs "
        "class accuracy (benchmarks/README.md).",
    )
    parser.add_argument(
        "--pl_weight",
        type=float,
        default=None,
        help=f"Path-length regularisation weight (0: off). Default: 0 up to {SMALL_IMAGE_RESOLUTION} px, 2 above "
        "(StyleGAN 3: 0).",
    )
    parser.add_argument(
        "--pl_interval", type=int, default=4, help="Path-length regularisation every this many G steps."
    )
    parser.add_argument("--pl_batch_shrink", type=int, default=2, help="The path-length batch is this much smaller.")
    parser.add_argument(
        "--style_mixing_prob",
        type=float,
        default=None,
        help=f"Probability of style mixing regularisation. Default: 0 up to {SMALL_IMAGE_RESOLUTION} px, 0.9 above "
        "(StyleGAN 3: 0).",
    )
    add_gan_arguments(parser, learning_rate=2e-3, betas=(0.0, 0.99))
    parser.add_argument("--truncation_psi", type=float, default=1.0, help="Truncation of the saved sample grid.")
    add_run_arguments(parser, family="stylegan")
    parser.set_defaults(resolution=16, checkpointing_steps=440, validation_steps=440)
    args = parser.parse_args(input_args)
    # StyleGAN 3 trains without either regulariser, as NVIDIA's stylegan3 configs do
    small_images = args.resolution <= SMALL_IMAGE_RESOLUTION or args.generator_architecture == "alias_free"
    if args.pl_weight is None:
        args.pl_weight = 0.0 if small_images else 2.0
    if args.style_mixing_prob is None:
        args.style_mixing_prob = 0.0 if small_images else 0.9
    check_run_arguments(parser, args)
    check_gan_arguments(parser, args)
    check_flag_ranges(
        parser,
        args,
        {
            "pl_interval": (1, None, "closed"),
            "pl_batch_shrink": (1, None, "closed"),
            "pl_weight": (0, None, "closed"),
            "style_mixing_prob": (0, 1, "closed"),
            "truncation_psi": (0, None, "closed"),
        },
    )
    building_from_flags = args.pretrained_model_name_or_path is None and args.model_config_name_or_path is None
    if building_from_flags and args.generator_architecture == "alias_free" and args.style_block != "modulated":
        parser.error("--generator_architecture alias_free (StyleGAN 3) has modulated layers: drop --style_block adain")
    if building_from_flags and not is_power_of_two(args.resolution):
        parser.error(f"--resolution must be a power of two (8, 16, 32, ...) for StyleGAN, got {args.resolution}")
    return args


def build_models(args, num_classes: int, num_processes: int):
    if args.pretrained_model_name_or_path is not None:
        generator, discriminator = load_pretrained_pair(
            hfgen.StyleGANGenerator, hfgen.StyleGANDiscriminator, args.pretrained_model_name_or_path, logger
        )
    else:
        if args.model_config_name_or_path is not None:
            config = hfgen.StyleGANConfig.from_pretrained(args.model_config_name_or_path)
        else:
            architecture = DEFAULT_ARCHITECTURE
            if args.generator_architecture == "alias_free":
                # the decay of the magnitude averages NVIDIA's StyleGAN 3 derives from the (total) batch size
                batch_size = args.train_batch_size * args.gradient_accumulation_steps * num_processes
                architecture = dict(
                    DEFAULT_ALIAS_FREE_ARCHITECTURE,
                    equivariance=args.equivariance,
                    magnitude_ema_beta=0.5 ** (batch_size / 20_000),
                )
            config = hfgen.StyleGANConfig(
                resolution=args.resolution,
                num_channels=1 if args.color_mode == "L" else 3,
                num_classes=num_classes,
                style_block=args.style_block,
                generator_architecture=args.generator_architecture,
                discriminator_architecture=args.discriminator_architecture,
                **architecture,
            )
        generator, discriminator = hfgen.StyleGANGenerator(config), hfgen.StyleGANDiscriminator(config)
    config = generator.config
    check_fits_data(args, config.num_channels, config.resolution, config.num_classes, num_classes)
    return generator, discriminator


def main(args):
    accelerator = make_accelerator(args)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)

    # 1. data: every image is checked before training starts
    data = load_run_data(args, accelerator, logger)
    num_classes = 0 if args.unconditional else dataset_num_classes(data.dataset["train"])

    # 2. models
    set_seed(args.seed)
    generator, discriminator = build_models(args, num_classes, accelerator.num_processes)
    if args.dry_run:
        print_dry_run(args, accelerator, model_config=generator.config.to_dict(), num_classes=num_classes)
        return None
    if args.lora_rank:
        from peft import LoraConfig, get_peft_model

        generator = get_peft_model(
            generator, LoraConfig(r=args.lora_rank, lora_alpha=args.lora_rank, target_modules=LORA_STYLE_TARGETS)
        )
    to_training_memory_format(args, generator, discriminator)
    set_seed(args.seed, device_specific=True)
    use_ema = args.ema_decay > 0 and not args.lora_rank
    ema_generator = create_ema(generator) if use_ema else None
    train_dataloader = make_train_dataloader(data.train, args, collate_images)

    # 3. optimisation: one optimizer per network, corrected for its lazy regulariser (None: that regulariser is off)
    betas = (args.adam_beta1, args.adam_beta2)
    g_interval = args.pl_interval if args.pl_weight > 0 else None
    d_interval = args.r1_interval if args.r1_gamma > 0 else None
    trainable = [parameter for parameter in generator.parameters() if parameter.requires_grad]
    g_optimizer = lazy_regularised_adam(trainable, args.generator_learning_rate, betas, g_interval)
    d_optimizer = lazy_regularised_adam(
        discriminator.parameters(), args.discriminator_learning_rate, betas, d_interval
    )
    batches_per_step = args.gradient_accumulation_steps
    batches_per_epoch = -(-len(train_dataloader) // accelerator.num_processes)
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
    # The running mean of path lengths is training state too: a tensor inside a module, so it is checkpointed.
    path_length_state = torch.nn.Module()
    path_length_state.register_buffer("mean", torch.zeros((), device=accelerator.device))
    accelerator.register_for_checkpointing(path_length_state)
    start_trackers(accelerator, args, "train_stylegan")

    # 4. resume: networks, optimizers, schedules, EMA, augmentation and path-length state, RNG states
    global_step = resume_run(accelerator, args.output_dir, args.resume_from_checkpoint, logger)

    logger.info(
        f"{len(data.train)} training images, {num_classes or 'no'} classes, {args.max_train_steps} steps, "
        f"batch {args.train_batch_size} x {args.gradient_accumulation_steps} x {accelerator.num_processes} "
        "processes"
    )
    progress = tqdm(
        range(args.max_train_steps), initial=global_step, desc="steps", disable=not accelerator.is_local_main_process
    )
    batches = endless_batches(accelerator, train_dataloader, global_step * batches_per_step)
    unwrapped_generator = accelerator.unwrap_model(generator)
    unwrapped_discriminator = accelerator.unwrap_model(discriminator)
    config = unwrapped_generator.config

    # 5. the loop, in StyleGAN 2's four phases. Each lazy regulariser is its own optimizer step every N iterations,
    # its loss scaled by N (the optimizers above are corrected for the extra steps); a disabled regulariser (weight 0)
    # never runs.
    d_main = Phase("D main", discriminator, d_optimizer)
    d_reg = Phase("D R1", discriminator, d_optimizer, interval=d_interval)
    g_main = Phase("G main", generator, g_optimizer, held=unwrapped_discriminator)
    g_reg = Phase("G path length", generator, g_optimizer, interval=g_interval, held=unwrapped_discriminator)

    def next_real_batch():
        batch = next(batches)
        real = random_flip(batch["pixel_values"]) if args.random_flip else batch["pixel_values"]
        return real, batch["labels"] if num_classes else None

    def generate(model, z, labels):
        """Images and their ws from `model` (the DDP replica or the plain module), with style mixing regularisation:
        with probability style_mixing_prob, a second z takes over from a random layer on."""
        mixing = {}
        if torch.rand(()) < args.style_mixing_prob:
            mixing = {
                "crossover_layer": int(torch.randint(1, config.num_ws, ())),
                "mixing_latents": torch.randn_like(z),
            }
        output = model(z, labels=labels, **mixing)
        return output.sample, output.ws

    def add_fakes(micro_batches) -> list:
        """`(real, labels, fake)` per micro-batch, the fakes drawn for the labels of the real images. Without gradient
        accumulation they carry the generator's graph and the generator step reuses them (one generator forward per
        iteration); with it, holding every micro-batch's graph at once would defeat the memory accumulation saves,
        so they are drawn without and the generator step draws its own."""
        keep_graph = len(micro_batches) == 1
        with_fakes = []
        for real, labels in micro_batches:
            z = torch.randn(real.shape[0], config.latent_dim, device=real.device)
            with contextlib.nullcontext() if keep_graph else torch.no_grad():
                fake, _ = generate(generator if keep_graph else unwrapped_generator, z, labels)
            with_fakes.append((real, labels, fake))
        return with_fakes

    def d_main_loss(micro_batch):
        """Logistic loss on real images against generated ones, which get no gradient here."""
        real, labels, fake = micro_batch
        fake = fake.detach()
        real_logits = discriminator(discriminator_input(real, augment), labels=labels).logits
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
        """R1 on the same real images, with respect to them before augmentation."""
        real, labels, _ = micro_batch

        def discriminate(images):
            return discriminator(images, labels=labels).logits

        r1, logits = augmented_r1_penalty(discriminate, real, augment)
        # The zero term puts every parameter in the graph, as data-parallel training needs (R1 gives the last
        # layer's bias no gradient).
        return r1 * (args.r1_gamma / 2) * d_interval + 0 * logits.sum(), {"r1_penalty": r1.detach()}

    def g_main_loss(micro_batch):
        """Non-saturating loss through the discriminator, just updated, on the fakes its main step saw."""
        real, labels, fake = micro_batch
        if not fake.requires_grad:  # drawn without the generator's graph (gradient accumulation): draw again
            z = torch.randn(real.shape[0], config.latent_dim, device=real.device)
            fake, _ = generate(generator, z, labels)
        logits = unwrapped_discriminator(discriminator_input(fake, augment), labels=labels).logits
        loss = generator_loss(logits, "non-saturating")
        return loss, {"g_loss": loss.detach()}

    def g_reg_loss(micro_batch):
        """Path length on a --pl_batch_shrink times smaller batch; updates the running mean of path lengths."""
        real, labels, _ = micro_batch
        pl_batch = max(1, real.shape[0] // args.pl_batch_shrink)
        z = torch.randn(pl_batch, config.latent_dim, device=accelerator.device)
        images, ws = generate(generator, z, None if labels is None else labels[:pl_batch])
        penalty, new_mean = path_length_penalty(images, ws, path_length_state.mean)
        path_length_state.mean.copy_(accelerator.reduce(new_mean, reduction="mean"))
        return penalty * args.pl_weight * g_interval + 0 * images.sum(), {"path_length_penalty": penalty.detach()}

    def guard(loss, phase_name: str):
        check_finite(loss, f"the {phase_name} loss", global_step, args.output_dir, args.loss_limit)

    generator.train()
    discriminator.train()
    while global_step < args.max_train_steps:
        micro_batches = add_fakes([next_real_batch() for _ in range(args.gradient_accumulation_steps)])
        logs = run_phase(d_main, accelerator, micro_batches, d_main_loss, args.max_grad_norm, guard)
        real_count = sum(real.shape[0] for real, _, _ in micro_batches)
        adapt_augmentation(augment, accelerator, logs.pop("real_sign") * real_count, real_count)
        if d_reg.is_due(global_step):
            logs.update(run_phase(d_reg, accelerator, micro_batches, d_reg_loss, args.max_grad_norm))
        logs.update(run_phase(g_main, accelerator, micro_batches, g_main_loss, args.max_grad_norm, guard))
        if g_reg.is_due(global_step):
            logs.update(run_phase(g_reg, accelerator, micro_batches, g_reg_loss, args.max_grad_norm))
        g_scheduler.step()
        d_scheduler.step()
        if ema_generator is not None:
            update_ema(ema_generator, unwrapped_generator, args.ema_decay, global_step)

        global_step += 1
        progress.update(1)
        logs["path_length_mean"] = path_length_state.mean.item()
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
        # A LoRA run saves only the adapter (PeftModel.save_pretrained); a copy with the adapter attached samples.
        sampling_model = copy.deepcopy(without_peft_wrapper(final_generator)) if args.lora_rank else final_generator
        pipeline = hfgen.StyleGANPipeline(stylegan=sampling_model)
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
        sample_kwargs = {"truncation_psi": args.truncation_psi, "noise_mode": "const"}
        if num_classes:
            sample_kwargs["class_labels"] = [i % num_classes for i in range(8 * num_classes)]
        seeded = torch.Generator(device="cpu").manual_seed(args.seed)
        samples = pipeline(batch_size=8 * (num_classes or 8), generator=seeded, **sample_kwargs).images
        save_card_grid(samples, args.output_dir, columns=num_classes or 8)
        record = write_run_record(
            args, metrics, references, run_facts, run_protocol(data.evaluation, args.num_eval_samples)
        )
        write_model_card(
            args,
            "stylegan",
            record,
            GAN_CARD_METRIC_NAMES,
            tags=["stylegan", stylegan_generation(config)]
            + (["conditional-gan"] if num_classes else [])
            + (["lora"] if args.lora_rank else []),
            config=config,
            lora=bool(args.lora_rank),
            has_discriminator=keep_discriminator,
            sample_kwargs=sample_kwargs,
        )
        print_run_summary(args.output_dir, data.evaluation, metrics)
        if args.push_to_hub:
            push_folder(args, "train_stylegan.py", logger)
    end_run(accelerator)
    return metrics


def stylegan_generation(config) -> str:
    if config.generator_architecture == "alias_free":
        return "stylegan3"
    return "stylegan2" if config.style_block == "modulated" else "stylegan1"


@torch.no_grad()
def validate(generator_model, data, num_classes: int, args, accelerator, step: int) -> dict:
    """Sample grid (main process) and metrics (all processes) of `generator_model`, in eval mode; logged."""
    was_training = generator_model.training
    generator_model.eval()
    pipeline = hfgen.StyleGANPipeline(stylegan=without_peft_wrapper(generator_model))
    sample = stylegan_sampler(generator_model)
    metrics = validate_generator(
        pipeline, sample, data, args, accelerator, step, logger, num_classes, noise_mode="const"
    )
    generator_model.train(was_training)
    return metrics


if __name__ == "__main__":
    run_script(main, parse_args())
