from .pipeline_vae import VAEPipeline, VAEPipelineOutput, slerp

__all__ = ["VAEPipeline", "VAEPipelineOutput", "slerp"]
