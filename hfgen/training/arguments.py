"""The flags every training script shares, and the values they resolve to once the data is known.

`add_data_arguments` and `add_run_arguments` give every script the same data, schedule, checkpoint, validation,
logging and Hub flags with the same defaults; `check_run_arguments` rejects impossible values naming the flag. The
`resolve_*` functions fill in what depends on the data (colour mode, number of steps) and record it in `args`, so
`training_args.json` holds what the run really did.
"""

import argparse
import json
import os

from ..data.images import MAX_RESOLUTION, MIN_RESOLUTION
from .cli import check_flag_ranges
from .evaluation import add_evaluation_arguments
from .redaction import recordable_arguments

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
        "--channels_last",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Train with convolution weights and activations in channels-last memory order, which oneDNN on CPUs "
        "and tensor cores on GPUs run faster (9-30%% per step measured on 2 CPU cores); the saved weights are the "
        "same either way.",
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
    parser.add_argument(
        "--space",
        action="store_true",
        help="Also write app.py and requirements.txt (and the Space fields of the card) so that the folder, pushed "
        "to a Space repo, runs as a Gradio Space of the model's demo.",
    )
    parser.set_defaults(has_demo=family in DEMO_FAMILIES)
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


# The script families whose folders have a Gradio demo (hfgen/pipelines/<family>/demo.py for pipeline folders,
# hfgen/models/<heads>/demo.py for transformers model folders), so --space can be asked. (The digits classifier's
# script, which has none of these shared flags, takes --space itself.)
DEMO_FAMILIES = (
    "gan",
    "stylegan",
    "progan",
    "stackgan",
    "vae",
    "vqgan",
    "ddpm",
    "super_resolution",
    "cyclegan",
    "pix2pix",
    "ldm",
    "controlnet",
    "dreambooth-lora",
    "lcm",
    "inpainting",
    "unclip",
    "groupvit",
    "clip",
    "blip-captioning",
    "blip-vqa",
    "owlvit",
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
    if args.space and not args.has_demo:
        parser.error(
            f"--space: {args.output_dir_prefix} folders have no Gradio demo yet (those of {', '.join(DEMO_FAMILIES)} "
            "scripts do)"
        )
    del args.has_demo
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


def print_dry_run(args: argparse.Namespace, accelerator, **facts) -> None:
    """`--dry_run`'s report, on the main process: the resolved arguments (secrets redacted) and `facts` such as the
    model config, as JSON."""
    if accelerator.is_main_process:
        print(json.dumps({"args": recordable_arguments(args), **facts}, indent=2, default=str))
