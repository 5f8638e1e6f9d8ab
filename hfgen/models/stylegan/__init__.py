from .configuration_stylegan import StyleGANConfig
from .modeling_stylegan import (
    LORA_STYLE_TARGETS,
    StyleGANDiscriminator,
    StyleGANDiscriminatorOutput,
    StyleGANGenerator,
    StyleGANGeneratorOutput,
    StyleGANPreTrainedModel,
    mix_styles,
)

__all__ = [
    "LORA_STYLE_TARGETS",
    "StyleGANConfig",
    "StyleGANDiscriminator",
    "StyleGANDiscriminatorOutput",
    "StyleGANGenerator",
    "StyleGANGeneratorOutput",
    "StyleGANPreTrainedModel",
    "mix_styles",
]
