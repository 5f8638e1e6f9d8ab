"""The Gradio demo of a digits classifier folder (`hfgen demo <folder>`): the class probabilities of an uploaded
image, read as the metrics read generated images (grey, resized to the classifier's size, in [-1, 1]). The built-in
digits are light strokes on a dark ground: an uploaded digit should be too."""

import numpy as np
import torch

from ...demo import import_gradio
from ...metrics.feature_extractor import to_classifier_pixels
from .modeling_digits_classifier import DigitsClassifier


@torch.no_grad()
def class_probabilities(classifier: DigitsClassifier, image) -> dict:
    """{class name: probability} of a PIL image."""
    pixels = torch.from_numpy(np.asarray(image.convert("L"), dtype=np.uint8).copy())[None, None]
    logits = classifier(to_classifier_pixels(pixels, classifier.config.image_size)).logits[0]
    names = [classifier.config.id2label[index] for index in range(logits.shape[0])]
    return {str(name): float(p) for name, p in zip(names, logits.softmax(dim=-1), strict=True)}


def build_demo(folder: str, architecture: str):
    gr = import_gradio()
    classifier = DigitsClassifier.from_pretrained(folder).eval()
    with gr.Blocks(title="Digits classifier", analytics_enabled=False) as demo:
        gr.Markdown(
            "# hfgen's digits classifier\n\nThe network behind FID, KID, the Inception Score and class accuracy on "
            "the built-in digits. Upload a light digit on a dark ground."
        )
        with gr.Row():
            image = gr.Image(type="pil", label="digit", elem_id="digit_input")
            labels = gr.Label(num_top_classes=3, label="classes", elem_id="digit_labels")

        def classify(image):
            if image is None:
                raise gr.Error("upload an image of a digit")
            return class_probabilities(classifier, image)

        gr.Button("Classify", variant="primary", elem_id="classify").click(classify, image, labels)
    return demo
