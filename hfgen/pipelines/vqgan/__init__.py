from .pipeline_vqgan import VQGANPipeline, VQGANPipelineOutput

# The model folders this family's tools serve (see hfgen.families): a VQModel saved alone (e.g. the `vqvae/` of a run's
# folder), used in the family's pipeline without a prior (folders.py).
FOLDER_ARCHITECTURES = ("VQModel",)

__all__ = ["VQGANPipeline", "VQGANPipelineOutput"]
