"""Configuration of hfgen's head on BLIP's captioning model, and the BLIP configurations of models trained from
scratch. The head composes transformers' own `BlipConfig` as a sub-config, so any BLIP captioning checkpoint fits."""

import copy

from transformers import BlipConfig

from ..configuration_utils import HfgenConfig

SPECIAL_TOKEN_FIELDS = ("bos_token_id", "eos_token_id", "pad_token_id", "sep_token_id")
"""The token ids BLIP's text decoder starts, stops and pads with (`generate` stops at `sep_token_id`)."""


def check_special_tokens(config: BlipConfig, where: str) -> None:
    """Raise a `ValueError` naming `where` and the field when a special-token id of `config.text_config` lies outside
    its vocabulary. transformers only warns about such a config, and `generate` then fails with an `IndexError` deep
    in the embedding (BLIP's defaults name ids of the 30,524-token BERT vocabulary)."""
    text_config = config.text_config
    for field in SPECIAL_TOKEN_FIELDS:
        value = getattr(text_config, field)
        if not isinstance(value, int) or not 0 <= value < text_config.vocab_size:
            raise ValueError(
                f"{where}: text_config.{field} {value!r} is not a token id of the {text_config.vocab_size}-token "
                "vocabulary: set the special tokens from the tokenizer (see hfgen.models.blip_heads.blip_config_for)"
            )


def blip_config_for(tokenizer, image_size: int, architecture: BlipConfig) -> BlipConfig:
    r"""
    The `BlipConfig` of a BLIP trained from scratch with `tokenizer` (a BERT WordPiece tokenizer, e.g. from
    [`build_blip_processor`]): the towers of `architecture` at `image_size` pixels, with the text vocabulary, length
    and special tokens of the tokenizer.

    The decoder starts from `[CLS]` (`bos_token_id`, which `BlipForConditionalGeneration.generate` puts first and
    `BlipForQuestionAnswering` starts answers with), ends at `[SEP]` (`sep_token_id`, where `generate` stops, and
    `eos_token_id`) and pads with `[PAD]`: all of them inside the vocabulary, unlike BLIP's defaults.
    """
    config = copy.deepcopy(architecture)
    patch_size = config.vision_config.patch_size
    if image_size % patch_size:
        raise ValueError(
            f"image size {image_size} is not a multiple of the BLIP config's patch_size {patch_size}: choose an image "
            "size that is"
        )
    config.vision_config.image_size = image_size
    text_config = config.text_config
    text_config.vocab_size = len(tokenizer)
    text_config.max_position_embeddings = tokenizer.model_max_length
    text_config.bos_token_id = tokenizer.cls_token_id
    text_config.eos_token_id = text_config.sep_token_id = tokenizer.sep_token_id
    text_config.pad_token_id = tokenizer.pad_token_id
    return config


class BLIPCaptionScorerConfig(HfgenConfig):
    r"""
    Configuration of a [`BLIPCaptionScorer`]: a BLIP captioning model (transformers' `BlipForConditionalGeneration`)
    that scores how well each of several captions describes an image by the log-likelihood its decoder gives the
    caption's tokens, e.g. to classify an image among class prompts, or to rerank candidate captions.

    Args:
        blip_config (`BlipConfig` or `dict`, *optional*):
            The BLIP model's configuration; its special-token ids must lie inside its text vocabulary. transformers'
            defaults when omitted.
        length_normalize (`bool`, *optional*, defaults to `True`):
            Score a caption by the mean log-likelihood of its tokens (the end token included) rather than their sum,
            so that a longer caption is not penalised for its length alone.
    """

    model_type = "hfgen_blip_caption_scorer"
    sub_configs_defaults = {"blip_config": BlipConfig}

    blip_config: dict | BlipConfig | None = None
    length_normalize: bool = True

    def __post_init__(self, **kwargs):
        if self.blip_config is None:
            self.blip_config = BlipConfig()
        elif isinstance(self.blip_config, dict):
            self.blip_config = BlipConfig(**self.blip_config)
        check_special_tokens(self.blip_config, "BLIPCaptionScorerConfig.blip_config")
        super().__post_init__(**kwargs)


__all__ = ["BLIPCaptionScorerConfig", "blip_config_for", "check_special_tokens"]
