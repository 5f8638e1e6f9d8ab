from .pipeline_cyclegan import CycleGANPipeline, Pix2PixPipeline, TranslationPipelineOutput

__all__ = ["CycleGANPipeline", "Pix2PixPipeline", "TranslationPipelineOutput"]
