"""How a `VQModel` saved without its pipeline (the `vqvae/` of a run's folder, or any diffusers VQModel folder)
becomes a pipeline for `hfgen sample`, `hfgen demo` and `hfgen evaluate` (see `hfgen.families`): one without a prior,
which reconstructs but does not sample."""

from diffusers import VQModel

from .pipeline_vqgan import VQGANPipeline


def load_folder_pipeline(folder: str, architecture: str) -> VQGANPipeline:
    pipeline = VQGANPipeline(vqvae=VQModel.from_pretrained(folder), prior=None)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline
