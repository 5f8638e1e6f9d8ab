"""The Gradio demo of a VAE folder (`hfgen demo <folder>`): a grid of decoded prior samples by seed."""

from ...demo import generator_demo


def build_demo(pipeline):
    return generator_demo(
        pipeline,
        title="VAE samples",
        description="Latents drawn from the prior N(0, I), one seed per image, decoded by the VAE trained with hfgen.",
    )
