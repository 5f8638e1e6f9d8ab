"""What every training script does around its loop: the accelerator, data loader and schedules of a run, its trackers,
resume, endless batches, grids, a guard against diverging losses, and the checks and teardown at its end."""

import argparse
import contextlib
import math
import os
import pickle

import numpy as np
import torch
from diffusers.optimization import get_scheduler
from diffusers.utils import make_image_grid
from PIL import Image
from safetensors import SafetensorError

from .redaction import tracker_hyperparameters


def make_accelerator(args: argparse.Namespace, gradient_accumulation_steps: int = 1, kwargs_handlers=()):
    """The run's Accelerator: trackers, the project folder, and per-epoch seeded shuffling (so a resumed run sees
    the same batches in the same order). `kwargs_handlers` go to the Accelerator as they are (e.g. DDP's
    `find_unused_parameters` for networks that use only part of their layers at a step, as ProGAN's do)."""
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
        kwargs_handlers=list(kwargs_handlers),
    )


def to_training_memory_format(args: argparse.Namespace, *models) -> None:
    """Put the models' 4-D weights in channels-last order when `--channels_last` is on; a convolution then also
    writes its output channels-last, so the whole network runs in the order oneDNN and cuDNN are fastest in."""
    if args.channels_last:
        for model in models:
            model.to(memory_format=torch.channels_last)


def start_trackers(accelerator, args: argparse.Namespace, project_name: str) -> None:
    """Create the output folder and start the trackers (TensorBoard) with the redacted hyperparameters."""
    if accelerator.is_main_process:
        os.makedirs(args.output_dir, exist_ok=True)
        accelerator.init_trackers(project_name, config=tracker_hyperparameters(args))


def make_lr_schedulers(args: argparse.Namespace, accelerator, *optimizers) -> list:
    """One `--lr_scheduler` schedule per optimizer, over `args.max_train_steps`. Accelerate steps a prepared scheduler
    once per process at every step, hence the counts scaled by the number of processes."""
    return [
        get_scheduler(
            args.lr_scheduler,
            optimizer,
            num_warmup_steps=args.lr_warmup_steps * accelerator.num_processes,
            num_training_steps=args.max_train_steps * accelerator.num_processes,
        )
        for optimizer in optimizers
    ]


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
    """Training batches without end, epoch after epoch, starting after `batches_already_seen` (of a resumed run).

    Raises a `ValueError` at once (before the first batch is asked for) when the prepared `dataloader` gives this
    process no batch at all: too few images for one full batch per process.
    """
    if len(dataloader) == 0:
        processes = accelerator.num_processes
        images = len(dataloader.dataset)
        total = getattr(dataloader, "total_batch_size", None)
        batch_size = total // processes if total else dataloader.batch_size
        raise ValueError(
            f"--train_batch_size {batch_size} is too large for {images} training images over {processes} "
            f"process(es): each process gets no full batch; lower --train_batch_size to at most "
            f"{max(images // processes, 1)} or use fewer processes"
        )
    return _endless_batches(accelerator, dataloader, batches_already_seen)


def _endless_batches(accelerator, dataloader, batches_already_seen: int):
    epoch, skip = divmod(batches_already_seen, len(dataloader))
    while True:
        dataloader.set_epoch(epoch)
        yield from accelerator.skip_first_batches(dataloader, skip) if skip else dataloader
        skip = 0
        epoch += 1


def gradient_sync(accelerator, networks, index: int, count: int):
    """The context in which micro-batch `index` of `count` runs `networks` (one module or a list) forward and
    backward: data-parallel training fixes at forward time whether the backward pass will all-reduce the gradients,
    and only the last micro-batch's should (the others accumulate locally)."""
    if index == count - 1:
        return contextlib.nullcontext()
    stack = contextlib.ExitStack()
    for network in networks if isinstance(networks, (list, tuple)) else [networks]:
        stack.enter_context(accelerator.no_sync(network))
    return stack


def random_flip(images: torch.Tensor, paired: torch.Tensor | None = None):
    """Mirror each image horizontally with probability 1/2; with `paired` (e.g. control maps of the same shape), mirror
    each of those with its image and return both."""
    flip = (torch.rand(images.shape[0], device=images.device) < 0.5)[:, None, None, None]
    flipped = torch.where(flip, images.flip(-1), images)
    if paired is None:
        return flipped
    return flipped, torch.where(flip, paired.flip(-1), paired)


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


def check_replicas(accelerator, model, step: int, logger) -> dict:
    """The facts of a finished run for its record: the step, the number of processes and how far the data-parallel
    replicas of `model` drifted apart (0 when they stayed in sync; a warning otherwise). All processes call it."""
    accelerator.wait_for_everyone()
    difference = replica_max_difference(accelerator, model)
    if difference > 0:
        logger.warning(f"the {accelerator.num_processes} replicas differ by up to {difference}")
    return {"step": step, "num_processes": accelerator.num_processes, "replica_max_abs_difference": difference}


def end_run(accelerator) -> None:
    """Every process waits for the main one to finish writing, then the trackers close: tearing the process group
    down while one rank has already left can leave the other waiting on it."""
    accelerator.wait_for_everyone()
    accelerator.end_training()
