"""The Gradio demo of a latent diffusion folder (`hfgen demo <folder>`): images from a prompt, with a negative prompt,
guidance, steps and any scheduler compatible with the folder's; a ControlNet folder also takes its control image."""

from ...demo import MAX_IMAGES, enlarged, image_grid, import_gradio, sample_images
from .pipeline_latent_diffusion_controlnet import LatentDiffusionControlNetPipeline


def build_demo(pipeline):
    gr = import_gradio()
    default_scheduler = pipeline.scheduler
    schedulers = {cls.__name__: cls for cls in [type(default_scheduler), *default_scheduler.compatibles]}
    controlled = isinstance(pipeline, LatentDiffusionControlNetPipeline)
    title = "Latent diffusion with ControlNet" if controlled else "Latent diffusion"
    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        gr.Markdown(f"# {title}\n\nA text-to-image model trained with hfgen; image i uses seed + i.")
        with gr.Row():
            prompt = gr.Textbox(label="prompt", elem_id="prompt")
            negative = gr.Textbox(label="negative prompt", elem_id="negative_prompt")
        with gr.Row():
            seed = gr.Number(value=0, precision=0, label="seed", elem_id="seed")
            count = gr.Slider(1, MAX_IMAGES, value=4, step=1, label="images", elem_id="count")
            guidance = gr.Slider(1.0, 15.0, value=5.0, step=0.5, label="guidance scale", elem_id="guidance_scale")
            steps = gr.Slider(1, 100, value=25, step=1, label="steps", elem_id="steps")
            scheduler = gr.Dropdown(
                sorted(schedulers), value=type(default_scheduler).__name__, label="scheduler", elem_id="scheduler"
            )
        inputs = [prompt, negative, seed, count, guidance, steps, scheduler]
        if controlled:
            inputs.append(gr.Image(type="pil", label="control image", elem_id="control_image"))
        button = gr.Button("Generate", variant="primary", elem_id="generate")
        output = gr.Image(type="pil", format="png", label="samples", elem_id="samples", interactive=False)

        def generate(prompt, negative, seed, count, guidance, steps, scheduler, control=None):
            if not prompt:
                raise gr.Error("write a prompt first")
            if controlled and control is None:
                raise gr.Error("upload a control image first")
            # every call starts from the folder's scheduler settings, in the class asked for
            pipeline.scheduler = schedulers[scheduler].from_config(default_scheduler.config)
            kwargs = {"prompt": prompt, "guidance_scale": float(guidance), "num_inference_steps": int(steps)}
            if negative:
                kwargs["negative_prompt"] = negative
            if controlled:
                kwargs["image"] = control
            images = sample_images(pipeline, int(count), int(seed), MAX_IMAGES, kwargs)
            return enlarged(image_grid(images), images[0].width)

        button.click(generate, inputs, output)
    return demo
