"""Measuring an OWL-ViT / OWLv2 detector as train_owlvit_detection.py does, at the end of a run and on a saved folder
(`hfgen evaluate`).

On held-out images with boxes (the built-in digit canvases, or a user's COCO boxes): every image is read with one text
query per class (`query_template` filled with its name), through the processor and transformers' own
`post_process_grounded_object_detection`, as a user detects; COCO's box mAP@[.5:.95], mAP@0.5 and mAP@0.75 of the
100 best detections of each image, and the AP@0.5 of each class. Two detectors that do not look at the images score
the same protocol beside them (random boxes; the true boxes with every class).
"""

import argparse

import torch
from datasets import Dataset
from transformers import Owlv2ForObjectDetection, Owlv2Processor, OwlViTForObjectDetection, OwlViTProcessor

from ...data import BUILTIN_CANVASES
from ...data.vision_language import CANVAS_TEST_SIZE
from ...metrics.detection import mean_average_precision
from ...training.evaluation import FolderEvaluation
from ...training.vision_language import DetectionData, load_detection_data
from ..modeling_utils import folder_architecture, load_model_folder

# The built-in canvases: their own side, and 8,000 training canvases rather than their default 1,000, as canvases
# cost nothing to draw (about 7 s) and the small detector overfits 1,000 (measured at 1,500 steps: mAP@0.5 0.21 on
# 1,000, 0.25 on 4,000; 0.39 on 8,000 at 2,000 steps).
CANVAS_SIZE = 64
TRAIN_CANVASES = 8000

# The text query of each class, its name filled in: on the digit canvases, and on other data.
CANVAS_QUERY_TEMPLATE = "a photo of the digit {}"
QUERY_TEMPLATE = "a photo of a {}"

# COCO's evaluation keeps the 100 highest-scoring detections of each image; so do the metrics here.
MAX_DETECTIONS = 100

# The settings of a folder measured without its run's record (train_owlvit_detection.py's defaults); the query
# template follows the data, as the script's does.
EVALUATION_DEFAULTS = dict(
    canvas_size=CANVAS_SIZE,
    num_train_canvases=TRAIN_CANVASES,
    num_test_canvases=CANVAS_TEST_SIZE,
    class_names=None,
    query_template=None,
)

CARD_METRIC_NAMES = {"map": "mAP@[.5:.95]", "map_50": "mAP@0.5", "map_75": "mAP@0.75"}


def uses_canvases(args) -> bool:
    return args.train_data_dir is None and args.dataset_name == BUILTIN_CANVASES


def default_query_template(args) -> str:
    return CANVAS_QUERY_TEMPLATE if uses_canvases(args) else QUERY_TEMPLATE


