"""The Gradio demo of an unCLIP folder (`hfgen demo <folder>`): images from a prompt (through the prior), or
variations of an uploaded image (through its CLIP image embedding), with the guidance and steps of both stages."""

from ...demo import MAX_IMAGES, enlarged, image_grid, import_gradio, sample_images
from .pipeline_unclip import DECODER_GUIDANCE_SCALE, PRIOR_GUIDANCE_SCALE


def unclip_arguments(prompt, image, prior_guidance, guidance, steps) -> dict:
    """The pipeline's call arguments for the demo's inputs: the prompt when there is one, else the uploaded image."""
    kwargs = {"guidance_scale": float(guidance), "num_inference_steps": int(steps)}
    if prompt:
        return {**kwargs, "prompt": prompt, "prior_guidance_scale": float(prior_guidance)}
    return {**kwargs, "image": image}


def build_demo(pipeline):
    gr = import_gradio()
    with gr.Blocks(title="unCLIP", analytics_enabled=False) as demo:
        gr.Markdown(
            "# unCLIP\n\nA prompt goes through the prior to a CLIP image embedding, which the decoder draws; an "
            "uploaded image (used when the prompt is empty) gives variations: new images of its CLIP embedding. "
            "Image i uses seed + i."
        )
        with gr.Row():
            prompt = gr.Textbox(label="prompt", elem_id="prompt")
            image = gr.Image(type="pil", label="or an image to vary", elem_id="image")
        with gr.Row():
            seed = gr.Number(value=0, precision=0, label="seed", elem_id="seed")
            count = gr.Slider(1, MAX_IMAGES, value=4, step=1, label="images", elem_id="count")
            prior_guidance = gr.Slider(
                1.0, 10.0, value=PRIOR_GUIDANCE_SCALE, step=0.5, label="prior guidance", elem_id="prior_guidance"
            )
            guidance = gr.Slider(
                1.0, 10.0, value=DECODER_GUIDANCE_SCALE, step=0.5, label="decoder guidance", elem_id="guidance"
            )
            steps = gr.Slider(1, 100, value=25, step=1, label="decoder steps", elem_id="steps")
        button = gr.Button("Generate", variant="primary", elem_id="generate")
        output = gr.Image(type="pil", format="png", label="samples", elem_id="samples", interactive=False)

        def generate(prompt, image, seed, count, prior_guidance, guidance, steps):
            if not prompt and image is None:
                raise gr.Error("write a prompt or upload an image first")
            kwargs = unclip_arguments(prompt, image, prior_guidance, guidance, steps)
            images = sample_images(pipeline, int(count), int(seed), MAX_IMAGES, kwargs)
            return enlarged(image_grid(images), images[0].width)

        button.click(generate, [prompt, image, seed, count, prior_guidance, guidance, steps], output)
    return demo
