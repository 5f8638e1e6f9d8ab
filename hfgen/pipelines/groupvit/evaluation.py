"""Measuring a GroupViT segmentation pipeline as train_groupvit.py does, at the end of a run and on a saved folder
(`hfgen evaluate`).

On held-out images with boxes (the built-in digit canvases, with their pixel masks, or a user's COCO boxes filled in
as masks): the pipeline labels every pixel with a class or background, each class asked for with the pipeline's
prompt templates; background is a pixel whose best similarity stays under the background threshold. At the end of a
run the threshold is calibrated on training images (the best mIoU among quantiles of the pixels' best similarities)
and saved in the folder; a saved folder is measured with its own. Mean IoU over background and the classes, pixel
accuracy, the IoU of any class against background, and the class accuracy on object pixels (threshold aside) come
with what two segmenters that never recognise a class score on the same pixels. Two more figures read the grouping
alone, before any class is named: the foreground IoU reached when each image's groups are called object or
background by the majority of their true pixels, and the number of groups an image's patches fall into. Set beside the
foreground IoU they tell a grouping that misses the objects from groups that hold them but are misnamed.
"""

import argparse

import numpy as np
import torch

from ...data import BUILTIN_CANVASES
from ...data.vision_language import CANVAS_TEST_SIZE
from ...metrics.segmentation import iou_from_confusion, segmentation_confusion
from ...training.evaluation import FolderEvaluation
from ...training.vision_language import DetectionData, load_detection_data
from .pipeline_groupvit_segmentation import GroupViTSegmentationPipeline

# The built-in canvases: their own side, and 8,000 training canvases, as for OWL-ViT (they cost nothing to draw).
CANVAS_SIZE = 64
TRAIN_CANVASES = 8000

# The background threshold is chosen among the quantiles of the pixels' best similarities on this many training
# images (the one that maximises their mIoU), so held-out images never set it.
CALIBRATION_IMAGES = 200
THRESHOLD_QUANTILES = 41

# The settings of a folder measured without its run's record (train_groupvit.py's defaults); the prompt templates
# and the background threshold are the saved pipeline's.
EVALUATION_DEFAULTS = dict(
    canvas_size=CANVAS_SIZE, num_train_canvases=TRAIN_CANVASES, num_test_canvases=CANVAS_TEST_SIZE, class_names=None
)

CARD_METRIC_NAMES = {
    "mean_iou": "mIoU",
    "pixel_accuracy": "pixel accuracy",
    "foreground_iou": "foreground IoU",
    "foreground_class_accuracy": "class accuracy on object pixels",
    "grouping_foreground_iou": "grouping foreground IoU (groups named by their pixels' majority)",
    "groups_per_image": "final groups per image",
}


def is_builtin(args) -> bool:
    return args.train_data_dir is None and args.dataset_name == BUILTIN_CANVASES


def target_mask(row: dict) -> np.ndarray:
    """A held-out image's labels per pixel (0 background, 1 + class): the canvases' own masks, else its boxes
    filled in, later boxes over earlier ones."""
    if "segmentation" in row and row["segmentation"] is not None:
        return np.asarray(row["segmentation"], dtype=np.int64)
    mask = np.zeros((row["image"].height, row["image"].width), dtype=np.int64)
    for (x0, y0, x1, y1), category in zip(row["objects"]["bbox"], row["objects"]["category"], strict=True):
        mask[int(round(y0)) : int(round(y1)), int(round(x0)) : int(round(x1))] = category + 1
    return mask


def best_classes(pipeline, images: list, class_names: list[str], batch_size: int = 64) -> list[tuple]:
    """Each image's per-pixel best similarity, best class (0-based) and final group, from one batch per run of
    same-size images."""
    results = []
    start = 0
    while start < len(images):
        end = start + 1
        while end < len(images) and end - start < batch_size and images[end].size == images[start].size:
            end += 1
        output = pipeline(images[start:end], class_names, background_threshold=-1.0, output_type="pt")
        best, best_class = output.scores.float().max(dim=1)
        results.extend(zip(best, best_class, output.group_maps, strict=True))
        start = end
    return results


