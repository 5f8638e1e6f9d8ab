"""Crash-safe training checkpoints for hfgen's scripts, on top of `accelerator.save_state` / `load_state`.

A checkpoint is written to `<output_dir>/checkpoint-<step>.tmp` and renamed to `checkpoint-<step>` only once every
process has finished writing, so a run killed while saving never leaves a folder that `--resume_from_checkpoint
latest` would pick: only complete `checkpoint-<step>` folders count.

Checkpoints keep accelerate's own format (each prepared model's weights in safetensors beside the optimizer,
scheduler, RNG and registered states); the folders users load with `from_pretrained` are written once, at the end of
a run. The diffusers examples' `register_save_state_pre_hook` / `register_load_state_pre_hook`, which write each
model with `save_pretrained` inside the checkpoint, are not used: those hooks see only the prepared models, while a
GAN's checkpoint also holds registered objects (the EMA generator, ADA's probability, StyleGAN's path-length mean),
so resume would need two paths for one state.
"""

import os
import re
import shutil

from accelerate import Accelerator
from accelerate.logging import get_logger

logger = get_logger(__name__)

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
TEMPORARY_SUFFIX = ".tmp"


def list_checkpoints(output_dir: str) -> list:
    """Complete checkpoints in `output_dir` as `(step, path)` pairs, oldest first; temporary folders are ignored."""
    if not os.path.isdir(output_dir):
        return []
    found = []
    for name in os.listdir(output_dir):
        match = CHECKPOINT_PATTERN.match(name)
        path = os.path.join(output_dir, name)
        if match and os.path.isdir(path):
            found.append((int(match.group(1)), path))
    return sorted(found)


def resolve_checkpoint(output_dir: str, resume_from_checkpoint: str):
    """Turn `--resume_from_checkpoint` into `(step, path)`: `"latest"` picks the newest complete checkpoint in
    `output_dir` (None when there is none yet, so a first run starts fresh); a path must name a checkpoint folder."""
    if resume_from_checkpoint == "latest":
        checkpoints = list_checkpoints(output_dir)
        return checkpoints[-1] if checkpoints else None
    path = resume_from_checkpoint.rstrip("/")
    match = CHECKPOINT_PATTERN.match(os.path.basename(path))
    if match is None or not os.path.isdir(path):
        inside = list_checkpoints(path)
        hint = (
            f"; it holds {os.path.basename(inside[-1][1])}: pass that folder, or 'latest' with --output_dir {path}"
            if inside
            else "; pass 'latest' to continue the newest checkpoint of --output_dir"
        )
        raise ValueError(
            f"--resume_from_checkpoint {resume_from_checkpoint!r} is neither 'latest' nor an existing "
            f"'checkpoint-<step>' folder{hint}"
        )
    if not any(name.startswith("random_states") for name in os.listdir(path)):
        raise ValueError(
            f"--resume_from_checkpoint {path!r} is not a complete checkpoint (no saved training state in it): pass "
            "another checkpoint-<step> folder or 'latest'"
        )
    return int(match.group(1)), path


def save_checkpoint(accelerator: Accelerator, output_dir: str, step: int, total_limit: int | None = None) -> str:
    """Save the full training state at `step` atomically; keep at most `total_limit` checkpoints. All processes
    must call this (each saves its RNG state). Returns the final path."""
    final_path = os.path.join(output_dir, f"checkpoint-{step}")
    temporary_path = final_path + TEMPORARY_SUFFIX
    if accelerator.is_main_process:
        shutil.rmtree(temporary_path, ignore_errors=True)  # left by a run killed while saving
    accelerator.wait_for_everyone()
    accelerator.save_state(temporary_path)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        shutil.rmtree(final_path, ignore_errors=True)
        os.replace(temporary_path, final_path)
        if total_limit is not None:
            for _, old_path in list_checkpoints(output_dir)[:-total_limit]:
                logger.info(f"removing old checkpoint {old_path} (--checkpoints_total_limit {total_limit})")
                shutil.rmtree(old_path)
    accelerator.wait_for_everyone()
    return final_path
