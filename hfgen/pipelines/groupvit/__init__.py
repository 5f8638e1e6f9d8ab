from .pipeline_groupvit_segmentation import (
    GroupViTSegmentationPipeline,
    GroupViTSegmentationPipelineOutput,
    label_colours,
)

__all__ = ["GroupViTSegmentationPipeline", "GroupViTSegmentationPipelineOutput", "label_colours"]
