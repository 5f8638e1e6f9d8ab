from .configuration_owlvit_heads import DETECTOR_CONFIGS, OwlViTDetectionConfig
from .modeling_owlvit_heads import DETECTOR_CLASSES, OwlViTForOpenVocabularyDetection
from .processing_owlvit_heads import build_owl_processor, owl_image_processor

# The transformers model classes whose saved folders this package serves (demo, evaluation; see hfgen.families).
FOLDER_ARCHITECTURES = ("OwlViTForObjectDetection", "Owlv2ForObjectDetection")

__all__ = [
    "DETECTOR_CLASSES",
    "DETECTOR_CONFIGS",
    "OwlViTDetectionConfig",
    "OwlViTForOpenVocabularyDetection",
    "build_owl_processor",
    "owl_image_processor",
]
