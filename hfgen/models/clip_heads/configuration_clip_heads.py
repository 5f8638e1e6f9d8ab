"""Configurations of hfgen's heads on CLIP: a zero-shot classifier (class names and prompt templates read by CLIP's
text tower) and a linear probe (a linear classifier on CLIP's frozen image embeddings). Each composes transformers'
own CLIP configuration as a sub-config, so any CLIP checkpoint's towers fit."""

from transformers import CLIPConfig, CLIPVisionConfig

from ..configuration_utils import HfgenConfig

DEFAULT_TEMPLATES = ("a photo of {}.", "an image of {}.", "{}")
"""Prompt templates when none are given: `{}` is replaced by a class name."""


def _check_class_names(config: HfgenConfig, kwargs: dict) -> None:
    """Labels from `class_names` (when given) into `id2label` / `label2id`, after checking them; a config without
    either is an error, since a classifier needs its classes."""
    class_names = kwargs.pop("class_names", None)
    if class_names is not None:
        if not class_names or len(set(class_names)) != len(class_names):
            raise ValueError(
                f"{type(config).__name__}.class_names must name at least one class, each once, got {class_names!r}"
            )
        config.id2label = {index: str(name) for index, name in enumerate(class_names)}
        config.label2id = {name: index for index, name in config.id2label.items()}
    elif not config.id2label:
        raise ValueError(f"{type(config).__name__} needs its classes: pass class_names=[...] (or id2label)")


class CLIPZeroShotClassifierConfig(HfgenConfig):
    r"""
    Configuration of a [`CLIPZeroShotClassifier`]: a CLIP model whose text tower turns each class name, placed in
    every prompt template, into one class embedding (the mean of the templates' normalised text embeddings,
    normalised again: the prompt ensembling of Radford et al. 2021); an image is classified by the cosine similarity
    of its embedding to each class embedding, times CLIP's learned logit scale.

    Args:
        clip_config (`CLIPConfig` or `dict`, *optional*):
            The CLIP model's configuration (both towers and the projection); transformers' defaults when omitted.
        class_names (`list[str]`):
            The classes, in label order; stored as `id2label`. Required unless `id2label` is given.
        templates (`list[str]`, *optional*, defaults to `["a photo of {}.", "an image of {}.", "{}"]`):
            Prompt templates, each with one `{}` for the class name.
    """

    model_type = "hfgen_clip_zero_shot"
    sub_configs_defaults = {"clip_config": CLIPConfig}

    clip_config: dict | CLIPConfig | None = None
    templates: list[str] | tuple[str, ...] = DEFAULT_TEMPLATES

    def __post_init__(self, **kwargs):
        if self.clip_config is None:
            self.clip_config = CLIPConfig()
        elif isinstance(self.clip_config, dict):
            self.clip_config = CLIPConfig(**self.clip_config)
        self.templates = list(self.templates)
        if not self.templates or any(template.count("{}") != 1 for template in self.templates):
            raise ValueError(
                "CLIPZeroShotClassifierConfig.templates must be at least one template, each with exactly one {} for "
                f"the class name, got {self.templates!r}"
            )
        _check_class_names(self, kwargs)
        super().__post_init__(**kwargs)


class CLIPLinearProbeConfig(HfgenConfig):
    r"""
    Configuration of a [`CLIPLinearProbe`]: CLIP's vision tower and image projection, frozen, then one linear layer
    from the (L2-normalised) image embedding to the class logits, the linear-probe evaluation of Radford et al. 2021.

    Args:
        vision_config (`CLIPVisionConfig` or `dict`, *optional*):
            The vision tower's configuration; its `projection_dim` is the size of the image embedding.
        class_names (`list[str]`):
            The classes, in label order; stored as `id2label`. Required unless `id2label` is given.
        normalize_embeddings (`bool`, *optional*, defaults to `True`):
            Divide each image embedding by its norm before the linear layer, as CLIP compares embeddings.
    """

    model_type = "hfgen_clip_linear_probe"
    sub_configs_defaults = {"vision_config": CLIPVisionConfig}

    vision_config: dict | CLIPVisionConfig | None = None
    normalize_embeddings: bool = True

    def __post_init__(self, **kwargs):
        if self.vision_config is None:
            self.vision_config = CLIPVisionConfig()
        elif isinstance(self.vision_config, dict):
            self.vision_config = CLIPVisionConfig(**self.vision_config)
        _check_class_names(self, kwargs)
        super().__post_init__(**kwargs)


__all__ = ["DEFAULT_TEMPLATES", "CLIPLinearProbeConfig", "CLIPZeroShotClassifierConfig"]
