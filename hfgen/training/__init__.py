"""Pieces the training scripts share, as plain functions: the loops themselves stay in training_scripts/.

- `checkpointing`: crash-safe checkpoints (temporary folder, then rename) with a total limit, and `latest`.
- `runs`: common flags, the accelerator and data loader of a run, resume, grids, the divergence guard, Hub upload.
- `augment`: DiffAugment operations and the ADA controller; `ema`: the generator's moving average.
- `evaluation`: a generator's metrics against held-out images, gathered across processes.
- `gan_runs`: what the GAN scripts share: their flags, model loading and checks, and the Hub-ready folder.
"""

from .checkpointing import list_checkpoints, resolve_checkpoint, save_checkpoint

__all__ = ["list_checkpoints", "resolve_checkpoint", "save_checkpoint"]
