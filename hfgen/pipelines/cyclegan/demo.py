"""The Gradio demo of a CycleGAN or pix2pix folder (`hfgen demo <folder>`): an uploaded image translated, both
directions for a CycleGAN."""

from ...demo import enlarged, import_gradio
from .pipeline_cyclegan import CycleGANPipeline


def build_demo(pipeline):
    gr = import_gradio()
    if isinstance(pipeline, CycleGANPipeline):
        title, directions = "CycleGAN", {"A to B": "a_to_b", "B to A": "b_to_a"}
        stride = pipeline.generator_ab
    else:
        title, directions = "pix2pix", {"condition to target": None}
        stride = pipeline.generator
    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        gr.Markdown(
            f"# {title}\n\nYour image is translated at its own size, cropped to a multiple of the generator's stride."
        )
        for name, direction in directions.items():
            with gr.Tab(name):
                key = direction or "translate"
                with gr.Row():
                    source = gr.Image(type="pil", label="image", elem_id=f"{key}_input")
                    translated = gr.Image(
                        type="pil", format="png", label="translation", elem_id=f"{key}_output", interactive=False
                    )

                def translate(image, direction=direction):
                    if image is None:
                        raise gr.Error("upload an image first")
                    image = cropped_to_stride(image, stride)
                    extra = {"direction": direction} if direction else {}
                    result = pipeline(image, **extra).images[0]
                    return enlarged(result, result.width)

                gr.Button("Translate", variant="primary", elem_id=f"{key}_button").click(translate, source, translated)
    return demo


def cropped_to_stride(image, generator):
    """The largest top-left crop of `image` whose sides the generator's down-sampling divides."""
    stride = generator.config.generator_stride
    width, height = (image.width // stride) * stride, (image.height // stride) * stride
    if not width or not height:
        gr = import_gradio()
        raise gr.Error(f"the image ({image.width}x{image.height}) is smaller than the generator's stride {stride}")
    return image.crop((0, 0, width, height))
