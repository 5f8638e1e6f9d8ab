from .pipeline_progan import ProGANPipeline

# The model folders this family's tools serve (see hfgen.families): a LoRA run's adapter on its base generator, or
# the generator saved alone, used in the family's pipeline (folders.py).
FOLDER_ARCHITECTURES = ("ProGANGenerator",)

__all__ = ["ProGANPipeline"]
