from .pipeline_latent_diffusion import LatentDiffusionPipeline, LatentDiffusionPipelineOutput

__all__ = ["LatentDiffusionPipeline", "LatentDiffusionPipelineOutput"]
