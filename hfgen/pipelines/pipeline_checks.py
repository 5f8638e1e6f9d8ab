"""Input checks and class-label handling shared by every hfgen pipeline.

No pipeline owns this module (as diffusers' `image_processor.py` and `utils/torch_utils.py`): each pipeline's
`__call__` calls these functions in its "check inputs" step, so every pipeline rejects a bad `batch_size`,
`generator`, `class_labels`, `output_type` or `latents` with the same one-line `ValueError`, naming the argument
and what to pass instead.

Conventions, as in diffusers:

- `generator` is one `torch.Generator` or a list with one generator per image. With a list, everything drawn for
  image `i` (its z, its class label when none is given, its noise maps) comes from `generator[i]` in the order a
  single-image call would draw it, so `pipe(batch_size=2, generator=[g0, g1])` gives the images of
  `pipe(batch_size=1, generator=g0)` and `pipe(batch_size=1, generator=g1)`.
- `batch_size` may be left out when `class_labels` (a list or tensor, one label per image) or `latents` say how many
  images to make; when both are given they must agree.
"""

import numbers

import torch

IMAGE_OUTPUT_TYPES = ("pil", "np", "pt")


def _describe(value) -> str:
    return f"{value!r} ({type(value).__name__})"


def _is_int(value) -> bool:
    # bool is an int subclass, but `batch_size=True` is a mistake, not one image.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_output_type(output_type, allowed: tuple[str, ...] = IMAGE_OUTPUT_TYPES) -> None:
    """Raise unless `output_type` is one of `allowed`."""
    if output_type not in allowed:
        raise ValueError(f"output_type must be one of {allowed}, got {output_type!r}")


def check_positive_int(value, name: str) -> None:
    """Raise unless `value` is an int of at least 1 (a bool, float or string is refused, not converted)."""
    if not _is_int(value) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {_describe(value)}")


def check_generator(generator, batch_size: int) -> None:
    """Raise unless `generator` is None, a `torch.Generator`, or a list of `batch_size` of them."""
    if generator is None or isinstance(generator, torch.Generator):
        return
    if isinstance(generator, (list, tuple)):
        wrong = [g for g in generator if not isinstance(g, torch.Generator)]
        if wrong:
            raise ValueError(
                f"generator must be a torch.Generator or a list of them (one per image), but the list "
                f"holds {_describe(wrong[0])}"
            )
        if len(generator) != batch_size:
            raise ValueError(
                f"got {len(generator)} generators for batch_size={batch_size}: pass one "
                "torch.Generator per image, or a single one for the whole batch"
            )
        return
    raise ValueError(
        f"generator must be a torch.Generator (e.g. torch.Generator().manual_seed(0)) or a list of them "
        f"(one per image), got {_describe(generator)}"
    )


def check_latents(latents, expected: tuple[int, ...], name: str = "latents") -> None:
    """Raise unless `latents` is a tensor of shape `(batch, *expected)`."""
    expected_text = "(batch, " + ", ".join(map(str, expected)) + ")"
    is_tensor = isinstance(latents, torch.Tensor)
    if (
        not is_tensor
        or latents.ndim != len(expected) + 1
        or tuple(latents.shape[1:]) != tuple(expected)
        or latents.shape[0] == 0
    ):
        got = tuple(latents.shape) if is_tensor else type(latents).__name__
        raise ValueError(f"{name} must be a torch.Tensor of shape {expected_text}, got {got}")


def _label_count(class_labels) -> int | None:
    """How many images `class_labels` describes: None for a single label meant for every image."""
    if class_labels is None or _is_int(class_labels):
        return None
    if isinstance(class_labels, torch.Tensor) and class_labels.ndim == 0:
        return None
    if isinstance(class_labels, torch.Tensor) and class_labels.ndim == 1:
        return class_labels.shape[0]
    if isinstance(class_labels, (list, tuple)):
        return len(class_labels)
    got = (
        f"a tensor of shape {tuple(class_labels.shape)}"
        if isinstance(class_labels, torch.Tensor)
        else _describe(class_labels)
    )
    raise ValueError(
        f"class_labels must be an int (one label for every image), a list of ints or a 1-D tensor (one "
        f"label per image), got {got}"
    )


def check_conditioning(class_labels, num_classes: int) -> None:
    """Raise if `class_labels` are given to an unconditional model (`num_classes=0`)."""
    if num_classes == 0 and class_labels is not None:
        raise ValueError(
            "class_labels was given but this model is unconditional (config.num_classes=0): leave class_labels out"
        )


