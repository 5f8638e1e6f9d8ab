from .pipeline_stylegan import StyleGANPipeline, StyleGANPipelineOutput

# The model folders this family's tools serve (see hfgen.families): a LoRA run's adapter on its base generator, or
# the generator saved alone, used in the family's pipeline (folders.py).
FOLDER_ARCHITECTURES = ("StyleGANGenerator",)

__all__ = ["StyleGANPipeline", "StyleGANPipelineOutput"]
