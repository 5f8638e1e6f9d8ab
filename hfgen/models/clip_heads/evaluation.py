"""Measuring a CLIP model as train_clip.py does, at the end of a run and on a saved folder (`hfgen evaluate`).

On held-out images with captions (their own, or written from their class labels): recall@1/5/10 image-to-text and
text-to-image, the CLIP score of the matching pairs and, for data with classes, zero-shot accuracy from the prompt
templates and the accuracy of a linear probe fitted on the frozen embeddings of training images. Chance on the same
protocol comes with them.
"""

import argparse
import logging

import torch
import torch.nn.functional as F
from transformers import CLIPModel, CLIPProcessor

from ...data.captions import LabelCaptions, dataset_captions
from ...metrics import retrieval_recall, zero_shot_accuracy
from ...training.evaluation import FolderEvaluation, evaluation_batches, load_run_data
from ...training.vision_language import processor_pixels, retrieval_chance
from ..modeling_utils import load_model_folder
from .modeling_clip_heads import fit_linear_classifier, prompt_ensemble_embeddings

RECALL_KS = (1, 5, 10)

# Training images (at most) whose embeddings fit the linear probe.
PROBE_TRAIN_IMAGES = 2000

# The settings of a folder measured without its run's record (train_clip.py's defaults).
EVALUATION_DEFAULTS = dict(caption_column=None, templates=None, probe_train_images=PROBE_TRAIN_IMAGES)


def run_captions(data, caption_column: str | None):
    """The captions of the run's training images (`LabelCaptions` from class labels, or the `caption_column` texts);
    data with neither is a one-line error."""
    captions = dataset_captions(data.evaluation.train, caption_column)
    if captions is None:
        raise ValueError(
            f"{data.evaluation.dataset} has neither class labels nor captions: CLIP learns from image-text pairs, so "
            "give class subfolders or a metadata.jsonl with a caption per image (--caption_column text)"
        )
    return captions


def tokenize(processor, texts: list[str], device) -> dict:
    max_length = processor.tokenizer.model_max_length
    inputs = processor.tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return {key: value.to(device) for key, value in inputs.items()}


