from .pipeline_ddpm import DDPMPipeline, DDPMPipelineOutput

__all__ = ["DDPMPipeline", "DDPMPipelineOutput"]
