"""What every training script does around its loop: common flags, grids, a guard against diverging losses, replica
checks and pushing the finished folder to the Hub."""

import argparse
import json
import math
import os
import pickle

import numpy as np
import torch
from diffusers.utils import make_image_grid
from PIL import Image
from safetensors import SafetensorError

from ..data.images import MAX_RESOLUTION, MIN_RESOLUTION
from .cli import check_flag_ranges
from .evaluation import add_evaluation_arguments

LR_SCHEDULERS = ["linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup"]


def add_data_arguments(parser: argparse.ArgumentParser, builtin: str) -> None:
    parser.add_argument(
        "--dataset_name",
        type=str,
        default=None,
        help=f"A `datasets` name or a local folder; hfgen/digits (real handwritten digits) and "
        f"hfgen/faces (100 real faces) are built in. Without it or --train_data_dir: {builtin}.",
    )
    parser.set_defaults(builtin_dataset=builtin)
    parser.add_argument("--dataset_config_name", type=str, default=None)
    parser.add_argument(
        "--train_data_dir",
        type=str,
        default=None,
        help="A local folder of images in imagefolder layout (class subfolders give labels).",
    )
    parser.add_argument("--cache_dir", type=str, default=None)
    parser.add_argument(
        "--resolution", type=int, default=32, help="Images are resized (bicubic) and center-cropped to this."
    )
    parser.add_argument(
        "--color_mode",
        type=str,
        default=None,
        choices=["L", "RGB"],
        help="Greyscale or RGB; by default that of the data (L when every image is greyscale).",
    )
    parser.add_argument(
        "--class_filter",
        type=int,
        nargs="+",
        default=None,
        help="Keep only images with these labels (e.g. one digit class for a small fine-tuning set); "
        "the label set, and so a conditional model's classes, stay as they are.",
    )
    parser.add_argument("--random_flip", action="store_true", help="Flip training images horizontally at random.")
    parser.add_argument("--dataloader_num_workers", type=int, default=0)
    add_evaluation_arguments(parser)


def add_run_arguments(parser: argparse.ArgumentParser, family: str) -> None:
    """Seed, schedule length, checkpoints, validation, logging, precision and Hub flags, as in train_vae.py; the
    output folder defaults to `<family>-<data>` (e.g. `vae-digits`, `gan-my_faces`)."""
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train_batch_size", type=int, default=64, help="Per process.")
    parser.add_argument(
        "--num_train_epochs",
        type=int,
        default=None,
        help="Train for this many passes over the training images instead of the script's default "
        "number of steps (which holds on a folder of 80 images as on 80,000).",
    )
    parser.add_argument(
        "--max_train_steps",
        type=int,
        default=None,
        help="Optimizer steps to train for; overrides --num_train_epochs. Default: the script's "
        "own (see its DEFAULT_TRAIN_STEPS).",
    )
    parser.add_argument("--gradient_accumulation_steps", type=int, default=1)
    parser.add_argument("--lr_scheduler", type=str, default="constant", choices=LR_SCHEDULERS)
    parser.add_argument("--lr_warmup_steps", type=int, default=0)
    parser.add_argument("--max_grad_norm", type=float, default=None, help="Clip gradient norms (off by default).")
    parser.add_argument(
        "--mixed_precision",
        type=str,
        default=None,
        choices=["no", "fp16", "bf16"],
        help="Overrides the accelerate config; keep fp32 on CPUs.",
    )
    parser.add_argument(
        "--output_dir",
        type=str,
        default=None,
        help=f"Where the run writes; by default {family}-<data name>, e.g. {family}-digits.",
    )
    parser.set_defaults(output_dir_prefix=family)
    parser.add_argument("--checkpointing_steps", type=int, default=500)
    parser.add_argument("--checkpoints_total_limit", type=int, default=2)
    parser.add_argument(
        "--resume_from_checkpoint",
        type=str,
        default=None,
        help='"latest" or a checkpoint folder; a new run starts when there is none yet.',
    )
    parser.add_argument(
        "--validation_steps",
        type=int,
        default=500,
        help="Save sample grids and measure the metrics every this many steps.",
    )
    parser.add_argument("--num_validation_images", type=int, default=16)
    parser.add_argument(
        "--num_eval_samples",
        type=int,
        default=360,
        help="Generated images for FID / KID / IS / precision / recall (against the held-out split).",
    )
    parser.add_argument("--report_to", type=str, default="tensorboard", help='"tensorboard" or "none".')
    parser.add_argument("--logging_dir", type=str, default="logs")
    parser.add_argument("--push_to_hub", action="store_true")
    parser.add_argument("--hub_model_id", type=str, default=None)
    parser.add_argument(
        "--hub_token",
        type=str,
        default=None,
        help="Prefer `hf auth login` or the HF_TOKEN environment variable, which need no flag. A token "
        "given here is used for the upload only and is never written to any file.",
    )
    parser.add_argument(
        "--dry_run", action="store_true", help="Print the resolved arguments and model config, then exit."
    )


