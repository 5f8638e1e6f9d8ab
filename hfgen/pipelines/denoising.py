"""What hfgen's diffusion pipelines share around a diffusers scheduler: the extra arguments its `step` takes, and the
checks of the sampling arguments. The denoising loops themselves stay in each pipeline's `__call__`, in view."""

import inspect

from .pipeline_checks import check_positive_int


def unet_sample_shape(unet) -> tuple[int, int, int]:
    """`(channels, height, width)` of what `unet` denoises, from its config (`sample_size` an int or a pair)."""
    size = unet.config.sample_size
    height, width = (size, size) if isinstance(size, int) else size
    return (unet.config.in_channels, height, width)


def scheduler_step_kwargs(scheduler, generator, eta: float) -> dict:
    """`generator` and `eta` for `scheduler.step` when it takes them: DDPM and DDIM draw noise (DDIM only with
    `eta > 0`), DPM-Solver and Euler samplers take the generator alone, and deterministic ones neither. Any diffusers
    scheduler can so be swapped in: `pipeline.scheduler = OtherScheduler.from_config(pipeline.scheduler.config)`."""
    parameters = inspect.signature(scheduler.step).parameters
    kwargs = {}
    if "generator" in parameters:
        kwargs["generator"] = generator
    if "eta" in parameters:
        kwargs["eta"] = eta
    elif eta:
        raise ValueError(
            f"eta={eta} was given but {type(scheduler).__name__} takes no eta: leave it at 0, or swap in a "
            "DDIMScheduler (DDIMScheduler.from_config(pipeline.scheduler.config))"
        )
    return kwargs


def check_sampling_arguments(num_inference_steps, eta) -> None:
    """Raise unless `num_inference_steps` is a positive int and `eta` a number in [0, 1]."""
    check_positive_int(num_inference_steps, "num_inference_steps")
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0 <= eta <= 1:
        raise ValueError(f"eta must be a number in [0, 1] (0: deterministic DDIM, 1: DDPM-like), got {eta!r}")


def classifier_free_guidance(unconditional, conditional, guidance_scale: float):
    """Classifier-free guidance (Ho & Salimans 2022): move the conditional prediction away from the unconditional one
    by `guidance_scale`; 1 gives the conditional prediction itself, 0 the unconditional one."""
    return unconditional + guidance_scale * (conditional - unconditional)
