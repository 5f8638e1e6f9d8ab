"""The Gradio demo of a DDPM folder (`hfgen demo <folder>`): a grid of samples by seed and the number of denoising
steps."""

from ...demo import generator_demo


def build_demo(pipeline):
    steps = pipeline.scheduler.config.num_train_timesteps
    return generator_demo(
        pipeline,
        title="Diffusion samples",
        description=f"Denoised from Gaussian noise by the UNet trained with hfgen ({type(pipeline.scheduler).__name__}"
        "); fewer steps are faster and coarser.",
        num_inference_steps=(1, steps, min(50, steps)),
    )
