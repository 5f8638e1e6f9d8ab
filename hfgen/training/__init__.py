"""Pieces the training scripts share, as plain functions: the loops themselves stay in training_scripts/.

Task-agnostic (no dataset, no family):
- `cli`: parsers whose `--help` shows every default, flag range checks, and user errors reported in one line.
- `redaction`: the one redaction every record of a run's arguments goes through (no token reaches a file).
- `evaluation`: what a run's metrics are measured on (held-out split of any data) and with (`--metrics_model`),
  generator metrics, references on the same data, and the protocol written next to them.
- `checkpointing`: crash-safe checkpoints (temporary folder, then rename) with a total limit, and `latest`.
- `runs`: common flags, the accelerator and data loader of a run, resume, grids, the divergence guard, the end of a
  run and the Hub upload.
- `ema`: a moving average of a model's weights.

Adversarial training:
- `adversarial`: Adam corrected for lazy regularisation.
- `augment`: DiffAugment operations and the ADA controller.
- `gan_runs`: what the GAN scripts share: their flags, model loading and checks, and the Hub-ready folder.
"""

from .checkpointing import list_checkpoints, resolve_checkpoint, save_checkpoint

__all__ = ["list_checkpoints", "resolve_checkpoint", "save_checkpoint"]
