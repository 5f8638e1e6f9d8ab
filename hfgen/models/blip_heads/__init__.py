from .configuration_blip_heads import BLIPCaptionScorerConfig, blip_config_for, check_special_tokens
from .modeling_blip_heads import (
    IGNORE_INDEX,
    BLIPCaptionScorer,
    BLIPCaptionScorerOutput,
    blip_decoder_inputs,
    caption_log_likelihoods,
)
from .processing_blip_heads import blip_image_processor, build_blip_processor, write_wordpiece_vocabulary

# The transformers model classes whose saved folders this package serves (demo, evaluation; see hfgen.families).
FOLDER_ARCHITECTURES = ("BlipForConditionalGeneration", "BlipForQuestionAnswering")

__all__ = [
    "IGNORE_INDEX",
    "BLIPCaptionScorer",
    "BLIPCaptionScorerConfig",
    "BLIPCaptionScorerOutput",
    "blip_config_for",
    "blip_decoder_inputs",
    "blip_image_processor",
    "build_blip_processor",
    "caption_log_likelihoods",
    "check_special_tokens",
    "write_wordpiece_vocabulary",
]
