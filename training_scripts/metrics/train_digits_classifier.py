#!/usr/bin/env python
"""Train hfgen's digits classifier, the offline feature extractor of hfgen's FID / KID / IS / precision-recall.

    OMP_NUM_THREADS=1 python training_scripts/metrics/train_digits_classifier.py     # about 4 minutes on 2 CPU cores

Trains on the train split of the built-in digits, measures the accuracy on the held-out test split once at the end,
and writes `config.json`, `model.safetensors`, `training_args.json`, `metrics.json` and the model card `README.md` into
`--output_dir`, by default `hfgen/metrics/digits_classifier/`: the folder that ships inside the package and that
`hfgen.metrics.load_digits_classifier()` loads.
"""

import argparse
import json
import os
import shlex
from importlib.resources import files

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from diffusers.optimization import get_scheduler
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from tqdm.auto import tqdm

from hfgen.data import BUILTIN_DIGITS, collate_images, image_transform, load_digits_dataset
from hfgen.models.digits_classifier import DigitsClassifier, DigitsClassifierConfig
from hfgen.models.digits_classifier.evaluation import accuracy_dataloader, accuracy_protocol, evaluate_accuracy
from hfgen.training.hub import write_space_files

SCRIPT = "training_scripts/metrics/train_digits_classifier.py"
REPOSITORY_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUTPUT_DIR = os.path.join(REPOSITORY_ROOT, "hfgen", "metrics", "digits_classifier")