# The ranges of the flags every script has (see `check_flag_ranges` for the notation).
RUN_FLAG_RANGES = {
    "resolution": (MIN_RESOLUTION, MAX_RESOLUTION, "closed"),
    "dataloader_num_workers": (0, None, "closed"),
    "train_batch_size": (1, None, "closed"),
    "gradient_accumulation_steps": (1, None, "closed"),
    "checkpointing_steps": (1, None, "closed"),
    "validation_steps": (1, None, "closed"),
    "num_train_epochs": (1, None, "closed"),
    "num_validation_images": (1, None, "closed"),
    "num_eval_samples": (4, None, "closed"),  # precision / recall need more than k = 3 samples
    "max_train_steps": (1, None, "closed"),
    "checkpoints_total_limit": (1, None, "closed"),
    "lr_warmup_steps": (0, None, "closed"),
    "max_grad_norm": (0, None, "open"),
    "learning_rate": (0, None, "open"),
    "adam_beta1": (0, 1, "high_open"),
    "adam_beta2": (0, 1, "high_open"),
    "adam_weight_decay": (0, None, "closed"),
}


def check_run_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject impossible values with the flag's name; with neither --dataset_name nor --train_data_dir, train on the
    script's built-in dataset."""
    check_flag_ranges(parser, args, RUN_FLAG_RANGES)
    if args.dataset_name is None and args.train_data_dir is None:
        args.dataset_name = args.builtin_dataset
    del args.builtin_dataset
    if args.output_dir is None:
        # named after the data, so a model of someone's faces is not published as "...-digits"
        data = os.path.basename(os.path.normpath(args.train_data_dir or args.dataset_name))
        args.output_dir = f"{args.output_dir_prefix}-{data}"
    del args.output_dir_prefix


# Modes PIL uses for single-channel images: bilevel, 8-bit, with alpha, 32-bit integer and float, 16-bit.
GREY_MODES = {"1", "L", "LA", "I", "F", "I;16", "I;16B", "I;16L"}


def resolve_color_mode(args: argparse.Namespace, dataset) -> str:
    """`--color_mode`, or by default that of the training images: greyscale when every one of them is (looked at in
    the first 256), RGB otherwise. Sets and returns `args.color_mode`."""
    if args.color_mode is None:
        train = dataset["train"]
        modes = {image.mode for image in train.select(range(min(256, len(train))))["image"]}
        args.color_mode = "L" if modes <= GREY_MODES else "RGB"
    return args.color_mode


def filter_classes(dataset, classes: list[int] | None):
    """Keep the examples of `classes` in every split of a labelled `DatasetDict` (all of them when None)."""
    if classes is None:
        return dataset
    if "label" not in dataset["train"].column_names:
        raise ValueError("--class_filter needs labelled data (a `label` column, or class subfolders)")
    kept = set(classes)
    filtered = dataset.filter(lambda label: label in kept, input_columns="label")
    if len(filtered["train"]) == 0:
        raise ValueError(f"--class_filter {classes}: no training image has these labels")
    return filtered


