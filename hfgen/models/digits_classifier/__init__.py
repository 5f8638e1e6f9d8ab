from .configuration_digits_classifier import DigitsClassifierConfig
from .modeling_digits_classifier import DigitsClassifier, DigitsClassifierPreTrainedModel

__all__ = ["DigitsClassifier", "DigitsClassifierConfig", "DigitsClassifierPreTrainedModel"]
