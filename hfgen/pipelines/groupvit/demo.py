"""The Gradio demo of a GroupViT segmentation folder (`hfgen demo <folder>`): an uploaded image segmented into the
classes typed in, with the background threshold at hand, and a legend of the label colours."""

from ...demo import enlarged, import_gradio
from .pipeline_groupvit_segmentation import label_colours


def build_demo(pipeline):
    gr = import_gradio()
    threshold = pipeline.config.background_threshold
    with gr.Blocks(title="GroupViT segmentation", analytics_enabled=False) as demo:
        gr.Markdown(
            "# Zero-shot segmentation with GroupViT\n\nEach pixel takes the class whose prompt is nearest to the "
            "embedding of its group, or background (black) when none is near enough."
        )
        with gr.Row():
            image = gr.Image(type="pil", label="image", elem_id="segment_input")
            labels = gr.Image(type="pil", format="png", label="labels", elem_id="labels", interactive=False)
        with gr.Row():
            names = gr.Textbox(label="classes, comma-separated", elem_id="class_names")
            background = gr.Slider(
                -1.0,
                1.0,
                value=-1.0 if threshold is None else threshold,
                step=0.01,
                elem_id="background_threshold",
                label="background threshold (cosine similarity; -1: none)",
            )
        legend = gr.Markdown(elem_id="legend")

        def segment(image, names, background):
            class_names = [name.strip() for name in names.split(",") if name.strip()]
            if image is None or not class_names:
                raise gr.Error("upload an image and type at least one class name")
            output = pipeline(image, class_names, background_threshold=float(background))
            colours = (label_colours(len(class_names) + 1) * 255).round().int().tolist()
            named = zip(["background", *class_names], colours, strict=True)
            rows = [f"- {name}: rgb{tuple(colour)}" for name, colour in named]
            return enlarged(output.images[0], output.images[0].width), "\n".join(rows)

        gr.Button("Segment", variant="primary", elem_id="segment").click(
            segment, [image, names, background], [labels, legend]
        )
    return demo
