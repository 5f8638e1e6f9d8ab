from .configuration_gan import GANConfig
from .modeling_gan import (
    LORA_GENERATOR_TARGETS,
    GANDiscriminator,
    GANDiscriminatorOutput,
    GANGenerator,
    GANGeneratorOutput,
    GANPreTrainedModel,
)

__all__ = [
    "LORA_GENERATOR_TARGETS",
    "GANConfig",
    "GANDiscriminator",
    "GANDiscriminatorOutput",
    "GANGenerator",
    "GANGeneratorOutput",
    "GANPreTrainedModel",
]