def labels_at(threshold: float, best: torch.Tensor, best_class: torch.Tensor) -> torch.Tensor:
    return torch.where(best < threshold, torch.zeros_like(best_class), best_class + 1)


def calibrate_threshold(pipeline, data: DetectionData, seed: int) -> float:
    """The background threshold, among the quantiles of the pixels' best similarities, that gives the highest mIoU
    on up to `CALIBRATION_IMAGES` training images drawn with the run's seed."""
    picked = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(seed))[:CALIBRATION_IMAGES]
    rows = data.train.select(picked.tolist())
    scored = best_classes(pipeline, [row["image"] for row in rows], data.class_names)
    targets = [torch.from_numpy(target_mask(row)) for row in rows]
    all_best = torch.cat([best.flatten() for best, _, _ in scored])
    candidates = torch.quantile(all_best, torch.linspace(0, 1, THRESHOLD_QUANTILES, dtype=all_best.dtype)).tolist()
    num_labels = len(data.class_names) + 1
    results = []
    for threshold in [-1.0, *candidates]:
        confusion = sum(
            segmentation_confusion(labels_at(threshold, best, best_class), target, num_labels)
            for (best, best_class, _), target in zip(scored, targets, strict=True)
        )
        results.append((iou_from_confusion(confusion)["mean_iou"], threshold))
    return max(results)[1]


def segmentation_metrics(predictions: list[torch.Tensor], targets: list[torch.Tensor], num_labels: int) -> dict:
    confusion = sum(
        segmentation_confusion(predicted, target, num_labels)
        for predicted, target in zip(predictions, targets, strict=True)
    )
    scores = iou_from_confusion(confusion)
    foreground = iou_from_confusion(
        sum(
            segmentation_confusion((p > 0).long(), (t > 0).long(), 2)
            for p, t in zip(predictions, targets, strict=True)
        )
    )
    return {
        "mean_iou": scores["mean_iou"],
        "pixel_accuracy": scores["pixel_accuracy"],
        "foreground_iou": foreground["per_class_iou"][1],
    }


def grouping_metrics(group_maps: list[torch.Tensor], targets: list[torch.Tensor]) -> dict:
    """What the grouping alone does, apart from naming: the foreground IoU over all images when each image's groups
    are called object or background by the majority of their true pixels (ties: background), and the mean number of
    groups per image."""
    confusion = 0
    for groups, target in zip(group_maps, targets, strict=True):
        objects = target > 0
        called = torch.zeros_like(objects)
        for group in groups.unique():
            pixels = groups == group
            called[pixels] = 2 * objects[pixels].sum() > pixels.sum()
        confusion = confusion + segmentation_confusion(called.long(), objects.long(), 2)
    return {
        "grouping_foreground_iou": iou_from_confusion(confusion)["per_class_iou"][1],
        "groups_per_image": sum(len(groups.unique()) for groups in group_maps) / len(group_maps),
    }


@torch.no_grad()
def evaluate_pipeline(pipeline, data: DetectionData, threshold: float) -> tuple[dict, list[torch.Tensor]]:
    """The held-out metrics of the pipeline with the background threshold `threshold`, and the predicted label
    maps."""
    scored = best_classes(pipeline, list(data.eval["image"]), data.class_names)
    predictions = [labels_at(threshold, best, best_class) for best, best_class, _ in scored]
    targets = [torch.from_numpy(target_mask(row)) for row in data.eval]
    metrics = segmentation_metrics(predictions, targets, len(data.class_names) + 1)
    metrics.update(grouping_metrics([groups for _, _, groups in scored], targets))
    # recognition apart from localisation: the class of each true object pixel, whatever the threshold says
    right = sum(
        ((best_class + 1 == target) & (target > 0)).sum().item()
        for (_, best_class, _), target in zip(scored, targets, strict=True)
    )
    metrics["foreground_class_accuracy"] = right / max(1, sum((target > 0).sum().item() for target in targets))
    return metrics, predictions


