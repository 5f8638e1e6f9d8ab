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


def folder_file(path: str, name: str) -> str | None:
    """The local path of the file `name` of a folder, or of a Hub repo `path` (downloaded), or None when it has none.
    Other failures (no network, no such repo) raise as huggingface_hub raises them."""
    if os.path.isdir(path):
        candidate = os.path.join(path, name)
        return candidate if os.path.isfile(candidate) else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, RemoteEntryNotFoundError

    try:
        return hf_hub_download(path, name)
    except RemoteEntryNotFoundError:
        return None
    except (OSError, HfHubHTTPError, HFValidationError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"{path} is not a local folder, and no Hub repo of that name could be read ({reason})"
        ) from None


def load_model_folder(path: str, model_class: type[PreTrainedModel]) -> PreTrainedModel:
    """`model_class` from a folder (or Hub id) the scripts saved: the whole model, or a PEFT LoRA adapter
    (`adapter_config.json`) that is loaded onto its base model (`base_model_name_or_path`) and merged into it."""
    if os.path.isdir(path):  # a damaged weights file is named, not reported as a bare header error
        for name in sorted(os.listdir(path)):
            if name.endswith(".safetensors"):
                check_safetensors_file(os.path.join(path, name))
    adapter_config = folder_file(path, "adapter_config.json")
    if adapter_config is None:
        return model_class.from_pretrained(path)
    from peft import PeftModel

    with open(adapter_config, encoding="utf-8") as file:
        base = json.load(file).get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{path}: adapter_config.json names no base_model_name_or_path to load the adapter onto")
    return PeftModel.from_pretrained(model_class.from_pretrained(base), path).merge_and_unload()


# What `folder_architecture` calls a folder that holds diffusers LoRA weights alone (a DreamBooth run's folder): they
# are loaded onto the pipeline the run trained them for, with `load_lora_weights`.
DIFFUSERS_LORA = "diffusers LoRA weights"


def folder_architecture(path: str) -> str:
    """The model class a folder (or Hub id) holds: as its `config.json` records it (transformers' `architectures`,
    diffusers' `_class_name`); for a PEFT adapter folder, that of its base model; `DIFFUSERS_LORA` for a folder of
    diffusers LoRA weights. A folder with none of these is a `ValueError` naming it."""
    config_file = folder_file(path, "config.json")
    if config_file is None:
        adapter_config = folder_file(path, "adapter_config.json")
        if adapter_config is None:
            if folder_file(path, "pytorch_lora_weights.safetensors") is not None:
                return DIFFUSERS_LORA
            raise ValueError(
                f"{path} holds no pipeline (model_index.json), no model (config.json) and no LoRA adapter "
                "(adapter_config.json): give a folder an hfgen training script saved"
            )
        with open(adapter_config, encoding="utf-8") as file:
            base = json.load(file).get("base_model_name_or_path") or ""
        config_file = folder_file(base, "config.json") if base else None
        if config_file is None:
            raise ValueError(f"{path}: the adapter's base model {base!r} has no config.json")
    with open(config_file, encoding="utf-8") as file:
        config = json.load(file)
    architectures = config.get("architectures") or ([config["_class_name"]] if config.get("_class_name") else [])
    if not architectures:
        raise ValueError(f"{config_file} records no `architectures`: save the model with save_pretrained")
    return architectures[0]
