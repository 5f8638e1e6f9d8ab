#!/usr/bin/env python
"""Train hfgen's VAE (or beta-VAE) on images, ending with a Hub-ready folder and measured metrics.

    accelerate launch training_scripts/vae/train_vae.py                   # built-in digits, ~3 minutes on 2 CPU cores
    accelerate launch training_scripts/vae/train_vae.py --train_data_dir my_images/ --resolution 64 --color_mode RGB

The output folder loads with `hfgen.VAEPipeline.from_pretrained(dir)`, `hfgen.VAEModel.from_pretrained(dir)` and
`transformers.AutoModel.from_pretrained(dir)` (after `import hfgen`), and holds the model card (README.md) with the
metrics measured at the end of training, `samples.png`, `metrics.json` and `training_args.json`.
"""

import logging
import math
import os

import torch
from accelerate.logging import get_logger
from accelerate.utils import set_seed
from tqdm.auto import tqdm

import hfgen
from hfgen.data import BUILTIN_DIGITS, collate_images
from hfgen.pipelines.vae.evaluation import CARD_METRIC_NAMES, evaluate_vae
from hfgen.training import save_checkpoint
from hfgen.training.arguments import (
    add_data_arguments,
    add_run_arguments,
    check_run_arguments,
    print_dry_run,
    resolve_max_train_steps,
)
from hfgen.training.cli import check_flag_ranges, make_parser, run_script
from hfgen.training.evaluation import evaluation_batches, load_run_data, measure_references, run_protocol
from hfgen.training.hub import print_run_summary, push_folder, save_card_grid, write_model_card, write_run_record
from hfgen.training.runs import (
    check_replicas,
    end_run,
    make_accelerator,
    make_lr_schedulers,
    make_train_dataloader,
    random_flip,
    resume_run,
    save_grid,
    start_trackers,
    to_training_memory_format,
)

logger = get_logger(__name__)

# Default length: 440 steps of batch 64 (20 passes over the digits), whatever the size of the data.
DEFAULT_TRAIN_STEPS = 440

# The architecture of a new model when no --model_config_name_or_path is given: sized so that the default run on the
# built-in digits trains in about three minutes on 2 CPU cores. The latent is an eighth of the image's side, so it
# grows with the resolution; 2 latent channels per image channel (2x4x4 for greyscale 32 px) keep the aggregate
# posterior close enough to the N(0, I) prior that prior samples look like the data, while colour gets room of its own
# (a 2x4x4 latent turns RGB photos into colour blobs). A KL weight of 2 (a beta-VAE) pulls the posteriors closer to
# the prior, so fewer prior samples fall between digits: on the digits 72% of samples are read confidently by the
# digits classifier against 65% with 1, and FID 62 against 82, for 2 dB of reconstruction PSNR
# (benchmarks/bench_vae.py).
DEFAULT_ARCHITECTURE = dict(block_out_channels=[16, 32, 64, 64], norm_num_groups=8, kl_weight=2.0)
LATENT_CHANNELS_PER_IMAGE_CHANNEL = 2


def parse_args(input_args=None):
    parser = make_parser("Train an hfgen VAE.")
    add_data_arguments(parser, BUILTIN_DIGITS)
    # model
    parser.add_argument(
        "--pretrained_model_name_or_path",
        type=str,
        default=None,
        help="Start from a trained VAE (folder or Hub id) instead of random weights.",
    )
    parser.add_argument(
        "--model_config_name_or_path",
        type=str,
        default=None,
        help="A VAEConfig (folder or config.json) for a new model; by default one is built for the data.",
    )
    parser.add_argument(
        "--kl_weight",
        type=float,
        default=None,
        help="Override the config's beta on the KL term (1.0 = VAE, >1 = beta-VAE).",
    )
    parser.add_argument("--gradient_checkpointing", action="store_true")
    # optimisation
    parser.add_argument("--learning_rate", type=float, default=3e-3)
    parser.add_argument("--adam_beta1", type=float, default=0.9)
    parser.add_argument("--adam_beta2", type=float, default=0.999)
    parser.add_argument("--adam_weight_decay", type=float, default=0.0)
    # seed, schedule, checkpoints, validation, logging, Hub
    add_run_arguments(parser, family="vae")
    parser.set_defaults(
        lr_scheduler="cosine", lr_warmup_steps=20, max_grad_norm=1.0, checkpointing_steps=200, validation_steps=200
    )
    args = parser.parse_args(input_args)
    check_run_arguments(parser, args)
    check_flag_ranges(parser, args, {"kl_weight": (0, None, "closed")})
    building_from_flags = args.pretrained_model_name_or_path is None and args.model_config_name_or_path is None
    downsampling = 2 ** (len(DEFAULT_ARCHITECTURE["block_out_channels"]) - 1)
    if building_from_flags and args.resolution % downsampling:
        parser.error(
            f"--resolution must be a multiple of {downsampling} for the default VAE architecture, got "
            f"{args.resolution}"
        )
    return args


