from .pipeline_stackgan import StackGANPipeline, StackGANPipelineOutput

# No FOLDER_ARCHITECTURES: a StackGAN generator saved alone cannot read a prompt without the text encoder and
# tokenizer of its run, so only the pipeline folder train_stackgan.py writes is served (by its pipeline class).

__all__ = ["StackGANPipeline", "StackGANPipelineOutput"]
