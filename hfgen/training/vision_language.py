"""What the vision-language scripts (CLIP, BLIP, OWL-ViT, GroupViT) share: LoRA flags and adapters on transformers'
encoders, loading a pretrained folder with one-line errors, the detection data (built-in canvases or the user's boxes)
with its flags, images in the normalisation a processor expects, and the "chance" baselines their metrics are read
against.

Like the other kind modules it knows no model family of hfgen's: the transformers classes are passed in.
"""

import argparse
from dataclasses import dataclass

import torch
from datasets import Dataset, DatasetDict

from ..data import (
    BUILTIN_CANVASES,
    load_detection_dataset,
    load_digit_canvases,
    parse_validation_split,
    split_for_evaluation,
)
from ..data.vision_language import CANVAS_TEST_SIZE
from .cli import check_flag_ranges


def add_lora_arguments(parser: argparse.ArgumentParser, default_targets: list[str]) -> None:
    """`--use_lora` and the adapter's shape; `default_targets` are the module names LoRA reaches by default."""
    parser.add_argument(
        "--use_lora",
        action="store_true",
        help="Train low-rank adapters (PEFT LoRA) on the attention projections and keep the rest frozen; the "
        "folder then holds the adapter, which loads on top of the base model.",
    )
    parser.add_argument("--lora_rank", type=int, default=8)
    parser.add_argument("--lora_alpha", type=float, default=None, help="LoRA scaling numerator; default: the rank.")
    parser.add_argument("--lora_dropout", type=float, default=0.0)
    parser.add_argument(
        "--lora_target_modules",
        type=str,
        nargs="+",
        default=default_targets,
        help="Names of the layers LoRA adapts (nn.Linear / nn.Conv2d / nn.Embedding).",
    )


def add_model_arguments(parser: argparse.ArgumentParser, pretrained: str, scratch: str) -> None:
    """`--model_name_or_path` (`pretrained` says what its folder holds), `--train_from_scratch_config` (`scratch` says
    which config and what the script sets in it) and `--learning_rate`, whose default follows the choice between them
    (see [`resolve_model_arguments`])."""
    parser.add_argument(
        "--model_name_or_path",
        type=str,
        default=None,
        help=f"A pretrained {pretrained} to fine-tune. Without it, a small model is trained from scratch.",
    )
    parser.add_argument("--train_from_scratch_config", type=str, default=None, help=scratch)
    parser.add_argument(
        "--learning_rate",
        type=float,
        default=None,
        help="Default: 1e-3 from scratch, 1e-4 with LoRA, 1e-5 for full fine-tuning.",
    )


