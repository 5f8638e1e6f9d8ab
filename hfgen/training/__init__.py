"""Pieces the training scripts share, as plain functions: the loops themselves stay in training_scripts/.

The task-agnostic core, which knows no dataset and no family (a new family adds files and touches none of these):
- `cli`: parsers whose `--help` shows every default, flag range checks, and user errors reported in one line.
- `arguments`: the data, schedule, checkpoint, validation, logging and Hub flags every script has, their checks, and
  the values they resolve to once the data is known.
- `runs`: the accelerator, data loader, schedules and trackers of a run, resume, endless batches, grids, the guard
  against diverging losses, and the replica check and teardown at its end.
- `checkpointing`: crash-safe checkpoints (temporary folder, then rename) with a total limit, and `latest`.
- `ema`: a moving average of a model's weights and buffers.
- `redaction`: the one redaction every record of a run's arguments goes through (no token reaches a file).
- `evaluation`: what a run's metrics are measured on (a held-out split of any data) and with (`--metrics_model`),
  generator metrics, references on the same data, and the protocol written next to them.
- `hub`: the end of a run: its record, model card, sample grid, summary and upload.

Per kind of training:
- `adversarial`: the adversarial step as phases (D main, D reg, G main, G reg), Adam corrected for lazy
  regularisation, and what adversarial scripts share (flags, loading a pair, checks, augmentation, weights).
- `augment`: DiffAugment operations and the ADA controller.
- `progressive`: progressive growing (ProGAN): the stage (resolution, fade-in alpha) as a function of the step, and
  real images shown at that stage.
- `diffusion`: the flags of a noise schedule and objective, the noise, timesteps and noise levels a step draws,
  diffusers' EMAModel as the scripts use it, the latent step (encode, noise, loss) of the latent diffusion scripts,
  fitting a run to a base model's resolution and schedule, and LoRA adapters on a UNet and a text encoder saved in
  diffusers' format.
"""

from .checkpointing import list_checkpoints, resolve_checkpoint, save_checkpoint

__all__ = ["list_checkpoints", "resolve_checkpoint", "save_checkpoint"]
