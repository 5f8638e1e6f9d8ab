from .configuration_vae import VAEConfig
from .modeling_vae import (
    LORA_DECODER_TARGETS,
    VAEDecoderOutput,
    VAEEncoderOutput,
    VAEModel,
    VAEOutput,
    VAEPreTrainedModel,
)

__all__ = [
    "LORA_DECODER_TARGETS",
    "VAEConfig",
    "VAEDecoderOutput",
    "VAEEncoderOutput",
    "VAEModel",
    "VAEOutput",
    "VAEPreTrainedModel",
]
