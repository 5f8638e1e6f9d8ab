from .configuration_cyclegan import CycleGANConfig, patch_receptive_field
from .modeling_cyclegan import (
    LORA_GENERATOR_TARGETS,
    CycleGANDiscriminator,
    CycleGANDiscriminatorOutput,
    CycleGANGenerator,
    CycleGANGeneratorOutput,
    CycleGANPreTrainedModel,
)

__all__ = [
    "LORA_GENERATOR_TARGETS",
    "CycleGANConfig",
    "CycleGANDiscriminator",
    "CycleGANDiscriminatorOutput",
    "CycleGANGenerator",
    "CycleGANGeneratorOutput",
    "CycleGANPreTrainedModel",
    "patch_receptive_field",
]
