from .pipeline_stylegan import StyleGANPipeline, StyleGANPipelineOutput

__all__ = ["StyleGANPipeline", "StyleGANPipelineOutput"]
