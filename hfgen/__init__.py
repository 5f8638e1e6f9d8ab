"""hfgen: generative computer vision on the Hugging Face stack.

Every saveable class is `hfgen.<Name>`. Importing hfgen registers its configs and models with transformers'
`AutoConfig` / `AutoModel`, so `transformers.AutoModel.from_pretrained(folder)` loads an hfgen model after
`import hfgen`.
"""

from transformers import AutoConfig, AutoModel, AutoModelForImageClassification

from .models.digits_classifier import DigitsClassifier, DigitsClassifierConfig
from .models.vae import VAEConfig, VAEModel
from .pipelines.vae import VAEPipeline, VAEPipelineOutput

__version__ = "0.1.0"

for _config, _model in ((VAEConfig, VAEModel), (DigitsClassifierConfig, DigitsClassifier)):
    AutoConfig.register(_config.model_type, _config, exist_ok=True)
    AutoModel.register(_config, _model, exist_ok=True)
AutoModelForImageClassification.register(DigitsClassifierConfig, DigitsClassifier, exist_ok=True)

__all__ = [
    "DigitsClassifier",
    "DigitsClassifierConfig",
    "VAEConfig",
    "VAEModel",
    "VAEPipeline",
    "VAEPipelineOutput",
    "__version__",
]