def resolve_batch_size(
    batch_size, class_labels=None, latents: torch.Tensor | None = None, latents_name: str = "latents"
) -> int:
    """The number of images to make.

    `batch_size` when given (checked against `class_labels` and `latents`); otherwise the number of labels or latents
    given; otherwise 1. Check `latents` with [`check_latents`] first.
    """
    if batch_size is not None:
        check_positive_int(batch_size, "batch_size")
    label_count = _label_count(class_labels)
    latent_count = latents.shape[0] if isinstance(latents, torch.Tensor) and latents.ndim > 0 else None
    if label_count is not None and latent_count is not None and label_count != latent_count:
        raise ValueError(
            f"class_labels has {label_count} labels but {latents_name} has {latent_count} rows: give one "
            "label per latent"
        )
    implied = label_count if label_count is not None else latent_count
    if batch_size is None:
        if implied == 0:
            raise ValueError("class_labels is empty: give at least one label, or an int for every image")
        return 1 if implied is None else implied
    if implied is not None and implied != batch_size:
        source = (
            f"class_labels has {label_count} labels"
            if label_count is not None
            else f"{latents_name} has {latent_count} rows"
        )
        raise ValueError(f"{source} but batch_size={batch_size}: give one per image, or leave batch_size out")
    return batch_size


def _as_label_tensor(class_labels, batch_size: int) -> torch.Tensor:
    if isinstance(class_labels, torch.Tensor):
        if class_labels.is_floating_point() or class_labels.is_complex() or class_labels.dtype == torch.bool:
            raise ValueError(f"class_labels must hold integers, got a {class_labels.dtype} tensor")
        labels = class_labels.to(torch.long)
        return labels.expand(batch_size) if labels.ndim == 0 else labels
    if _is_int(class_labels):
        return torch.full((batch_size,), int(class_labels), dtype=torch.long)
    wrong = [label for label in class_labels if not _is_int(label)]
    if wrong:
        raise ValueError(f"class_labels must hold ints, got {_describe(wrong[0])}")
    return torch.tensor(list(class_labels), dtype=torch.long)


def _draw_labels(batch_size: int, num_classes: int, generator) -> torch.Tensor:
    if isinstance(generator, (list, tuple)):
        # One generator per image: image i's label comes from generator[i], as in a single-image call.
        return torch.cat([torch.randint(0, num_classes, (1,), generator=g, device=g.device).cpu() for g in generator])
    device = generator.device if generator is not None else "cpu"
    return torch.randint(0, num_classes, (batch_size,), generator=generator, device=device).cpu()


def prepare_class_labels(
    class_labels, batch_size: int, num_classes: int, device, generator=None
) -> torch.Tensor | None:
    """`class_labels` as a `(batch_size,)` long tensor on `device`; None for an unconditional model.

    A conditional model called without labels gets labels drawn uniformly from `generator` (one per image from its
    own generator for a list), so `pipeline(batch_size=16, generator=g)` works for every model and is reproducible.
    Call [`resolve_batch_size`] first: it checks that the number of labels matches `batch_size`.
    """
    check_conditioning(class_labels, num_classes)
    if num_classes == 0:
        return None
    if class_labels is None:
        return _draw_labels(batch_size, num_classes, generator).to(device)
    labels = _as_label_tensor(class_labels, batch_size)
    if labels.shape != (batch_size,):
        raise ValueError(f"class_labels has {labels.shape[0]} labels but batch_size={batch_size}: give one per image")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"class_labels must lie in [0, {num_classes}) for this model with {num_classes} classes, got "
            f"{sorted(set(labels.tolist()))}"
        )
    return labels.to(device)


def path_class_labels(class_labels, num_steps: int, num_classes: int, device) -> torch.Tensor | None:
    """Labels of an interpolation path: a conditional model needs them given (one for the whole path, or one per
    step), since random labels would make the path jump between classes."""
    if num_classes and class_labels is None:
        raise ValueError(
            f"this model is conditional on {num_classes} classes: pass class_labels for the path (an int "
            "or one per step)"
        )
    count = _label_count(class_labels)
    if count is not None and count != num_steps:
        raise ValueError(
            f"class_labels has {count} labels but num_steps={num_steps}: give one per step or a single "
            "int for the whole path"
        )
    return prepare_class_labels(class_labels, num_steps, num_classes, device)


def check_path_end(value, expected: tuple[int, ...], name: str) -> None:
    """Raise unless `value`, one end of an interpolation path, is a tensor of shape `expected` (no batch)."""
    if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(expected):
        got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"{name} must be a tensor of shape {tuple(expected)}, got {got}")
