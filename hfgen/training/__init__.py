"""Pieces the training scripts share, as plain functions: the loops themselves stay in training_scripts/."""

from .checkpointing import list_checkpoints, resolve_checkpoint, save_checkpoint

__all__ = ["list_checkpoints", "resolve_checkpoint", "save_checkpoint"]
