"""How a ProGAN generator saved without its pipeline (a LoRA run's adapter folder, or the generator alone) becomes a
pipeline for `hfgen sample`, `hfgen demo` and `hfgen evaluate` (see `hfgen.families`)."""

from ...models.progan import ProGANGenerator
from ..gan.evaluation import load_folder_generator
from .pipeline_progan import ProGANPipeline


def load_folder_pipeline(folder: str, architecture: str) -> ProGANPipeline:
    pipeline = ProGANPipeline(gan=load_folder_generator(folder, ProGANGenerator, "gan"))
    pipeline.set_progress_bar_config(disable=True)
    return pipeline