def parse_args(input_args=None):
    parser = argparse.ArgumentParser(description="Train hfgen's digits classifier (the metrics' feature extractor).")
    parser.add_argument(
        "--output_dir",
        type=str,
        default=DEFAULT_OUTPUT_DIR,
        help="Where the trained folder is written; defaults to the one shipped in the package.",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--space",
        action="store_true",
        help="Also write app.py and requirements.txt, so that the folder, pushed to a Space repo, runs as a Gradio "
        "Space of the classifier's demo.",
    )
    parser.add_argument("--num_train_epochs", type=int, default=40)
    parser.add_argument("--train_batch_size", type=int, default=64, help="Per process.")
    parser.add_argument("--learning_rate", type=float, default=3e-3)
    parser.add_argument("--lr_warmup_steps", type=int, default=50)
    parser.add_argument("--weight_decay", type=float, default=1e-4)
    parser.add_argument(
        "--max_shift",
        type=int,
        default=2,
        help="Training images are shifted by up to this many pixels in each direction (augmentation).",
    )
    parser.add_argument(
        "--min_test_accuracy",
        type=float,
        default=0.97,
        help="Refuse to save a classifier whose test accuracy is below this.",
    )
    args = parser.parse_args(input_args)
    for name in ("num_train_epochs", "train_batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.max_shift < 0:
        parser.error(f"--max_shift must be >= 0, got {args.max_shift}")
    return args


def random_shift(pixel_values: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Shift each image by a random whole number of pixels in [-max_shift, max_shift], filling with background (-1)."""
    if max_shift == 0:
        return pixel_values
    height, width = pixel_values.shape[-2:]
    padded = F.pad(pixel_values, [max_shift] * 4, value=-1.0)
    offsets = torch.randint(0, 2 * max_shift + 1, (pixel_values.shape[0], 2)).tolist()
    return torch.stack([padded[i, :, dy : dy + height, dx : dx + width] for i, (dy, dx) in enumerate(offsets)])


def command_line(args) -> str:
    """The command that reproduces this run: the script with every option that differs from its default."""
    defaults = vars(parse_args([]))
    options = [f"--{name} {shlex.quote(str(value))}" for name, value in vars(args).items() if value != defaults[name]]
    # The thread count changes the order of floating-point sums, hence the last bits of the weights.
    threads = [f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}"] if "OMP_NUM_THREADS" in os.environ else []
    return " ".join([*threads, "python", SCRIPT, *options])


def save_model_card(classifier: DigitsClassifier, args, correct: int, total: int, num_train: int) -> None:
    config = classifier.config
    accuracy = correct / total
    card_data = ModelCardData(
        model_name="hfgen-digits-classifier",
        library_name="transformers",
        license="apache-2.0",
        pipeline_tag="image-classification",
        tags=["hfgen", "feature-extractor", "fid", "digits"],
        metrics=["accuracy"],
        eval_results=[
            EvalResult(
                task_type="image-classification",
                dataset_type="hfgen/digits",
                dataset_name="hfgen built-in digits (scikit-learn)",
                dataset_split="test",
                metric_type="accuracy",
                metric_value=accuracy,
            )
        ],
    )
    template = files("hfgen.model_cards") / "digits_classifier.md"
    card = ModelCard.from_template(
        card_data,
        template_str=template.read_text(encoding="utf-8"),
        test_accuracy=accuracy,
        num_test=total,
        num_errors=total - correct,
        num_train=num_train,
        image_size=config.image_size,
        max_shift=args.max_shift,
        model_type=config.model_type,
        num_parameters=f"{classifier.num_parameters():,}",
        num_levels=len(config.hidden_channels),
        layers_per_block=config.layers_per_block,
        hidden_channels=config.hidden_channels,
        feature_dim=config.hidden_channels[-1],
        classifier_dropout=config.classifier_dropout,
        num_labels=config.num_labels,
        command=command_line(args),
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        num_train_epochs=args.num_train_epochs,
        train_batch_size=args.train_batch_size,
        seed=args.seed,
    )
    card.save(os.path.join(args.output_dir, "README.md"))


def main(args):
    accelerator = Accelerator()
    set_seed(args.seed)

    # 1. model: the architecture lives in the config's defaults
    config = DigitsClassifierConfig()
    model = DigitsClassifier(config)

    # 2. data: the built-in digits at the classifier's input size, in [-1, 1]
    dataset = load_digits_dataset(config.image_size)
    transform = image_transform(config.image_size, "L")
    train_dataloader = torch.utils.data.DataLoader(
        dataset["train"].with_transform(transform),
        batch_size=args.train_batch_size,
        shuffle=True,
        collate_fn=collate_images,
    )
    test_dataloader = accuracy_dataloader(dataset["test"], config.image_size)

    # 3. optimisation
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay, fused=True
    )
    num_training_steps = args.num_train_epochs * len(train_dataloader)
    lr_scheduler = get_scheduler(
        "cosine", optimizer, num_warmup_steps=args.lr_warmup_steps, num_training_steps=num_training_steps
    )
    model, optimizer, train_dataloader, test_dataloader, lr_scheduler = accelerator.prepare(
        model, optimizer, train_dataloader, test_dataloader, lr_scheduler
    )

    # 4. the loop
    progress = tqdm(range(args.num_train_epochs), desc="epochs", disable=not accelerator.is_local_main_process)
    for _ in progress:
        model.train()
        for batch in train_dataloader:
            pixel_values = random_shift(batch["pixel_values"], args.max_shift)
            loss = model(pixel_values, labels=batch["labels"]).loss
            accelerator.backward(loss)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad()
        progress.set_postfix(loss=f"{loss.item():.4f}")

    # 5. measured once, at the end: the test split takes no part in training or in choosing settings
    correct, total = evaluate_accuracy(model, test_dataloader, accelerator)
    accuracy = correct / total
    accelerator.print(f"test accuracy: {accuracy:.4f} ({correct}/{total})")
    if accuracy < args.min_test_accuracy:
        raise RuntimeError(
            f"test accuracy {accuracy:.4f} is below --min_test_accuracy {args.min_test_accuracy}: nothing was saved"
        )

    # 6. the folder users load, with its card
    if accelerator.is_main_process:
        classifier = accelerator.unwrap_model(model)
        classifier.save_pretrained(args.output_dir)
        # The output folder is where the run went, not how it was trained (and would leak a local path).
        settings = {name: value for name, value in vars(args).items() if name != "output_dir"}
        with open(os.path.join(args.output_dir, "training_args.json"), "w") as f:
            json.dump(settings, f, indent=2)
        # what `hfgen evaluate` on the folder gives back
        record = {"metrics": {"accuracy": accuracy}, "protocol": accuracy_protocol(BUILTIN_DIGITS, "test", total)}
        with open(os.path.join(args.output_dir, "metrics.json"), "w") as f:
            json.dump(record, f, indent=2)
        save_model_card(classifier, args, correct, total, len(dataset["train"]))
        if args.space:
            write_space_files(args.output_dir)
    accelerator.end_training()
    return accuracy


if __name__ == "__main__":
    main(parse_args())
