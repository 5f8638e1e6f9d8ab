"""The Gradio demo of a CLIP folder (`hfgen demo <folder>`): zero-shot labels of an uploaded image among the classes
typed in, each class embedded through the prompt templates as `CLIPZeroShotClassifier` embeds it. A folder that
train_clip.py saved with its zero-shot classifier (`zero_shot/`) starts with that classifier's classes and templates.
"""

import json

import torch
import torch.nn.functional as F
from transformers import CLIPModel, CLIPProcessor

from ...demo import import_gradio
from ..modeling_utils import folder_file, load_model_folder
from .configuration_clip_heads import DEFAULT_TEMPLATES
from .modeling_clip_heads import _embedding, prompt_ensemble_embeddings


def saved_classes(folder: str) -> tuple[list[str], list[str]]:
    """The class names and templates of the folder's zero-shot classifier, or no classes and the default templates."""
    config_file = folder_file(folder, "zero_shot/config.json")
    if config_file is None:
        return [], list(DEFAULT_TEMPLATES)
    with open(config_file, encoding="utf-8") as file:
        config = json.load(file)
    labels = config.get("id2label") or {}
    return [labels[key] for key in sorted(labels, key=int)], list(config.get("templates") or DEFAULT_TEMPLATES)


@torch.no_grad()
def zero_shot_probabilities(model, processor, image, class_names: list[str], templates: list[str]) -> dict:
    """{class name: probability} of the image: the softmax of CLIP's logit scale times the cosine of the image
    embedding to each class's prompt-ensembled embedding."""
    classes = prompt_ensemble_embeddings(model, processor.tokenizer, class_names, templates)
    pixel_values = processor(images=image.convert("RGB"), return_tensors="pt").pixel_values.to(model.device)
    image_embedding = F.normalize(_embedding(model.get_image_features(pixel_values=pixel_values)), dim=-1)
    probabilities = (model.logit_scale.exp() * image_embedding @ classes.t()).softmax(dim=-1)[0]
    return {name: float(probability) for name, probability in zip(class_names, probabilities, strict=True)}


def build_demo(folder: str, architecture: str):
    gr = import_gradio()
    model = load_model_folder(folder, CLIPModel).eval()
    processor = CLIPProcessor.from_pretrained(folder)
    classes, templates = saved_classes(folder)
    with gr.Blocks(title="CLIP zero-shot classification", analytics_enabled=False) as demo:
        gr.Markdown(
            "# Zero-shot classification with CLIP\n\nEach class name fills every prompt template; the image takes "
            "the class whose mean prompt embedding is nearest (softmax of the scaled cosine similarities)."
        )
        with gr.Row():
            image = gr.Image(type="pil", label="image", elem_id="classify_input")
            labels = gr.Label(num_top_classes=5, label="zero-shot labels", elem_id="zero_shot_labels")
        names = gr.Textbox(value=", ".join(classes), label="classes, comma-separated", elem_id="class_names")
        prompt_templates = gr.Textbox(
            value="\n".join(templates),
            lines=3,
            label="prompt templates, one per line, {} for the class name",
            elem_id="templates",
        )

        def classify(image, names, prompt_templates):
            class_names = [name.strip() for name in names.split(",") if name.strip()]
            template_lines = [line.strip() for line in prompt_templates.splitlines() if line.strip()]
            if image is None or not class_names:
                raise gr.Error("upload an image and type at least one class name")
            if not template_lines or any(line.count("{}") != 1 for line in template_lines):
                raise gr.Error("each prompt template needs exactly one {} for the class name")
            return zero_shot_probabilities(model, processor, image, class_names, template_lines)

        gr.Button("Classify", variant="primary", elem_id="classify").click(
            classify, [image, names, prompt_templates], labels
        )
    return demo