@torch.no_grad()
def embed_images(model, processor, images, device, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Normalised image embeddings of a transformed dataset (pixel_values in [-1, 1]), and its labels if any."""
    embeddings, labels = [], []
    for batch in evaluation_batches(images, batch_size):
        pixels = processor_pixels(batch["pixel_values"].to(device), processor.image_processor)
        embeddings.append(F.normalize(model.get_image_features(pixel_values=pixels).pooler_output, dim=-1))
        if "labels" in batch:
            labels.append(batch["labels"])
    return torch.cat(embeddings).cpu(), torch.cat(labels) if labels else None


@torch.no_grad()
def embed_texts(model, processor, texts: list[str], device, batch_size: int = 256) -> torch.Tensor:
    return torch.cat(
        [
            F.normalize(
                model.get_text_features(**tokenize(processor, texts[i : i + batch_size], device)).pooler_output
            )
            for i in range(0, len(texts), batch_size)
        ]
    ).cpu()


def evaluation_captions(captions, evaluation, args) -> tuple[list[str], list]:
    """One caption per held-out image (label captions with templates drawn from the run's seed, so every evaluation
    reads the same texts; or the images' own captions) and the keys that say which captions match which images."""
    if isinstance(captions, LabelCaptions):
        labels = torch.tensor(evaluation["label"])
        texts = captions.captions(labels, generator=torch.Generator().manual_seed(args.seed))
        return texts, labels.tolist()
    texts = [str(text) for text in evaluation[args.caption_column]]
    return texts, texts


@torch.no_grad()
def evaluate_clip(model, processor, captions, eval_captions, data, args, device) -> tuple[dict, dict]:
    """Metrics on the held-out images, and what chance scores on the same protocol.

    - recall@K both ways: each held-out image against the held-out captions (`eval_captions`: the texts and the keys
      that match them to images; a caption matches every image of its class, or with the same text);
    - zero-shot accuracy: the class among the data's classes whose prompt-ensembled text embedding is nearest;
    - linear probe accuracy: a logistic-regression classifier fitted on the frozen embeddings of training images;
    - CLIP score: 100 x the cosine of each held-out image and its own caption, floored at 0 (Hessel et al. 2021).
    """
    model.eval()
    image_embeddings, eval_labels = embed_images(model, processor, data.eval, device)
    texts, keys = eval_captions
    own_caption_embeddings = embed_texts(model, processor, texts, device)
    # retrieval among the distinct captions: 36 copies of "the digit seven" would fill a top ten with one class
    candidates = list({(text, key): index for index, (text, key) in enumerate(zip(texts, keys, strict=True))}.values())
    candidate_keys = [keys[index] for index in candidates]
    positives = torch.tensor([[key == candidate for candidate in candidate_keys] for key in keys])
    similarity = image_embeddings @ own_caption_embeddings[candidates].t()
    metrics = retrieval_recall(similarity, positives, ks=RECALL_KS)
    chance = {}
    for k in RECALL_KS:
        chance.update(retrieval_chance(positives, k))
    metrics["clip_score"] = (100 * (image_embeddings * own_caption_embeddings).sum(dim=1)).clamp(min=0).mean().item()
    if isinstance(captions, LabelCaptions) and eval_labels is not None:
        templates = args.templates or list(captions.templates)
        class_embeddings = prompt_ensemble_embeddings(model, processor.tokenizer, captions.phrases, templates).cpu()
        metrics["zero_shot_accuracy"] = zero_shot_accuracy(image_embeddings @ class_embeddings.t(), eval_labels)
        # the linear probe: training images drawn with the run's seed, their embeddings, a fitted linear layer
        picked = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(args.seed))
        probe_images = torch.utils.data.Subset(data.train, picked[: args.probe_train_images].tolist())
        train_embeddings, train_labels = embed_images(model, processor, probe_images, device)
        # its initial draw comes from the run's seed (so a saved folder measures the same again) without shifting the
        # training run's random stream
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(args.seed)
            probe = torch.nn.Linear(train_embeddings.shape[1], len(captions.phrases))
        fit_linear_classifier(probe, train_embeddings, train_labels, weight_decay=1e-4, max_iter=200)
        with torch.no_grad():
            metrics["linear_probe_accuracy"] = zero_shot_accuracy(probe(image_embeddings), eval_labels)
        chance["zero_shot_accuracy"] = chance["linear_probe_accuracy"] = 1 / len(captions.phrases)
    model.train()
    return metrics, {name: {"chance": value} for name, value in chance.items()}


CARD_METRIC_NAMES = {
    "zero_shot_accuracy": "zero-shot accuracy",
    "linear_probe_accuracy": "linear probe accuracy",
    **{f"image_to_text_recall@{k}": f"image-to-text recall@{k}" for k in RECALL_KS},
    **{f"text_to_image_recall@{k}": f"text-to-image recall@{k}" for k in RECALL_KS},
    "clip_score": "CLIP score (matching pairs)",
}


def clip_protocol(data, captions, args) -> dict:
    """How the run's numbers were measured, for metrics.json and the card."""
    protocol = {
        "dataset": data.evaluation.dataset,
        "split": data.evaluation.split,
        "num_images": len(data.eval),
        "captions": "one per held-out image, a template (drawn with the run's seed) filled with its class"
        if isinstance(captions, LabelCaptions)
        else f"the held-out images' own {args.caption_column!r} captions",
        "recall": "each held-out image against the distinct held-out captions, and each of those captions against "
        "the held-out images; a caption matches every image of its class (or every image it captions)",
    }
    if isinstance(captions, LabelCaptions):
        templates = args.templates or list(captions.templates)
        protocol["zero_shot"] = f"nearest of {len(captions.phrases)} class embeddings, each the mean of {templates}"
        protocol["linear_probe"] = (
            f"L2-regularised logistic regression (L-BFGS) on the frozen normalised image embeddings of up to "
            f"{args.probe_train_images} training images"
        )
    return protocol


def evaluate_folder(folder: str, run: argparse.Namespace, accelerator) -> FolderEvaluation:
    """The CLIP folder (or its LoRA adapter on the base) measured as train_clip.py measures it, on `run`'s data."""
    model = load_model_folder(folder, CLIPModel).to(accelerator.device).eval()
    processor = CLIPProcessor.from_pretrained(folder)
    run.resolution, run.color_mode = model.config.vision_config.image_size, "RGB"
    data = load_run_data(run, accelerator, logging.getLogger(__name__), measures_distributions=False)
    captions = run_captions(data, run.caption_column)
    eval_captions = evaluation_captions(captions, data.evaluation.evaluation, run)
    metrics, baselines = evaluate_clip(model, processor, captions, eval_captions, data, run, accelerator.device)
    protocol = clip_protocol(data, captions, run)
    return FolderEvaluation(metrics, protocol, CARD_METRIC_NAMES, "zero-shot-image-classification", baselines)
