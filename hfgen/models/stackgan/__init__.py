from .configuration_stackgan import StackGANConfig
from .modeling_stackgan import (
    LORA_STACKGAN_TARGETS,
    StackGANDiscriminator,
    StackGANDiscriminatorOutput,
    StackGANGenerator,
    StackGANGeneratorOutput,
    StackGANPreTrainedModel,
)

__all__ = [
    "LORA_STACKGAN_TARGETS",
    "StackGANConfig",
    "StackGANDiscriminator",
    "StackGANDiscriminatorOutput",
    "StackGANGenerator",
    "StackGANGeneratorOutput",
    "StackGANPreTrainedModel",
]