def build_model(args) -> hfgen.VAEModel:
    channels = 1 if args.color_mode == "L" else 3
    if args.pretrained_model_name_or_path is not None:
        model = hfgen.VAEModel.from_pretrained(args.pretrained_model_name_or_path)
    else:
        if args.model_config_name_or_path is not None:
            config = hfgen.VAEConfig.from_pretrained(args.model_config_name_or_path)
        else:
            config = hfgen.VAEConfig(
                in_channels=channels,
                sample_size=args.resolution,
                latent_channels=LATENT_CHANNELS_PER_IMAGE_CHANNEL * channels,
                **DEFAULT_ARCHITECTURE,
            )
        model = hfgen.VAEModel(config)
    if model.config.in_channels != channels:
        raise ValueError(
            f"the model takes {model.config.in_channels}-channel images but --color_mode {args.color_mode} gives "
            f"{channels}"
        )
    if model.config.sample_size != args.resolution:
        raise ValueError(
            f"the model makes {model.config.sample_size}px images but --resolution is {args.resolution}: pass "
            f"--resolution {model.config.sample_size}"
        )
    if args.kl_weight is not None:
        model.config.kl_weight = args.kl_weight
    return model


@torch.no_grad()
def log_validation(model, test_images, args, accelerator, step):
    """Save a grid of prior samples and of test images over their reconstructions; send both to the trackers."""
    pipeline = hfgen.VAEPipeline(vae=accelerator.unwrap_model(model))
    pipeline.set_progress_bar_config(disable=True)
    generator = torch.Generator(device="cpu").manual_seed(args.seed)
    samples = pipeline(batch_size=args.num_validation_images, generator=generator).images
    reconstructions = pipeline.reconstruct(test_images * 0.5 + 0.5).images  # pipelines take images in [0, 1]
    originals = pipeline.image_processor.postprocess(test_images, output_type="pil")
    folder = os.path.join(args.output_dir, "validation")
    sample_grid = save_grid(samples, folder, "samples", accelerator, step)
    save_grid(originals + reconstructions, folder, "reconstructions", accelerator, step, columns=len(originals))
    return sample_grid


