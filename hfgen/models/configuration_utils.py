"""What every hfgen configuration adds to `transformers.PreTrainedConfig`: range checks that name the field, and a
clear error when a folder holds another kind of model."""

import os

from transformers import PreTrainedConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING


def wrong_model_type_message(folder: str, found: str, expected: str, architectures: list[str] | None) -> str:
    """The error for a folder whose `config.json` names another `model_type` than the class loading it."""
    if not found.startswith("hfgen_"):
        return (
            f"folder {folder} holds a {found!r} model, not a {expected!r} one: load it with "
            "transformers.AutoModel / transformers.AutoConfig, or the class its model card names"
        )
    models = [f"hfgen.{name}" for name in architectures or []] + ["transformers.AutoModel"]
    configs = [f"hfgen.{CONFIG_MAPPING[found].__name__}"] if found in CONFIG_MAPPING else []
    configs += ["transformers.AutoConfig"]
    return (
        f"folder {folder} holds a {found!r} model, not a {expected!r} one: load it with {' or '.join(models)} "
        f"(after `import hfgen`), and its config with {' or '.join(configs)}"
    )


class HfgenConfig(PreTrainedConfig):
    r"""
    Base of hfgen's configurations. It adds no field; it gives the subclasses

    - `check_int(name, minimum)` / `check_int_list(name, minimum)`, which a subclass's `__post_init__` calls so that a
      bad size (`latent_channels=-1`, `block_out_channels=[0, 8]`) fails where it is written, with a `ValueError`
      naming the class, the field and the allowed range, instead of as a "negative dimension" deep in a layer;
    - a check in `from_pretrained` (and so in every hfgen model's `from_pretrained`) that the folder's `config.json`
      names this class's `model_type`: loading a GAN folder with `VAEConfig` or `VAEModel` is an error naming the class
      to use, where `PreTrainedConfig` only logs a warning and goes on to build a randomly initialised model.
    """

    def check_int(self, name: str, minimum: int) -> None:
        value = getattr(self, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{type(self).__name__}.{name} must be an integer >= {minimum}, got {value!r}")

    def check_int_list(self, name: str, minimum: int, allow_empty: bool = False) -> None:
        values = getattr(self, name)
        if not allow_empty and not values:
            raise ValueError(f"{type(self).__name__}.{name} must name at least one level, got {values!r}")
        for value in values:
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(
                    f"{type(self).__name__}.{name} entries must be integers >= {minimum}, got {list(values)!r}"
                )

    def check_power_of_two(self, name: str, minimum: int) -> None:
        value = getattr(self, name)
        self.check_int(name, minimum)
        if value & (value - 1):
            raise ValueError(
                f"{type(self).__name__}.{name} must be a power of two >= {minimum} (e.g. {minimum}, {2 * minimum}, "
                f"{4 * minimum}), got {value!r}"
            )

    @classmethod
    def get_config_dict(cls, pretrained_model_name_or_path, **kwargs):
        # `PreTrainedConfig.from_pretrained` (which `PreTrainedModel.from_pretrained` calls) reads the folder through
        # this method; `AutoConfig` reads it through `PreTrainedConfig.get_config_dict`, so the Auto classes, which
        # pick the class from the model_type, are not affected.
        folder = str(pretrained_model_name_or_path)
        if kwargs.get("subfolder"):
            folder = os.path.join(folder, kwargs["subfolder"])
        config_dict, kwargs = super().get_config_dict(pretrained_model_name_or_path, **kwargs)
        found = config_dict.get("model_type")
        if cls.model_type and found and found != cls.model_type:
            raise ValueError(wrong_model_type_message(folder, found, cls.model_type, config_dict.get("architectures")))
        return config_dict, kwargs


__all__ = ["HfgenConfig"]
