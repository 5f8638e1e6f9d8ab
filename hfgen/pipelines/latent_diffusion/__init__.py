from .pipeline_latent_diffusion import LatentDiffusionPipeline, LatentDiffusionPipelineOutput
from .pipeline_latent_diffusion_controlnet import LatentDiffusionControlNetPipeline

__all__ = ["LatentDiffusionControlNetPipeline", "LatentDiffusionPipeline", "LatentDiffusionPipelineOutput"]