def main(args):
    accelerator = make_accelerator(args, args.gradient_accumulation_steps)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)

    # 1. data: every image is decoded before anything else, so a broken file fails first (--dry_run included)
    data = load_run_data(args, accelerator, logger)

    # 2. model: built with the same seed everywhere, then each process gets its own stream of noise
    set_seed(args.seed)
    model = build_model(args)
    if args.dry_run:
        data = {split: len(images) for split, images in data.dataset.items()}
        print_dry_run(args, accelerator, model_config=model.config.to_dict(), data=data)
        return None
    to_training_memory_format(args, model)
    set_seed(args.seed, device_specific=True)
    if args.gradient_checkpointing:
        model.activation_checkpointing_enable()
    train_dataloader = make_train_dataloader(data.train, args, collate_images)

    # 3. optimisation (fused: one kernel for all the parameters instead of a loop over them)
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        weight_decay=args.adam_weight_decay,
        fused=True,
    )
    updates_per_epoch = math.ceil(len(train_dataloader) / accelerator.num_processes / args.gradient_accumulation_steps)
    resolve_max_train_steps(args, updates_per_epoch, 1, DEFAULT_TRAIN_STEPS)
    num_epochs = math.ceil(args.max_train_steps / updates_per_epoch)
    (lr_scheduler,) = make_lr_schedulers(args, accelerator, optimizer)
    model, optimizer, train_dataloader, lr_scheduler = accelerator.prepare(
        model, optimizer, train_dataloader, lr_scheduler
    )

    start_trackers(accelerator, args, "train_vae")

    # 4. resume
    global_step = resume_run(accelerator, args.output_dir, args.resume_from_checkpoint, logger)
    first_epoch = global_step // updates_per_epoch
    batches_to_skip = (global_step % updates_per_epoch) * args.gradient_accumulation_steps

    total_batch = args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    logger.info(
        f"{len(data.train)} training images, {num_epochs} epochs, {args.max_train_steps} steps, "
        f"batch {total_batch} ({accelerator.num_processes} processes)"
    )
    progress = tqdm(
        range(args.max_train_steps), initial=global_step, desc="steps", disable=not accelerator.is_local_main_process
    )
    fixed_test_images = next(evaluation_batches(data.eval, min(8, len(data.eval))))["pixel_values"]

    # 5. the loop
    for epoch in range(first_epoch, num_epochs):
        model.train()
        train_dataloader.set_epoch(epoch)
        batches = train_dataloader
        if epoch == first_epoch and batches_to_skip:
            batches = accelerator.skip_first_batches(train_dataloader, batches_to_skip)
        for batch in batches:
            with accelerator.accumulate(model):
                pixel_values = batch["pixel_values"]
                if args.random_flip:
                    pixel_values = random_flip(pixel_values)
                output = model(pixel_values, sample_posterior=True)
                if not torch.isfinite(output.loss):
                    raise FloatingPointError(
                        f"loss became {output.loss.item()} at step {global_step}: lower --learning_rate or "
                        f"--kl_weight; the last complete checkpoint in {args.output_dir} is kept"
                    )
                accelerator.backward(output.loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()

            if not accelerator.sync_gradients:
                continue
            global_step += 1
            progress.update(1)
            logs = {
                "loss": output.loss.item(),
                "reconstruction": output.reconstruction_loss.item(),
                "kl": output.kl_loss.item(),
                "lr": lr_scheduler.get_last_lr()[0],
            }
            progress.set_postfix(loss=f"{logs['loss']:.2f}", kl=f"{logs['kl']:.2f}")
            accelerator.log(logs, step=global_step)

            if global_step % args.checkpointing_steps == 0:
                save_checkpoint(accelerator, args.output_dir, global_step, args.checkpoints_total_limit)
            if global_step % args.validation_steps == 0 and accelerator.is_main_process:
                log_validation(model, fixed_test_images.to(accelerator.device), args, accelerator, global_step)
                model.train()
            if global_step >= args.max_train_steps:
                break
    progress.close()

    # 6. the end of the run: final metrics (all processes); then, on the main process, the Hub-ready folder (weights,
    # sample grid, record of the run, model card) and the upload
    run_facts = check_replicas(accelerator, model, global_step, logger)
    metrics = evaluate_vae(accelerator.unwrap_model(model), data, args, accelerator)
    if accelerator.is_main_process:
        references = measure_references(data.evaluation, args)
        vae = accelerator.unwrap_model(model)
        pipeline = hfgen.VAEPipeline(vae=vae)
        pipeline.set_progress_bar_config(disable=True)
        pipeline.save_pretrained(args.output_dir)
        vae.save_pretrained(args.output_dir)  # config.json + model.safetensors, for VAEModel / AutoModel
        save_card_grid(sample_grid_images(pipeline, fixed_test_images, args.seed), args.output_dir, columns=8)
        record = write_run_record(
            args, metrics, references, run_facts, run_protocol(data.evaluation, args.num_eval_samples)
        )
        tags = ["vae", "beta-vae"] if vae.config.kl_weight != 1 else ["vae"]
        write_model_card(args, "vae", record, CARD_METRIC_NAMES, tags=tags)
        print_run_summary(args.output_dir, data.evaluation, metrics)
        if args.push_to_hub:
            push_folder(args, "train_vae.py", logger)
    end_run(accelerator)
    return metrics


def sample_grid_images(pipeline, evaluation_images, seed: int) -> list:
    """The 64 images of `samples.png`, 8 to a row: six rows of prior samples, then up to eight evaluation images
    over their reconstructions."""
    samples = pipeline(batch_size=48, generator=torch.Generator(device="cpu").manual_seed(seed)).images
    originals = evaluation_images[:8].to(pipeline.vae.device)
    reconstructions = pipeline.reconstruct(originals * 0.5 + 0.5).images  # pipelines take images in [0, 1]
    originals = pipeline.image_processor.postprocess(originals, output_type="pil")
    blank = [samples[0].copy().point(lambda _: 0)] * (8 - len(originals))  # a short evaluation split
    return samples + originals + blank + reconstructions + blank


if __name__ == "__main__":
    run_script(main, parse_args())
