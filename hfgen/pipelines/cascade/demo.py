"""The Gradio demos of this family's folders (`hfgen demo <folder>`): a cascade draws a grid of samples by seed; a
super-resolution model super-resolves an uploaded image, shown beside its low-resolution input and bicubic upsampling.
"""

import torch
from PIL import Image

from ...demo import enlarged, image_grid, import_gradio, sampling_controls
from .pipeline_cascade import CASCADE_NOISE_LEVEL, CascadedDiffusionPipeline
from .resampling import upsample

# The noise conditioning augmentation the sliders offer, in timesteps of the model's schedule.
MAX_DEMO_NOISE_LEVEL = 250


def low_resolution_input(image: Image.Image, side: int) -> Image.Image:
    """The centre square of `image`, resized to `side` x `side` with PIL's bicubic filter (as the data loader resizes
    training images), in its colours."""
    square = min(image.size)
    left, top = (image.width - square) // 2, (image.height - square) // 2
    return image.crop((left, top, left + square, top + square)).resize((side, side), Image.BICUBIC)


def super_resolve_upload(pipeline, image: Image.Image, seed: int, noise_level: int, num_inference_steps: int):
    """`(low-resolution input, bicubic upsampling, super-resolution)` of an uploaded image, as PIL images: the image is
    first brought to the low resolution the model was trained on (half its output side when not recorded)."""
    side = pipeline.unet.config.sample_size
    low_res = low_resolution_input(image, pipeline.config.low_resolution or side // 2)
    output = pipeline(
        image=low_res,
        generator=torch.Generator().manual_seed(int(seed)),
        noise_level=int(noise_level),
        num_inference_steps=int(num_inference_steps),
    ).images[0]
    pixels = pipeline.preprocess(low_res).to(pipeline.device)
    bicubic = pipeline.image_processor.postprocess(upsample(pixels, side), output_type="pil")[0]
    return low_res.convert(output.mode).resize(output.size, Image.NEAREST), bicubic, output


def build_demo(pipeline):
    gr = import_gradio()
    side = pipeline.unet.config.sample_size
    levels = pipeline.scheduler.config.num_train_timesteps
    noise_levels = (0, min(MAX_DEMO_NOISE_LEVEL, levels - 1), min(CASCADE_NOISE_LEVEL, levels - 1))
    if isinstance(pipeline, CascadedDiffusionPipeline):
        with gr.Blocks(title="Cascaded diffusion", analytics_enabled=False) as demo:
            low = pipeline.base_unet.config.sample_size
            gr.Markdown(
                f"# Cascaded diffusion\n\nA {low} px diffusion model's samples, super-resolved to {side} px by a "
                "second diffusion model conditioned on them (noise level: the augmentation of the base's images)."
            )
            sampling_controls(pipeline, num_inference_steps=(1, 100, 25), noise_level=noise_levels)
        return demo
    with gr.Blocks(title="Diffusion super-resolution", analytics_enabled=False) as demo:
        gr.Markdown(
            f"# Diffusion super-resolution\n\nYour image, centre-cropped and resized to the model's low resolution, "
            f"then super-resolved to {side} px: the low-resolution input, bicubic upsampling and the model's result."
        )
        with gr.Row():
            upload = gr.Image(type="pil", label="image", elem_id="upload")
            seed = gr.Number(value=0, precision=0, label="seed", elem_id="seed")
            noise_level = gr.Slider(*noise_levels[:2], value=0, step=1, label="noise level", elem_id="noise_level")
            steps = gr.Slider(1, 100, value=25, step=1, label="denoising steps", elem_id="steps")
        result = gr.Image(type="pil", format="png", label="input | bicubic | super-resolved", elem_id="result")

        def run(image, seed, noise_level, steps):
            if image is None:
                raise gr.Error("upload an image first")
            images = super_resolve_upload(pipeline, image, seed, noise_level, steps)
            return enlarged(image_grid(list(images), columns=3), side)

        gr.Button("Super-resolve", variant="primary", elem_id="super_resolve").click(
            run, [upload, seed, noise_level, steps], result
        )
    return demo
