from .pipeline_unclip import UnCLIPPipeline, UnCLIPPipelineOutput

__all__ = ["UnCLIPPipeline", "UnCLIPPipelineOutput"]
