"""What every hfgen network adds to `transformers.PreTrainedModel`: clear errors when `from_pretrained` meets a folder
that holds another network of the same family, or a damaged weights file."""

import json
import os

from safetensors import SafetensorError, safe_open
from transformers import PreTrainedModel


def check_safetensors_file(path: str) -> None:
    """Raise an `OSError` naming `path` when the safetensors file cannot be opened (truncated download, partial
    write): safetensors' own error ("incomplete metadata, file not fully covered") names no file."""
    try:
        with safe_open(path, framework="pt"):
            pass
    except SafetensorError as error:
        raise OSError(
            f"{path} is truncated or corrupt ({error}): download it again, or save the model again with "
            "save_pretrained"
        ) from error


class HfgenPreTrainedModel(PreTrainedModel):
    """
    Base of every hfgen `PreTrainedModel` family base (`VAEPreTrainedModel`, `GANPreTrainedModel`, ...). It changes
    nothing in how a model is built, saved or run; it checks what `from_pretrained` is about to load:

    - the folder's `config.json` records the class that saved it (`architectures`). Loading a folder saved by one
      network of a family with another network of the same family (a GAN discriminator with `GANGenerator`) would
      otherwise give a randomly initialised model and a warning about missing keys; here it is an error naming the
      class to use. (A folder of another family fails earlier, in [`HfgenConfig`]'s check of the `model_type`.)
    - each `.safetensors` file opens: a truncated file is an error naming the file.
    """

    @staticmethod
    def _load_pretrained_model(model, state_dict, checkpoint_files, *args, **kwargs):
        # `PreTrainedModel.from_pretrained` calls this once the model is built and the weights files are resolved:
        # the one place that knows both the class being loaded and the files' local paths.
        if checkpoint_files:
            check_saved_class(model, os.path.dirname(checkpoint_files[0]))
        for path in checkpoint_files or []:
            if path.endswith(".safetensors"):
                check_safetensors_file(path)
        return PreTrainedModel._load_pretrained_model(model, state_dict, checkpoint_files, *args, **kwargs)


def family_classes(model: PreTrainedModel) -> dict[str, type]:
    """The hfgen classes that share `model`'s config class, by name (e.g. GANGenerator and GANDiscriminator)."""
    classes, pending = {}, list(HfgenPreTrainedModel.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.config_class is type(model).config_class and cls.__module__.startswith("hfgen."):
            classes[cls.__name__] = cls
    return classes


def check_saved_class(model: PreTrainedModel, folder: str) -> None:
    """Raise a `ValueError` when `folder` (which holds the weights) was saved by another network of `model`'s family.

    The folder's own `config.json` is read rather than `model.config`, which may be a config passed by the caller."""
    config_file = os.path.join(folder, "config.json")
    if not os.path.isfile(config_file):
        return
    with open(config_file, encoding="utf-8") as file:
        architectures = json.load(file).get("architectures") or [None]
    siblings = family_classes(model)
    saved = architectures[0]
    if saved in siblings and not isinstance(model, siblings[saved]):
        raise ValueError(
            f"folder {folder} holds a {saved} (config.json: architectures={architectures}), not a "
            f"{type(model).__name__}: load it with hfgen.{saved}.from_pretrained"
        )


__all__ = ["HfgenPreTrainedModel", "check_safetensors_file"]