def resolve_model_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse a pretrained model and a scratch config together; fill in the default learning rate of the run's kind
    (a new model takes large steps, an adapter smaller ones, a whole pretrained model the smallest)."""
    if args.model_name_or_path is not None and args.train_from_scratch_config is not None:
        parser.error("--train_from_scratch_config builds a new model: pass it or --model_name_or_path, not both")
    if args.learning_rate is None:
        args.learning_rate = 1e-4 if args.use_lora else 1e-5 if args.model_name_or_path else 1e-3


def add_patch_loss_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--patch_loss_weight",
        type=float,
        default=None,
        help="Weight of the training-only loss that names the digit (or background) in each image patch, read off the "
        "built-in canvases' pixel masks (0 turns it off). Default: 1 on the built-in canvases, 0 on other data, which "
        "has no masks.",
    )


def resolve_patch_loss_weight(parser: argparse.ArgumentParser, args: argparse.Namespace, builtin: bool) -> None:
    """`--patch_loss_weight` left out: 1 on the built-in canvases (`builtin`), 0 on other data; a positive weight on
    data without the canvases' masks is a one-line error. Its range is checked with the script's other flags."""
    if args.patch_loss_weight is None:
        args.patch_loss_weight = 1.0 if builtin else 0.0
    elif args.patch_loss_weight > 0 and not builtin:
        parser.error(
            "--patch_loss_weight reads the built-in canvases' pixel masks, and your data has none: leave it out"
        )


def weight_decay_groups(parameters, weight_decay: float) -> list[dict]:
    """The trained `parameters` as optimizer groups with weight decay on weight matrices only: gains, biases and
    scalars such as a learned temperature are left alone, as CLIP and BLIP train them."""
    parameters = [parameter for parameter in parameters if parameter.requires_grad]
    return [
        {"params": [p for p in parameters if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in parameters if p.ndim < 2], "weight_decay": 0.0},
    ]


def check_lora_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    check_flag_ranges(parser, args, {"lora_rank": (1, None, "closed"), "lora_dropout": (0, 1, "high_open")})
    if args.lora_alpha is None:
        args.lora_alpha = float(args.lora_rank)
    if args.use_lora and args.model_name_or_path is None:
        parser.error("--use_lora adapts a pretrained model: pass --model_name_or_path <folder or Hub id>")


def add_lora_adapter(model, args: argparse.Namespace):
    """`model` wrapped by PEFT with a LoRA adapter on the layers `--lora_target_modules` names; everything else is
    frozen. The wrapper forwards attribute access (config, methods) to the model, and its `save_pretrained` writes the
    adapter alone. A target that matches no layer is a one-line error naming the flag."""
    from peft import LoraConfig, get_peft_model

    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [target for target in args.lora_target_modules if target not in names]
    if missing:
        raise ValueError(
            f"--lora_target_modules {' '.join(missing)} match no layer of {type(model).__name__}; its layers include "
            f"{', '.join(sorted(name for name in names if name.endswith('proj'))[:12])}"
        )
    config = LoraConfig(
        r=args.lora_rank,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=list(args.lora_target_modules),
        init_lora_weights="gaussian",
    )
    return get_peft_model(model, config)


def load_pretrained(model_class, processor_class, path: str):
    """`model_class` and `processor_class` from the folder or Hub id `path`; a path that holds neither (or another
    kind of model) is a one-line error naming `--model_name_or_path`."""
    try:
        model = model_class.from_pretrained(path)
        processor = processor_class.from_pretrained(path)
    except (OSError, ValueError, KeyError, TypeError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"--model_name_or_path {path!r} is not a {model_class.__name__} folder with its processor "
            f"({first_line}); give a folder saved by {model_class.__name__}.save_pretrained and "
            f"{processor_class.__name__}.save_pretrained, or leave it out to train from scratch"
        ) from None
    return model, processor


def processor_pixels(images: torch.Tensor, image_processor) -> torch.Tensor:
    """Images in [-1, 1] (greyscale or RGB, already at the model's size) in the normalisation `image_processor`
    applies: RGB, `(x - mean) / std` on the [0, 1] scale."""
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    mean = torch.tensor(image_processor.image_mean, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(image_processor.image_std, device=images.device).view(1, 3, 1, 1)
    return ((images + 1) / 2 - mean) / std


def retrieval_chance(positives: torch.Tensor, k: int) -> dict[str, float]:
    """Expected recall@k of a model that ranks at random, for the `positives` matrix of a retrieval evaluation:
    1 - C(n - p, k) / C(n, k) per query with p positives among n candidates, averaged over queries."""

    def expected(matches: torch.Tensor) -> float:
        candidates = matches.shape[1]
        chances = []
        for count in matches.sum(dim=1).tolist():
            miss = 1.0
            for drawn in range(min(k, candidates)):
                miss *= max(0.0, (candidates - count - drawn) / (candidates - drawn))
            chances.append(1.0 - miss)
        return sum(chances) / len(chances)

    return {
        f"image_to_text_recall@{k}": expected(positives),
        f"text_to_image_recall@{k}": expected(positives.t()),
    }


def load_config(config_class, path: str, flag: str):
    """`config_class` from the folder or `config.json` `path`; anything else is a one-line error naming `flag`."""
    try:
        return config_class.from_pretrained(path)
    except (OSError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"{flag} {path!r} is not a {config_class.__name__} folder or config.json ({first_line})"
        ) from None


def add_detection_data_arguments(parser: argparse.ArgumentParser, canvas_size: int, train_canvases: int) -> None:
    """The data flags of the scripts that learn from boxes: `--dataset_name` (the built-in canvases by default, drawn
    at `canvas_size` px, `train_canvases` of them for training unless the flags say otherwise) or `--train_data_dir`
    (a metadata.jsonl of COCO boxes), `--class_names`, `--validation_split` and the canvases' own flags."""
    parser.add_argument(
        "--dataset_name",
        type=str,
        default=None,
        help=f"A `datasets` name or local folder with an `objects` column of COCO boxes; {BUILTIN_CANVASES} (digit "
        "scans pasted on black canvases, with their boxes and pixel masks) is built in and the default.",
    )
    parser.set_defaults(builtin_dataset=BUILTIN_CANVASES)
    parser.add_argument(
        "--train_data_dir",
        type=str,
        default=None,
        help='A local folder of images with a metadata.jsonl: {"file_name": "a.png", "objects": {"bbox": [[x, y, '
        'width, height], ...], "category": ["cat", ...]}} per image (COCO boxes in pixels).',
    )
    parser.add_argument(
        "--class_names",
        type=str,
        nargs="+",
        default=None,
        help="Names of the classes in id order, for data whose categories are integer ids without names.",
    )
    parser.add_argument(
        "--validation_split",
        type=parse_validation_split,
        default=None,
        help="Images of the training data held out for the metrics: a fraction (0.1) or a count (50). By default "
        "the dataset's own validation / test split, else 10%% of the images (at least 4), fixed by --seed.",
    )
    parser.add_argument(
        "--canvas_size",
        type=int,
        default=None,
        help=f"Side of the built-in canvases in pixels (default {canvas_size}).",
    )
    parser.add_argument(
        "--num_train_canvases", type=int, default=None, help=f"Built-in training canvases (default {train_canvases})."
    )
    parser.add_argument(
        "--num_test_canvases", type=int, default=None, help=f"Built-in test canvases (default {CANVAS_TEST_SIZE})."
    )


def resolve_detection_data_arguments(
    parser: argparse.ArgumentParser, args: argparse.Namespace, canvas_size: int, train_canvases: int
) -> bool:
    """Check the flags of [`add_detection_data_arguments`] and fill in the canvases' defaults; returns whether the
    run uses the built-in canvases."""
    check_flag_ranges(
        parser,
        args,
        {
            "canvas_size": (32, None, "closed"),
            "num_train_canvases": (1, None, "closed"),
            "num_test_canvases": (2, None, "closed"),
        },
    )
    builtin = args.train_data_dir is None and args.dataset_name == BUILTIN_CANVASES
    canvas_flags = [f"--{name}" for name in ("canvas_size", "num_train_canvases", "num_test_canvases")]
    if not builtin and any(getattr(args, flag[2:]) is not None for flag in canvas_flags):
        parser.error(f"{', '.join(canvas_flags)} shape the built-in canvases; they do not apply to your data")
    if builtin:
        args.canvas_size = args.canvas_size or canvas_size
        args.num_train_canvases = args.num_train_canvases or train_canvases
        args.num_test_canvases = args.num_test_canvases or CANVAS_TEST_SIZE
        if args.class_names is not None:
            parser.error("--class_names names the classes of your data; the built-in canvases name theirs")
    return builtin


@dataclass
class DetectionData:
    """The run's images with their boxes (`image`, `objects` as hfgen's detection data holds them: xyxy pixel boxes
    and class ids; the canvases' `segmentation` masks too), split into training and held-out images, and the class
    names."""

    dataset: str
    split: str
    train: Dataset
    eval: Dataset
    class_names: list[str]


def load_detection_data(args: argparse.Namespace) -> DetectionData:
    """The built-in canvases (at --canvas_size, --num_*_canvases) or the user's detection data, split for evaluation;
    data without boxes to learn from or to measure on is a one-line error before anything is built."""
    if args.train_data_dir is None and args.dataset_name == BUILTIN_CANVASES:
        dataset = load_digit_canvases(args.canvas_size, args.num_train_canvases, args.num_test_canvases)
    else:
        dataset = load_detection_dataset(args.train_data_dir, args.dataset_name, args.class_names)
    kept = [column for column in ("image", "objects", "segmentation") if column in dataset["train"].column_names]
    dataset = DatasetDict({name: split.select_columns(kept) for name, split in dataset.items()})
    splits = split_for_evaluation(dataset, args.validation_split, seed=args.seed)
    source = args.train_data_dir or args.dataset_name
    class_names = list(splits.train.features["objects"]["category"].feature.names)
    for part, images in (("training", splits.train), (f"evaluation ({splits.name})", splits.evaluation)):
        if not any(objects["bbox"] for objects in images["objects"]):
            raise ValueError(
                f"the {part} images of {source} hold no box: the model learns and is measured on boxes, so give "
                "images with objects (or hold out others with --validation_split)"
            )
    return DetectionData(source, splits.name, splits.train, splits.evaluation, class_names)
