"""The end of every run: the record of what was measured, the model card, the sample grid on it, the summary printed
for the user, and the upload. Scripts call these in order, on the main process, after saving their weights:

    record = write_run_record(args, metrics, references, run_facts, run_protocol(evaluation, args.num_eval_samples))
    write_model_card(args, "gan", record, CARD_METRIC_NAMES, tags=[...], config=...)
    print_run_summary(args.output_dir, evaluation, metrics)
    if args.push_to_hub:
        push_folder(args, "train_gan.py")

Nothing here knows a family or a dataset: the family names its template (`model_cards/<family>.md`) and the metrics
it shows; the dataset and split come from the run's evaluation protocol. Every value taken from the arguments goes
through the one redaction (`redaction.py`), so no token reaches the folder that `--push_to_hub` uploads.
"""

import argparse
import json
import math
import os

from diffusers.utils import make_image_grid
from PIL import Image

from ..model_card import card_metrics, render_model_card
from .curves import write_training_curves
from .redaction import recordable_arguments, redact_value, secret_values

# Images on the card are enlarged (nearest neighbour) to at least this many pixels a side, so small ones stay legible.
CARD_IMAGE_MIN_SIZE = 64


def save_card_grid(images: list, output_dir: str, columns: int, name: str = "samples.png") -> str:
    """Save PIL `images` as the folder's grid image (rows of `columns`, blanks after the last image), enlarged for
    the card; returns its path."""
    rows = math.ceil(len(images) / columns)
    blank = Image.new(images[0].mode, images[0].size)
    grid = make_image_grid(list(images) + [blank] * (rows * columns - len(images)), rows=rows, cols=columns)
    size = max(CARD_IMAGE_MIN_SIZE, images[0].width)
    path = os.path.join(output_dir, name)
    grid.resize((columns * size, rows * size), Image.NEAREST).save(path)
    return path


def write_run_record(
    args: argparse.Namespace, metrics: dict, references: dict | None, run_facts: dict, protocol: dict
) -> dict:
    """Write `training_args.json` (every resolved flag, secrets redacted) and `metrics.json` (the run's facts, the
    metrics, their protocol (data, split, extractor) and, when measured, the references) into `args.output_dir`;
    returns the record, redacted."""
    with open(os.path.join(args.output_dir, "training_args.json"), "w") as f:
        json.dump(recordable_arguments(args), f, indent=2)
    record = {**run_facts, "metrics": metrics, "protocol": protocol}
    if references is not None:
        record["references"] = references
    # the protocol names the data as the user gave it: a token pasted into a path stays out of it too
    record = redact_value(record, secret_values(args))
    with open(os.path.join(args.output_dir, "metrics.json"), "w") as f:
        json.dump(record, f, indent=2)
    return record


def write_model_card(
    args: argparse.Namespace,
    family: str,
    record: dict,
    metric_names: dict,
    tags: list[str],
    pipeline_tag: str = "unconditional-image-generation",
    datasets: list[str] | None = None,
    **template_values,
):
    """Render `model_cards/<family>.md` into the folder's `README.md` and return the card; draw the run's training
    curves from its TensorBoard log into `training_curves.png`, which the card shows.

    `record` is what [`write_run_record`] returned: the card shows its metrics (those of `metric_names`, a key-to-title
    mapping), protocol and references, labelled with the data and split that were evaluated. Every argument it shows
    comes from the redacted record. `datasets` are the Hub datasets of the card's metadata (by default the protocol's
    dataset unless it is a local folder). `template_values` are the family template's own (e.g. `config`, `lora`).
    """
    recorded = recordable_arguments(args)
    dataset = str(record["protocol"]["dataset"])
    # the run's own log, drawn beside the samples (a run with --report_to none has none)
    curves_image = (
        write_training_curves(args.output_dir, args.logging_dir) if args.report_to == "tensorboard" else None
    )
    card = render_model_card(
        family=family,
        model_name=recorded["hub_model_id"] or os.path.basename(os.path.abspath(recorded["output_dir"])),
        metrics=card_metrics(record["metrics"], record.get("references"), record["protocol"], metric_names),
        pipeline_tag=pipeline_tag,
        datasets=datasets if datasets is not None else [] if os.path.exists(dataset) else [dataset],  # Hub ids only
        tags=tags,
        template_values={
            "repo_id_or_path": recorded["hub_model_id"] or recorded["output_dir"],
            "protocol": record["protocol"],
            "references": record.get("references"),
            "training_args": recorded,
            "samples_image": "samples.png",
            "base_model": recorded.get("pretrained_model_name_or_path"),
            "dataset": dataset,
            "global_step": record["step"],
            "curves_image": curves_image,
            **template_values,
        },
    )
    card.save(os.path.join(args.output_dir, "README.md"))
    if getattr(args, "space", False):
        write_space_files(args.output_dir)
    return card


SPACE_APP = """\
# Written by hfgen: this folder, pushed to a Space repo (Gradio SDK), runs the model's demo.
from hfgen.demo import build_demo

build_demo(".").launch()
"""


def write_space_files(folder: str) -> None:
    """`app.py` (the demo of the folder's pipeline), `requirements.txt` (hfgen with its demo extra) and the Space
    fields of the card's metadata (`sdk: gradio`, `app_file: app.py`), so the folder runs as a Space."""
    from huggingface_hub import ModelCard

    with open(os.path.join(folder, "app.py"), "w", encoding="utf-8") as file:
        file.write(SPACE_APP)
    with open(os.path.join(folder, "requirements.txt"), "w", encoding="utf-8") as file:
        file.write("hfgen[demo]\n")
    card_path = os.path.join(folder, "README.md")
    if os.path.isfile(card_path):
        card = ModelCard.load(card_path)
        card.data.sdk, card.data.app_file = "gradio", "app.py"
        card.save(card_path)


def print_run_summary(output_dir: str, evaluation, metrics: dict, measures_distributions: bool = True) -> None:
    """What the user reads last: where the folder is, what the metrics were measured on, and the metrics; for a
    generator (`measures_distributions`) measured without a feature extractor, why FID and its kin are missing."""
    print(f"\nHub-ready folder: {os.path.abspath(output_dir)}")
    if measures_distributions and evaluation.feature_extractor is None:
        print(evaluation.note)
    print(f"metrics ({evaluation.dataset}, {evaluation.split}): " + json.dumps(metrics, indent=2))


def push_folder(args: argparse.Namespace, script: str, logger=None, also_ignore: tuple[str, ...] = ()) -> str:
    """Upload the finished folder (not checkpoints, validation grids, logs, nor the `also_ignore` patterns of the
    script's own working files) to `--hub_model_id` (default: the folder's name); returns the repo id. The token is
    `--hub_token`, else that of `hf auth login` / `HF_TOKEN`."""
    from huggingface_hub import create_repo, upload_folder

    repo_id = args.hub_model_id or os.path.basename(os.path.abspath(args.output_dir))
    repo_id = create_repo(repo_id, exist_ok=True, token=args.hub_token).repo_id
    upload_folder(
        repo_id=repo_id,
        folder_path=args.output_dir,
        token=args.hub_token,
        commit_message=f"hfgen {script}",
        ignore_patterns=["checkpoint-*", "validation/*", f"{args.logging_dir}/*", *also_ignore],
    )
    if logger is not None:
        logger.info(f"pushed {args.output_dir} to https://huggingface.co/{repo_id}")
    return repo_id
