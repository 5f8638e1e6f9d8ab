"""The Gradio demo of a StyleGAN folder (`hfgen demo <folder>`): a grid of samples by seed, the truncation of their
styles towards the mean style, and the class when the generator is conditional."""

from ...demo import class_names, generator_demo


def build_demo(pipeline):
    config = pipeline.stylegan.config
    return generator_demo(
        pipeline,
        title="StyleGAN samples",
        description="Each image is drawn from its own seed; truncation below 1 pulls the styles towards the mean "
        "style (more typical, less varied images).",
        classes=class_names(config),
        truncation_psi=(0.0, 1.0, 1.0),
    )