def baselines(data: DetectionData, seed: int) -> dict:
    """What two segmenters that never look at the classes score on the same held-out pixels: everything background,
    and the true masks with each object's class drawn at random (perfect localisation, no recognition), drawn from a
    generator seeded with `seed`, so a saved folder's baselines are the run's."""
    generator = np.random.default_rng(seed)
    targets = [torch.from_numpy(target_mask(row)) for row in data.eval]
    num_labels = len(data.class_names) + 1
    background = segmentation_metrics([torch.zeros_like(t) for t in targets], targets, num_labels)
    shuffled = []
    for target in targets:
        relabelled = target.clone()
        for label in target.unique().tolist():
            if label:
                relabelled[target == label] = int(generator.integers(1, num_labels))
        shuffled.append(relabelled)
    random_classes = segmentation_metrics(shuffled, targets, num_labels)
    return {
        **{
            name: {"all_background": background[name], "true_masks_random_classes": random_classes[name]}
            for name in ("mean_iou", "pixel_accuracy", "foreground_iou")
        },
        "foreground_class_accuracy": {"chance": 1 / len(data.class_names)},
    }


def groupvit_protocol(data: DetectionData, pipeline: GroupViTSegmentationPipeline, args) -> dict:
    """How the numbers were measured (the pipeline's prompt templates and background threshold), for metrics.json
    and the card."""
    threshold = pipeline.config.background_threshold
    background = (
        f"or background under the folder's similarity threshold {threshold:.4g}, which train_groupvit.py chose among "
        f"{THRESHOLD_QUANTILES} quantiles of the pixels' best similarities for the best mIoU on up to "
        f"{CALIBRATION_IMAGES} of its training images"
        if threshold is not None
        else "never background (the pipeline has no background threshold)"
    )
    templates = pipeline.config.templates or "the pipeline's default template"
    protocol = {
        "dataset": data.dataset,
        "split": data.split,
        "num_images": len(data.eval),
        "targets": "the canvases' pixel masks (digit ink labelled by class, the rest background)"
        if is_builtin(args)
        else "each image's boxes filled with their class (later boxes over earlier ones), the rest background",
        "prompts": f"one per class, the mean embedding of {templates!r} filled with its name "
        f"({len(data.class_names)} classes)",
        "labels": "GroupViTSegmentationPipeline: each pixel takes the class whose prompt is nearest (cosine) to its "
        f"groups' embeddings, {background}",
        "metric": f"IoU per label over every held-out pixel, mean over background and the {len(data.class_names)} "
        "classes (a label absent from targets and predictions is left out); pixel accuracy; IoU of any class "
        "against background (foreground IoU); the share of the true objects' pixels whose best class is theirs, "
        "background threshold aside (class accuracy on object pixels); the grouping alone: the foreground IoU when "
        "each image's groups are called object or background by the majority of their true pixels (grouping "
        "foreground IoU), and the number of final groups an image's patches fall into (final groups per image)",
        "baselines": "all_background: every pixel background; true_masks_random_classes: the true masks, each "
        "object's class drawn at random (perfect localisation, no recognition); chance: one class in "
        f"{len(data.class_names)}",
    }
    if is_builtin(args):
        protocol["canvases"] = (
            f"{args.num_train_canvases} training and {args.num_test_canvases} test canvases of "
            f"{args.canvas_size} px (seed 0)"
        )
    return protocol


def evaluate_folder(folder: str, run: argparse.Namespace, accelerator) -> FolderEvaluation:
    """The pipeline folder measured as train_groupvit.py measures it, on `run`'s data, with the folder's prompt
    templates and calibrated background threshold."""
    pipeline = GroupViTSegmentationPipeline.from_pretrained(folder).to(accelerator.device)
    pipeline.set_progress_bar_config(disable=True)
    if is_builtin(run):
        # a run on other data records no canvas flags: the canvases are then drawn at the script's defaults
        for name in ("canvas_size", "num_train_canvases", "num_test_canvases"):
            setattr(run, name, getattr(run, name) or EVALUATION_DEFAULTS[name])
    data = load_detection_data(run)
    threshold = pipeline.config.background_threshold
    # no threshold labels every pixel with a class, as the pipeline does
    metrics, _ = evaluate_pipeline(pipeline, data, -1.0 if threshold is None else threshold)
    protocol = groupvit_protocol(data, pipeline, run)
    return FolderEvaluation(metrics, protocol, CARD_METRIC_NAMES, "image-segmentation", baselines(data, run.seed))
