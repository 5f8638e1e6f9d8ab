from .configuration_digits_classifier import DigitsClassifierConfig
from .modeling_digits_classifier import DigitsClassifier, DigitsClassifierPreTrainedModel

# The transformers model classes whose saved folders this package serves (demo, evaluation; see hfgen.families).
FOLDER_ARCHITECTURES = ("DigitsClassifier",)

__all__ = ["DigitsClassifier", "DigitsClassifierConfig", "DigitsClassifierPreTrainedModel"]
