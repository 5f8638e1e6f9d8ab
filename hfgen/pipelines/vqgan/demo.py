"""The Gradio demo of a VQ-GAN folder (`hfgen demo <folder>`): samples of the token prior by seed, with its
temperature and top-k (when the folder has a prior), and the reconstruction of an uploaded image."""

from ...demo import enlarged, import_gradio, sampling_controls


def build_demo(pipeline):
    gr = import_gradio()
    side = pipeline.vqvae.config.sample_size
    _, height, width = pipeline.latent_shape
    with gr.Blocks(title="VQ-GAN", analytics_enabled=False) as demo:
        gr.Markdown(
            f"# VQ-GAN\n\nA {side} px VQ-GAN trained with hfgen: {height}x{width} codes from a codebook of "
            f"{pipeline.num_codes}."
        )
        if pipeline.prior is not None:
            with gr.Tab("Samples"):
                gr.Markdown("Codes drawn one by one from the GPT-2 prior, then decoded.")
                sampling_controls(
                    pipeline, temperature=(0.5, 1.5, 1.0), top_k=(1, pipeline.num_codes, pipeline.num_codes)
                )
        with gr.Tab("Reconstruct"):
            gr.Markdown(f"Your image, resized to {side} px, encoded, replaced by its nearest codes and decoded.")
            with gr.Row():
                upload = gr.Image(type="pil", label="image", elem_id="reconstruct_input")
                reconstruction = gr.Image(
                    type="pil", format="png", label="reconstruction", elem_id="reconstruction", interactive=False
                )
            gr.Button("Reconstruct", variant="primary", elem_id="reconstruct").click(
                lambda image: enlarged(pipeline.reconstruct(image).images[0], side), upload, reconstruction
            )
    return demo
