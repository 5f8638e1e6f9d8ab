"""hfgen: generative computer vision on the Hugging Face stack.

Every saveable class is `hfgen.<Name>`. Importing hfgen registers its configs and models with transformers'
`AutoConfig` / `AutoModel`, so `transformers.AutoModel.from_pretrained(folder)` loads an hfgen model after
`import hfgen`.
"""

from transformers import AutoConfig, AutoModel, AutoModelForImageClassification

from .models.blip_heads import BLIPCaptionScorer, BLIPCaptionScorerConfig
from .models.clip_heads import (
    CLIPLinearProbe,
    CLIPLinearProbeConfig,
    CLIPZeroShotClassifier,
    CLIPZeroShotClassifierConfig,
)
from .models.cyclegan import CycleGANConfig, CycleGANDiscriminator, CycleGANGenerator
from .models.digits_classifier import DigitsClassifier, DigitsClassifierConfig
from .models.gan import GANConfig, GANDiscriminator, GANGenerator
from .models.owlvit_heads import OwlViTDetectionConfig, OwlViTForOpenVocabularyDetection
from .models.progan import ProGANConfig, ProGANDiscriminator, ProGANGenerator
from .models.stackgan import StackGANConfig, StackGANDiscriminator, StackGANGenerator
from .models.stylegan import StyleGANConfig, StyleGANDiscriminator, StyleGANGenerator
from .models.unclip import UnCLIPRegressionPrior, UnCLIPRegressionPriorConfig
from .models.vae import VAEConfig, VAEModel
from .pipelines.cascade import (
    CascadedDiffusionPipeline,
    CascadedDiffusionPipelineOutput,
    SuperResolutionPipeline,
    SuperResolutionPipelineOutput,
)
from .pipelines.cyclegan import CycleGANPipeline, Pix2PixPipeline, TranslationPipelineOutput
from .pipelines.ddpm import DDPMPipeline, DDPMPipelineOutput
from .pipelines.gan import GANPipeline, GANPipelineOutput
from .pipelines.groupvit import GroupViTSegmentationPipeline, GroupViTSegmentationPipelineOutput
from .pipelines.inpainting import LatentBlendingInpaintPipeline, LatentDiffusionInpaintPipeline
from .pipelines.latent_diffusion import (
    LatentDiffusionControlNetPipeline,
    LatentDiffusionPipeline,
    LatentDiffusionPipelineOutput,
)
from .pipelines.progan import ProGANPipeline
from .pipelines.score_sde import ScoreSdePipeline
from .pipelines.stackgan import StackGANPipeline, StackGANPipelineOutput
from .pipelines.stylegan import StyleGANPipeline, StyleGANPipelineOutput
from .pipelines.unclip import UnCLIPPipeline, UnCLIPPipelineOutput
from .pipelines.vae import VAEPipeline, VAEPipelineOutput
from .pipelines.vqgan import VQGANPipeline, VQGANPipelineOutput

__version__ = "0.1.0"

# A GAN's config maps to its generator: what `AutoModel` loads from a Hub folder (the discriminator, when shared,
# sits in its `discriminator/` subfolder and loads with `GANDiscriminator` / `StyleGANDiscriminator`).
for _config, _model in (
    (VAEConfig, VAEModel),
    (DigitsClassifierConfig, DigitsClassifier),
    (GANConfig, GANGenerator),
    (CycleGANConfig, CycleGANGenerator),
    (StyleGANConfig, StyleGANGenerator),
    (ProGANConfig, ProGANGenerator),
    (StackGANConfig, StackGANGenerator),
    (UnCLIPRegressionPriorConfig, UnCLIPRegressionPrior),
    (CLIPZeroShotClassifierConfig, CLIPZeroShotClassifier),
    (CLIPLinearProbeConfig, CLIPLinearProbe),
    (BLIPCaptionScorerConfig, BLIPCaptionScorer),
    (OwlViTDetectionConfig, OwlViTForOpenVocabularyDetection),
):
    AutoConfig.register(_config.model_type, _config, exist_ok=True)
    AutoModel.register(_config, _model, exist_ok=True)
for _config, _model in (
    (DigitsClassifierConfig, DigitsClassifier),
    (CLIPZeroShotClassifierConfig, CLIPZeroShotClassifier),
    (CLIPLinearProbeConfig, CLIPLinearProbe),
):
    AutoModelForImageClassification.register(_config, _model, exist_ok=True)

__all__ = [
    "BLIPCaptionScorer",
    "BLIPCaptionScorerConfig",
    "CLIPLinearProbe",
    "CLIPLinearProbeConfig",
    "CLIPZeroShotClassifier",
    "CLIPZeroShotClassifierConfig",
    "CascadedDiffusionPipeline",
    "CascadedDiffusionPipelineOutput",
    "CycleGANConfig",
    "CycleGANDiscriminator",
    "CycleGANGenerator",
    "CycleGANPipeline",
    "DDPMPipeline",
    "DDPMPipelineOutput",
    "DigitsClassifier",
    "DigitsClassifierConfig",
    "GANConfig",
    "GANDiscriminator",
    "GANGenerator",
    "GANPipeline",
    "GANPipelineOutput",
    "GroupViTSegmentationPipeline",
    "GroupViTSegmentationPipelineOutput",
    "LatentBlendingInpaintPipeline",
    "LatentDiffusionControlNetPipeline",
    "LatentDiffusionInpaintPipeline",
    "LatentDiffusionPipeline",
    "LatentDiffusionPipelineOutput",
    "OwlViTDetectionConfig",
    "OwlViTForOpenVocabularyDetection",
    "Pix2PixPipeline",
    "ProGANConfig",
    "ProGANDiscriminator",
    "ProGANGenerator",
    "ProGANPipeline",
    "ScoreSdePipeline",
    "StackGANConfig",
    "StackGANDiscriminator",
    "StackGANGenerator",
    "StackGANPipeline",
    "StackGANPipelineOutput",
    "StyleGANConfig",
    "StyleGANDiscriminator",
    "StyleGANGenerator",
    "StyleGANPipeline",
    "StyleGANPipelineOutput",
    "SuperResolutionPipeline",
    "SuperResolutionPipelineOutput",
    "TranslationPipelineOutput",
    "UnCLIPPipeline",
    "UnCLIPPipelineOutput",
    "UnCLIPRegressionPrior",
    "UnCLIPRegressionPriorConfig",
    "VAEConfig",
    "VAEModel",
    "VAEPipeline",
    "VAEPipelineOutput",
    "VQGANPipeline",
    "VQGANPipelineOutput",
    "__version__",
]
