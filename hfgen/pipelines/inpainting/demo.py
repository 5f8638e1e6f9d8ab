"""The Gradio demo of an inpainting folder (`hfgen demo <folder>`): an uploaded image, a box to repaint (given as
fractions of the image, so no drawing widget is needed) and a prompt; shown as the masked input beside the result."""

import torch
from PIL import Image

from ...demo import enlarged, image_grid, import_gradio


def box_mask_image(size: tuple[int, int], left: float, top: float, right: float, bottom: float) -> Image.Image:
    """A black mask of `size` (width, height) with the box between the fractions `left`..`right` and `top`..`bottom`
    white (repainted)."""
    width, height = size
    mask = Image.new("L", size, 0)
    box = (round(left * width), round(top * height), round(right * width), round(bottom * height))
    mask.paste(255, box)
    return mask


def inpaint_upload(pipeline, image, prompt, box, seed: int, guidance_scale: float, steps: int):
    """`(masked input, inpainted)` as PIL images: `image` resized to the model's size, the box of fractions `box`
    repainted."""
    height, width = pipeline.image_size
    image = image.convert("RGB").resize((width, height), Image.BICUBIC)
    mask = box_mask_image(image.size, *box)
    result = pipeline(
        prompt=prompt,
        image=image,
        mask_image=mask,
        guidance_scale=float(guidance_scale),
        num_inference_steps=int(steps),
        generator=torch.Generator().manual_seed(int(seed)),
    ).images[0]
    shown = image.convert(result.mode)
    shown.paste(128, mask=mask)  # the hole, grey
    return shown, result


def build_demo(pipeline):
    gr = import_gradio()
    height, width = pipeline.image_size
    with gr.Blocks(title="Latent diffusion inpainting", analytics_enabled=False) as demo:
        gr.Markdown(
            f"# Latent diffusion inpainting\n\nYour image, resized to {width}x{height}: the box (fractions of the "
            "image's width and height) is repainted following the prompt; the rest is kept."
        )
        with gr.Row():
            upload = gr.Image(type="pil", label="image", elem_id="upload")
            prompt = gr.Textbox(label="prompt", elem_id="prompt")
        with gr.Row():
            box = [
                gr.Slider(0.0, 1.0, value=value, step=0.05, label=name, elem_id=name)
                for name, value in (("left", 0.25), ("top", 0.25), ("right", 0.75), ("bottom", 0.75))
            ]
        with gr.Row():
            seed = gr.Number(value=0, precision=0, label="seed", elem_id="seed")
            guidance = gr.Slider(1.0, 15.0, value=3.0, step=0.5, label="guidance scale", elem_id="guidance_scale")
            steps = gr.Slider(1, 100, value=25, step=1, label="steps", elem_id="steps")
        output = gr.Image(type="pil", format="png", label="masked input | inpainted", elem_id="result")

        def run(image, prompt, left, top, right, bottom, seed, guidance, steps):
            if image is None:
                raise gr.Error("upload an image first")
            if right <= left or bottom <= top:
                raise gr.Error("the box is empty: right must be past left, and bottom below top")
            images = inpaint_upload(pipeline, image, prompt, (left, top, right, bottom), seed, guidance, steps)
            return enlarged(image_grid(list(images), columns=2), width)

        gr.Button("Inpaint", variant="primary", elem_id="inpaint").click(
            run, [upload, prompt, *box, seed, guidance, steps], output
        )
    return demo
