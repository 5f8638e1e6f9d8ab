from .configuration_clip_heads import DEFAULT_TEMPLATES, CLIPLinearProbeConfig, CLIPZeroShotClassifierConfig
from .modeling_clip_heads import (
    CLIPLinearProbe,
    CLIPZeroShotClassifier,
    fit_linear_classifier,
    prompt_ensemble_embeddings,
)
from .processing_clip_heads import build_clip_processor, clip_image_processor

# The transformers model classes whose saved folders this package serves (demo, evaluation; see hfgen.families).
FOLDER_ARCHITECTURES = ("CLIPModel",)

__all__ = [
    "DEFAULT_TEMPLATES",
    "CLIPLinearProbe",
    "CLIPLinearProbeConfig",
    "CLIPZeroShotClassifier",
    "CLIPZeroShotClassifierConfig",
    "build_clip_processor",
    "clip_image_processor",
    "fit_linear_classifier",
    "prompt_ensemble_embeddings",
]
