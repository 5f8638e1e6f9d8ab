from .pipeline_gan import GANPipeline, GANPipelineOutput

# The model folders this family's tools serve (see hfgen.families): a LoRA run's adapter on its base generator, or
# the generator saved alone, used in the family's pipeline (folders.py).
FOLDER_ARCHITECTURES = ("GANGenerator",)

__all__ = ["GANPipeline", "GANPipelineOutput"]