def num_predictions(vision_config) -> int:
    """Boxes the detector predicts per image: one per patch."""
    return (vision_config.image_size // vision_config.patch_size) ** 2


@torch.no_grad()
def detect(detector, processor, images: list, queries: list[str], device, batch_size: int = 64) -> list[dict]:
    """What a user gets: the processor's inputs for the images and all the queries, the detector, then transformers'
    own post-processing (each patch's box with its best query's score, in pixels of the original image); the
    `MAX_DETECTIONS` highest-scoring of each image, on the CPU."""
    detections = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        inputs = processor(text=[queries] * len(batch), images=batch, return_tensors="pt").to(device)
        outputs = detector(**inputs)
        results = processor.post_process_grounded_object_detection(
            outputs, threshold=0.0, target_sizes=[(image.height, image.width) for image in batch]
        )
        for result in results:
            kept = result["scores"].argsort(descending=True)[:MAX_DETECTIONS]
            detections.append({key: result[key][kept].cpu() for key in ("boxes", "scores", "labels")})
    return detections


def ground_truth(images: Dataset) -> list[dict[str, torch.Tensor]]:
    """The held-out boxes (xyxy pixels) and classes, as `mean_average_precision` reads them."""
    return [
        {
            "boxes": torch.tensor(objects["bbox"], dtype=torch.float32).view(-1, 4),
            "labels": torch.tensor(objects["category"], dtype=torch.long),
        }
        for objects in images["objects"]
    ]


def detection_metrics(detections: list[dict], targets: list[dict], class_names: list[str]) -> dict:
    scores = mean_average_precision(detections, targets, num_classes=len(class_names))
    metrics = {name: scores[name] for name in ("map", "map_50", "map_75")}
    metrics["ap_50_per_class"] = {class_names[k]: value for k, value in scores["map_per_class"].items()}
    return metrics


@torch.no_grad()
def evaluate(detector, processor, data: DetectionData, queries: list[str], device) -> tuple[dict, list[dict]]:
    """mAP of transformers' detector (or its LoRA-wrapped one) on the held-out images (`detect`, then
    `mean_average_precision`), and the detections; the detector is left in the mode it came in."""
    training = detector.training
    detector.eval()
    detections = detect(detector, processor, list(data.eval["image"]), queries, device)
    detector.train(training)
    return detection_metrics(detections, ground_truth(data.eval), data.class_names), detections


def baselines(data: DetectionData, count: int, seed: int) -> dict:
    """What two detectors that do not look at the images score on the same held-out boxes and protocol:

    - `random_boxes`: `count` boxes per image (as many as the model keeps), each of the training boxes' mean width
      and height (as fractions of the image), at a uniformly random place inside the image, with a random class and
      score: chance;
    - `true_boxes_any_class`: every true box, once per class, each with a random score: perfect localisation
      without recognising anything, which scores about 1 / (number of classes) at every IoU threshold. A model above
      it tells the classes apart.

    Every draw comes from a generator seeded with `seed`, so a saved folder's baselines are the run's."""
    generator = torch.Generator().manual_seed(seed)
    num_classes = len(data.class_names)
    fractions = []
    for row in data.train:
        width, height = row["image"].size
        boxes = torch.tensor(row["objects"]["bbox"], dtype=torch.float32).view(-1, 4)
        fractions.append((boxes[:, 2:] - boxes[:, :2]) / torch.tensor([width, height]))
    mean_fraction = torch.cat(fractions).mean(dim=0)
    targets = ground_truth(data.eval)
    random_boxes, true_boxes = [], []
    for image, target in zip(data.eval["image"], targets, strict=True):
        size = torch.tensor([image.width, image.height], dtype=torch.float32)
        box_size = mean_fraction * size
        corners = torch.rand(count, 2, generator=generator) * (size - box_size)
        random_boxes.append(
            {
                "boxes": torch.cat([corners, corners + box_size], dim=1),
                "scores": torch.rand(count, generator=generator),
                "labels": torch.randint(num_classes, (count,), generator=generator),
            }
        )
        num_boxes = target["boxes"].shape[0]
        true_boxes.append(
            {
                "boxes": target["boxes"].repeat_interleave(num_classes, dim=0),
                "scores": torch.rand(num_boxes * num_classes, generator=generator),
                "labels": torch.arange(num_classes).repeat(num_boxes),
            }
        )
    results = {
        name: mean_average_precision(detections, targets, num_classes=num_classes)
        for name, detections in (("random_boxes", random_boxes), ("true_boxes_any_class", true_boxes))
    }
    return {
        metric: {name: result[metric] for name, result in results.items()} for metric in ("map", "map_50", "map_75")
    }


def owl_protocol(data: DetectionData, queries: list[str], args) -> dict:
    """How the run's numbers were measured, for metrics.json and the card."""
    protocol = {
        "dataset": data.dataset,
        "split": data.split,
        "num_images": len(data.eval),
        "num_boxes": sum(len(objects["bbox"]) for objects in data.eval["objects"]),
        "queries": f"one per class, {args.query_template!r} filled with its name ({len(queries)} queries)",
        "detections": "the processor's post_process_grounded_object_detection (threshold 0): each patch's box with "
        f"its best query's score; the {MAX_DETECTIONS} highest-scoring of each image are kept, as COCO keeps",
        "metric": "COCO-style box mAP (101-point interpolation, every class with ground truth weighed equally): "
        "mean over IoU 0.50:0.05:0.95, and at IoU 0.50 and 0.75",
        "baselines": "random_boxes: as many boxes per image as are kept, of the training boxes' mean size, at random "
        "places with random classes and scores; true_boxes_any_class: every true box once per class with random "
        "scores (perfect localisation, no recognition)",
    }
    if uses_canvases(args):
        protocol["canvases"] = (
            f"{args.num_train_canvases} training and {args.num_test_canvases} test canvases of "
            f"{args.canvas_size} px (seed 0)"
        )
    return protocol


def evaluate_folder(folder: str, run: argparse.Namespace, accelerator) -> FolderEvaluation:
    """The OWL-ViT / OWLv2 folder (or its LoRA adapter on the base) measured as train_owlvit_detection.py measures it,
    on `run`'s data, with the run's query template (the detector learned its queries in those words)."""
    owlv2 = folder_architecture(folder) == "Owlv2ForObjectDetection"
    detector = load_model_folder(folder, Owlv2ForObjectDetection if owlv2 else OwlViTForObjectDetection)
    detector = detector.to(accelerator.device).eval()
    processor = (Owlv2Processor if owlv2 else OwlViTProcessor).from_pretrained(folder)
    if uses_canvases(run):
        # a run on other data records no canvas flags: the canvases are then drawn at the script's defaults
        for name in ("canvas_size", "num_train_canvases", "num_test_canvases"):
            setattr(run, name, getattr(run, name) or EVALUATION_DEFAULTS[name])
    run.query_template = run.query_template or default_query_template(run)
    data = load_detection_data(run)
    queries = [run.query_template.format(name) for name in data.class_names]
    metrics, _ = evaluate(detector, processor, data, queries, accelerator.device)
    count = min(num_predictions(detector.config.vision_config), MAX_DETECTIONS)
    reference = baselines(data, count, run.seed)
    protocol = owl_protocol(data, queries, run)
    return FolderEvaluation(metrics, protocol, CARD_METRIC_NAMES, "zero-shot-object-detection", reference)
