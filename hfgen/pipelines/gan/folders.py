"""How a GAN generator saved without its pipeline (a LoRA run's adapter folder, or the generator alone) becomes a
pipeline for `hfgen sample`, `hfgen demo` and `hfgen evaluate` (see `hfgen.families`)."""

from ...models.gan import GANGenerator
from .evaluation import load_folder_generator
from .pipeline_gan import GANPipeline


def load_folder_pipeline(folder: str, architecture: str) -> GANPipeline:
    pipeline = GANPipeline(gan=load_folder_generator(folder, GANGenerator, "gan"))
    pipeline.set_progress_bar_config(disable=True)
    return pipeline
