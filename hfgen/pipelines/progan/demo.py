"""The Gradio demo of a ProGAN folder (`hfgen demo <folder>`): a grid of samples by seed (and class, when the
generator is conditional), and the path between the latents of two seeds."""

from ...demo import class_names, import_gradio, interpolation_controls, sampling_controls


def build_demo(pipeline):
    gr = import_gradio()
    config = pipeline.gan.config
    classes = class_names(config)
    with gr.Blocks(title="ProGAN", analytics_enabled=False) as demo:
        gr.Markdown(f"# ProGAN samples\n\nA {config.resolution} px progressively grown GAN trained with hfgen.")
        with gr.Tab("Samples"):
            sampling_controls(pipeline, classes)
        with gr.Tab("Interpolate"):
            gr.Markdown("A spherical path in Z between the latents of two seeds, both ends included.")
            interpolation_controls(pipeline, config.latent_dim, classes, method=["spherical", "linear"])
    return demo
