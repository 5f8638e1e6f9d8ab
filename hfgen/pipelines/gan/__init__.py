from .pipeline_gan import GANPipeline, GANPipelineOutput

__all__ = ["GANPipeline", "GANPipelineOutput"]
