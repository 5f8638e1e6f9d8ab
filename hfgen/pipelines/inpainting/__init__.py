from .pipeline_latent_diffusion_inpaint import LatentBlendingInpaintPipeline, LatentDiffusionInpaintPipeline

__all__ = ["LatentBlendingInpaintPipeline", "LatentDiffusionInpaintPipeline"]
