from .configuration_progan import ProGANConfig
from .modeling_progan import (
    LORA_PROGAN_TARGETS,
    ProGANDiscriminator,
    ProGANDiscriminatorOutput,
    ProGANGenerator,
    ProGANGeneratorOutput,
    ProGANPreTrainedModel,
)

__all__ = [
    "LORA_PROGAN_TARGETS",
    "ProGANConfig",
    "ProGANDiscriminator",
    "ProGANDiscriminatorOutput",
    "ProGANGenerator",
    "ProGANGeneratorOutput",
    "ProGANPreTrainedModel",
]
