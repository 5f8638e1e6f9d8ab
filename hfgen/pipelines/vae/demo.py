"""The Gradio demo of a VAE folder (`hfgen demo <folder>`): prior samples by seed, the reconstruction of an uploaded
image, the decoded path between the posterior means of two samples, and attribute editing from two uploaded sets."""

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
        with gr.Tab("Edit"):
            gr.Markdown(
                "An attribute is the mean latent difference between images that show it and images that do not; "
                "your image's latent moves along it by the strength (negative removes it)."
            )
            with gr.Row():
                with_attribute = gr.File(
                    file_count="multiple", file_types=["image"], label="images with", elem_id="with_images"
                )
                without_attribute = gr.File(
                    file_count="multiple", file_types=["image"], label="images without", elem_id="without_images"
                )
            with gr.Row():
                to_edit = gr.Image(type="pil", label="image to edit", elem_id="edit_input")
                edited = gr.Image(type="pil", format="png", label="edited", elem_id="edited", interactive=False)
            strength = gr.Slider(-3.0, 3.0, value=1.5, step=0.1, label="strength", elem_id="strength")

            def edit(with_files, without_files, image, strength):
                if not with_files or not without_files or image is None:
                    raise gr.Error("upload images with and without the attribute, and an image to edit")
                vector = pipeline.attribute_vector(opened(with_files), opened(without_files))
                return enlarged(pipeline.apply_attribute(image, vector, strength=float(strength)).images[0], side)

            gr.Button("Edit", variant="primary", elem_id="edit").click(
                edit, [with_attribute, without_attribute, to_edit, strength], edited
            )
    return demo


def opened(files) -> list:
    """The uploaded files (paths, or Gradio's file records) as PIL images."""
    from PIL import Image

    return [Image.open(getattr(file, "name", file)) for file in files]
