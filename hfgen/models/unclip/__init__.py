from .configuration_unclip import UnCLIPRegressionPriorConfig
from .modeling_unclip import UnCLIPRegressionPrior, UnCLIPRegressionPriorOutput, UnCLIPRegressionPriorPreTrainedModel

__all__ = [
    "UnCLIPRegressionPrior",
    "UnCLIPRegressionPriorConfig",
    "UnCLIPRegressionPriorOutput",
    "UnCLIPRegressionPriorPreTrainedModel",
]
