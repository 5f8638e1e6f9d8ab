"""The Gradio demo of a StackGAN folder (`hfgen demo <folder>`): images from a prompt, at stage II's resolution or
stage I's."""

from ...demo import MAX_IMAGES, enlarged, image_grid, import_gradio, sample_images


def build_demo(pipeline):
    gr = import_gradio()
    config = pipeline.gan.config
    with gr.Blocks(title="StackGAN", analytics_enabled=False) as demo:
        gr.Markdown(
            "# StackGAN\n\nA two-stage text-to-image GAN trained with hfgen: stage I draws "
            f"{config.stage1_resolution} px images, stage II refines them to {config.resolution} px. Image i uses "
            "seed + i."
        )
        with gr.Row():
            prompt = gr.Textbox(label="prompt", elem_id="prompt")
            seed = gr.Number(value=0, precision=0, label="seed", elem_id="seed")
            count = gr.Slider(1, MAX_IMAGES, value=8, step=1, label="images", elem_id="count")
            stage = gr.Radio([1, 2], value=2, label="stage", elem_id="stage")
        button = gr.Button("Generate", variant="primary", elem_id="generate")
        output = gr.Image(type="pil", format="png", label="samples", elem_id="samples", interactive=False)

        def generate(prompt, seed, count, stage):
            if not prompt:
                raise gr.Error("write a prompt first")
            call = {"prompt": prompt, "stage": int(stage)}
            images = sample_images(pipeline, int(count), int(seed), MAX_IMAGES, call)
            return enlarged(image_grid(images), images[0].width)

        button.click(generate, [prompt, seed, count, stage], output)
    return demo
