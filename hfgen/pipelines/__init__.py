"""hfgen pipelines: diffusers `DiffusionPipeline` subclasses, one folder per family."""
