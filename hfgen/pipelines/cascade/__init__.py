from .pipeline_cascade import CascadedDiffusionPipeline, CascadedDiffusionPipelineOutput
from .pipeline_super_resolution import SuperResolutionPipeline, SuperResolutionPipelineOutput

__all__ = [
    "CascadedDiffusionPipeline",
    "CascadedDiffusionPipelineOutput",
    "SuperResolutionPipeline",
    "SuperResolutionPipelineOutput",
]
