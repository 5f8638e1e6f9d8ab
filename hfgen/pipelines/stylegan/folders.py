"""How a StyleGAN generator saved without its pipeline (a LoRA run's adapter folder, or the generator alone) becomes
a pipeline for `hfgen sample`, `hfgen demo` and `hfgen evaluate` (see `hfgen.families`)."""

from ...models.stylegan import StyleGANGenerator
from ..gan.evaluation import load_folder_generator
from .pipeline_stylegan import StyleGANPipeline


def load_folder_pipeline(folder: str, architecture: str) -> StyleGANPipeline:
    pipeline = StyleGANPipeline(stylegan=load_folder_generator(folder, StyleGANGenerator, "stylegan"))
    pipeline.set_progress_bar_config(disable=True)
    return pipeline