def resolve_max_train_steps(
    args: argparse.Namespace, batches_per_epoch: int, batches_per_step: int, default_steps: int
) -> int:
    """`--max_train_steps`, else `--num_train_epochs` passes over the data (of `batches_per_epoch` batches, taken
    `batches_per_step` at a time), else the script's default number of steps: a length in steps rather than epochs,
    so that a small folder trains as long as a large dataset does (20 epochs of 80 images would be 20 steps). Sets
    and returns `args.max_train_steps`."""
    if args.max_train_steps is None:
        epochs = args.num_train_epochs
        args.max_train_steps = (
            max(1, epochs * batches_per_epoch // batches_per_step) if epochs is not None else default_steps
        )
    return args.max_train_steps


def is_power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


def check_finite(loss: torch.Tensor, name: str, step: int, output_dir: str, limit: float = float("inf")) -> None:
    """Stop a diverging run with a clear message; the checkpoints already written are left as they are."""
    value = loss.item()
    if not math.isfinite(value) or abs(value) > limit:
        raise FloatingPointError(
            f"{name} became {value} at step {step}: the run diverged. Lower the "
            f"learning rates or raise the regularisation; the last complete checkpoint in {output_dir} is kept "
            "(--resume_from_checkpoint latest continues from it)"
        )


def save_grid(images: list, folder: str, name: str, accelerator, step: int, columns: int | None = None):
    """Save PIL images as one grid PNG under `folder`, and send it to tensorboard; returns the grid."""
    columns = columns or max(1, int(math.sqrt(len(images))))
    rows = math.ceil(len(images) / columns)
    blank = Image.new(images[0].mode, images[0].size)  # fills the last row
    grid = make_image_grid(list(images) + [blank] * (rows * columns - len(images)), rows=rows, cols=columns)
    os.makedirs(folder, exist_ok=True)
    grid.save(os.path.join(folder, f"step-{step:06d}-{name}.png"))
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            tracker.writer.add_image(f"validation/{name}", np.asarray(grid.convert("RGB")), step, dataformats="HWC")
    return grid


@torch.no_grad()
def replica_max_difference(accelerator, model) -> float:
    """Largest difference between any process's weights and the main process's: 0 when data-parallel training kept
    the replicas in sync (a cheap guard against a model updated outside the DDP wrapper)."""
    weights = torch.cat([p.detach().flatten().float() for p in accelerator.unwrap_model(model).parameters()])
    all_weights = accelerator.gather(weights[None])
    return (all_weights - all_weights[0]).abs().max().item()


def write_run_record(
    output_dir: str, args: argparse.Namespace, metrics: dict, references: dict | None, run: dict, protocol: dict
) -> dict:
    """Write `training_args.json` (every resolved flag, secrets redacted) and `metrics.json` (the run's facts, the
    metrics, their protocol (data, split, extractor) and, when measured, the references); returns the record."""
    from .redaction import recordable_arguments, redact_value, secret_values

    with open(os.path.join(output_dir, "training_args.json"), "w") as f:
        json.dump(recordable_arguments(args), f, indent=2)
    record = {**run, "metrics": metrics, "protocol": protocol}
    if references is not None:
        record["references"] = references
    # the protocol names the data as the user gave it: a token pasted into a path stays out of it too
    record = redact_value(record, secret_values(args))
    with open(os.path.join(output_dir, "metrics.json"), "w") as f:
        json.dump(record, f, indent=2)
    return record


def finish_run(
    accelerator, args: argparse.Namespace, model, measure, save, evaluation, script: str, logger, step: int
) -> dict:
    """The end every training script shares, on all processes.

    Checks that the data-parallel replicas of `model` agree, measures the final metrics with `measure()` (all
    processes take part), then on the main process measures the references on the same data and extractor
    (`evaluation`, from `prepare_evaluation`), writes the Hub-ready folder with `save(metrics, references, run)`,
    prints where it is and its metrics, and pushes it with `--push_to_hub`.
    """
    from .evaluation import measure_references

    accelerator.wait_for_everyone()
    replica_difference = replica_max_difference(accelerator, model)
    if replica_difference > 0:
        logger.warning(f"the {accelerator.num_processes} replicas differ by up to {replica_difference}")
    metrics = measure()
    if accelerator.is_main_process:
        references = measure_references(evaluation, args)
        save(
            metrics,
            references,
            {
                "step": step,
                "num_processes": accelerator.num_processes,
                "replica_max_abs_difference": replica_difference,
            },
        )
        print(f"\nHub-ready folder: {os.path.abspath(args.output_dir)}")
        if evaluation.feature_extractor is None:
            print(evaluation.note)
        print(f"metrics ({evaluation.dataset}, {evaluation.split}): " + json.dumps(metrics, indent=2))
        if args.push_to_hub:
            repo_id = push_folder(args.output_dir, args.hub_model_id, args.hub_token, args.logging_dir, script)
            logger.info(f"pushed {args.output_dir} to https://huggingface.co/{repo_id}")
    # Every process waits for the main one to finish writing: tearing the process group down while one rank has
    # already left can leave the other waiting on it.
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return metrics


def push_folder(
    output_dir: str, hub_model_id: str | None, hub_token: str | None, logging_dir: str, script: str
) -> str:
    """Upload the finished folder (not checkpoints, validation grids or logs) to the Hub; returns the repo id."""
    from huggingface_hub import create_repo, upload_folder

    repo_id = hub_model_id or os.path.basename(os.path.abspath(output_dir))
    repo_id = create_repo(repo_id, exist_ok=True, token=hub_token).repo_id
    upload_folder(
        repo_id=repo_id,
        folder_path=output_dir,
        token=hub_token,
        commit_message=f"hfgen {script}",
        ignore_patterns=["checkpoint-*", "validation/*", f"{logging_dir}/*"],
    )
    return repo_id


def make_accelerator(args: argparse.Namespace, gradient_accumulation_steps: int = 1):
    """The run's Accelerator: trackers, the project folder, and per-epoch seeded shuffling (so a resumed run sees
    the same batches in the same order)."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration

    return Accelerator(
        gradient_accumulation_steps=gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=None if args.report_to == "none" else args.report_to,
        project_config=ProjectConfiguration(
            project_dir=args.output_dir, logging_dir=os.path.join(args.output_dir, args.logging_dir)
        ),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=args.seed),
    )


def make_train_dataloader(train_dataset, args: argparse.Namespace, collate_fn):
    return torch.utils.data.DataLoader(
        train_dataset,
        batch_size=args.train_batch_size,
        shuffle=True,
        collate_fn=collate_fn,
        num_workers=args.dataloader_num_workers,
        drop_last=len(train_dataset) >= args.train_batch_size,
        # Its own generator: a DataLoader draws a base seed when an epoch starts, and a draw from the global RNG
        # there would shift the noise of a resumed run by one draw.
        generator=torch.Generator().manual_seed(args.seed),
    )


def resume_run(accelerator, output_dir: str, resume_from_checkpoint: str | None, logger) -> int:
    """Load the checkpoint `resume_from_checkpoint` names (if any) into everything prepared or registered with the
    accelerator; returns the step it was taken at (0 for a new run)."""
    from .checkpointing import resolve_checkpoint

    if resume_from_checkpoint is None:
        return 0
    checkpoint = resolve_checkpoint(output_dir, resume_from_checkpoint)
    if checkpoint is None:
        logger.info("no checkpoint to resume from yet: starting a new run")
        return 0
    step, path = checkpoint
    logger.info(f"resuming from {path} (step {step})")
    try:
        accelerator.load_state(path)
    except (RuntimeError, KeyError, FileNotFoundError, EOFError, pickle.UnpicklingError, SafetensorError) as error:
        # Typically a checkpoint of another model or configuration than the one this run built.
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"cannot resume from {path}: it does not match this run's models and optimizers ({first_line}); resume "
            "with the flags and model config of the run that wrote it, or start a new --output_dir"
        ) from error
    return step


def endless_batches(accelerator, dataloader, batches_already_seen: int):
    """Training batches without end, epoch after epoch, starting after `batches_already_seen` (of a resumed run)."""
    epoch, skip = divmod(batches_already_seen, len(dataloader))
    while True:
        dataloader.set_epoch(epoch)
        yield from accelerator.skip_first_batches(dataloader, skip) if skip else dataloader
        skip = 0
        epoch += 1


def random_flip(images: torch.Tensor) -> torch.Tensor:
    """Mirror each image horizontally with probability 1/2."""
    flip = torch.rand(images.shape[0], device=images.device) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)
