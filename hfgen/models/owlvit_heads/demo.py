"""The Gradio demo of an OWL-ViT / OWLv2 folder (`hfgen demo <folder>`): open-vocabulary detection of the text queries
typed in, on an uploaded image, through transformers' own post-processing (as the training script's evaluation
detects). A folder train_owlvit_detection.py saved starts with its training queries (the detector config's
`id2label`)."""

import torch
from PIL import ImageDraw
from transformers import Owlv2ForObjectDetection, Owlv2Processor, OwlViTForObjectDetection, OwlViTProcessor

from ...demo import enlarged, import_gradio
from ..modeling_utils import load_model_folder

# Outline colours of the boxes, one per query in turn.
BOX_COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45", "#fabed4")


TABLE_COLUMNS = ("query", "score", "x0", "y0", "x1", "y1")


def saved_queries(config) -> list[str]:
    """The detector's training queries when its config names them (`id2label`), else none: transformers' default
    labels (LABEL_0, LABEL_1) are not queries."""
    labels = [config.id2label[key] for key in sorted(config.id2label)]
    return [] if all(label == f"LABEL_{index}" for index, label in enumerate(labels)) else labels


@torch.no_grad()
def detect(model, processor, image, queries: list[str], threshold: float) -> list[dict]:
    """The detections scoring at least `threshold`, best first: {"query", "score", "box"} with the box as x0, y0, x1,
    y1 in pixels of `image`."""
    image = image.convert("RGB")
    inputs = processor(text=[queries], images=image, return_tensors="pt").to(model.device)
    result = processor.post_process_grounded_object_detection(
        model(**inputs), threshold=threshold, target_sizes=[(image.height, image.width)], text_labels=[queries]
    )[0]
    order = result["scores"].argsort(descending=True).tolist()
    return [
        {
            "query": result["text_labels"][index],
            "score": round(float(result["scores"][index]), 4),
            "box": [round(float(value), 1) for value in result["boxes"][index]],
        }
        for index in order
    ]


def draw_detections(image, detections: list[dict], queries: list[str]):
    """The image, enlarged for display, with each detection's box outlined in its query's colour and labelled."""
    image = image.convert("RGB")
    shown = enlarged(image, image.width)
    factor = shown.width / image.width
    draw = ImageDraw.Draw(shown)
    for detection in reversed(detections):  # the best drawn last, on top
        colour = BOX_COLOURS[queries.index(detection["query"]) % len(BOX_COLOURS)]
        box = [value * factor for value in detection["box"]]
        draw.rectangle(box, outline=colour, width=2)
        draw.text((box[0] + 2, box[1] + 1), f"{detection['query']} {detection['score']:.2f}", fill=colour)
    return shown


def build_demo(folder: str, architecture: str):
    gr = import_gradio()
    owlv2 = architecture == "Owlv2ForObjectDetection"
    model = load_model_folder(folder, Owlv2ForObjectDetection if owlv2 else OwlViTForObjectDetection).eval()
    processor = (Owlv2Processor if owlv2 else OwlViTProcessor).from_pretrained(folder)
    with gr.Blocks(title="Open-vocabulary detection", analytics_enabled=False) as demo:
        gr.Markdown(
            f"# Open-vocabulary detection with {'OWLv2' if owlv2 else 'OWL-ViT'}\n\nEvery patch predicts a box; "
            "it is kept with its best query when that query's score reaches the threshold."
        )
        with gr.Row():
            image = gr.Image(type="pil", label="image", elem_id="detect_input")
            boxes = gr.Image(type="pil", format="png", label="detections", elem_id="detections", interactive=False)
        with gr.Row():
            queries = gr.Textbox(
                value=", ".join(saved_queries(model.config)), label="text queries, comma-separated", elem_id="queries"
            )
            threshold = gr.Slider(0.0, 1.0, value=0.3, step=0.01, label="score threshold", elem_id="threshold")
        table = gr.Dataframe(
            headers=list(TABLE_COLUMNS),
            label="detections, best first (boxes in pixels of the upload)",
            elem_id="detection_list",
            interactive=False,
        )

        def run(image, queries, threshold):
            query_list = [query.strip() for query in queries.split(",") if query.strip()]
            if image is None or not query_list:
                raise gr.Error("upload an image and type at least one text query")
            detections = detect(model, processor, image, query_list, float(threshold))
            rows = [[detection["query"], detection["score"], *detection["box"]] for detection in detections]
            return draw_detections(image, detections, query_list), rows

        gr.Button("Detect", variant="primary", elem_id="detect").click(
            run, [image, queries, threshold], [boxes, table]
        )
    return demo
