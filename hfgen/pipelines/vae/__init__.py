from .pipeline_vae import VAEPipeline, VAEPipelineOutput

__all__ = ["VAEPipeline", "VAEPipelineOutput"]
