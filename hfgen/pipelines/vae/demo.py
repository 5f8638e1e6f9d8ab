"""The Gradio demo of a VAE folder (`hfgen demo <folder>`): prior samples by seed, the reconstruction of an uploaded
image, and the decoded path between the posterior means of two samples."""

import torch

from ...demo import enlarged, image_grid, import_gradio, sampling_controls


def build_demo(pipeline):
    gr = import_gradio()
    side = pipeline.vae.config.sample_size
    with gr.Blocks(title="VAE", analytics_enabled=False) as demo:
        gr.Markdown(f"# VAE\n\nA {side} px variational autoencoder trained with hfgen.")
        with gr.Tab("Samples"):
            gr.Markdown("Latents drawn from the prior N(0, I), one seed per image, decoded.")
            sampling_controls(pipeline)
        with gr.Tab("Reconstruct"):
            gr.Markdown(f"Your image, resized to {side} px, encoded to its posterior mean and decoded.")
            with gr.Row():
                upload = gr.Image(type="pil", label="image", elem_id="reconstruct_input")
                reconstruction = gr.Image(
                    type="pil", format="png", label="reconstruction", elem_id="reconstruction", interactive=False
                )
            gr.Button("Reconstruct", variant="primary", elem_id="reconstruct").click(
                lambda image: enlarged(pipeline.reconstruct(image).images[0], side), upload, reconstruction
            )
        with gr.Tab("Interpolate"):
            gr.Markdown("The samples of two seeds, encoded, and the decoded path between their latents.")
            with gr.Row():
                start = gr.Number(value=0, precision=0, label="from seed", elem_id="start_seed")
                end = gr.Number(value=1, precision=0, label="to seed", elem_id="end_seed")
                steps = gr.Slider(2, 16, value=8, step=1, label="steps", elem_id="steps")
                method = gr.Radio(["linear", "spherical"], value="spherical", label="path", elem_id="method")
            path = gr.Image(type="pil", format="png", label="path", elem_id="path", interactive=False)

            def interpolate(start, end, steps, method):
                ends = [
                    pipeline(generator=[torch.Generator().manual_seed(int(seed))]).images[0] for seed in (start, end)
                ]
                images = pipeline.interpolate(*ends, num_steps=int(steps), method=method).images
                return enlarged(image_grid(images, columns=len(images)), side)

            gr.Button("Interpolate", variant="primary", elem_id="interpolate").click(
                interpolate, [start, end, steps, method], path
            )
    return demo
