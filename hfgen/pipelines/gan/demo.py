"""The Gradio demo of a GAN folder (`hfgen demo <folder>`): a grid of samples by seed, and the class when the
generator is conditional."""

from ...demo import class_names, generator_demo


def build_demo(pipeline):
    config = pipeline.gan.config
    return generator_demo(
        pipeline,
        title="GAN samples",
        description=f"A {config.image_size} px generator trained with hfgen: each image is drawn from its own seed.",
        classes=class_names(config),
    )
