"""The Hub-ready folder of a GAN run (GAN / DCGAN / WGAN-GP / conditional GAN, StyleGAN): pipeline, generator,
optional discriminator, sample grid, arguments, metrics and the model card."""

import json
import os

import torch
from diffusers.utils import make_image_grid

from ..metrics import metric_protocol
from ..model_card import EvalMetric, render_model_card

CARD_METRIC_NAMES = {
    "fid": "digits-FID",
    "kid_mean": "digits-KID",
    "inception_score_mean": "digits-IS",
    "precision": "precision (k=3)",
    "recall": "recall (k=3)",
    "class_accuracy": "class accuracy of conditional samples (digits classifier)",
}


def card_metrics(metrics: dict, references: dict | None, dataset_type: str, names: dict = CARD_METRIC_NAMES) -> list:
    """Measured metrics (and the FID references) as model-index entries."""
    dataset = dict(dataset_name="hfgen digits (held-out split)", dataset_type=dataset_type, dataset_split="test")
    entries = [EvalMetric(name=names[key], type=key, value=float(metrics[key]), **dataset)
               for key in names if key in metrics]
    for reference, values in (references or {}).items():
        entries.append(EvalMetric(name=f"digits-FID reference: {reference}", type=f"fid_{reference}",
                                  value=float(values["fid"]), **dataset))
    return entries


def save_gan_folder(
    output_dir: str,
    pipeline,
    generator,
    discriminator,
    args,
    metrics: dict,
    references: dict | None,
    run: dict,
    family: str,
    tags: list[str],
    sample_kwargs: dict,
    dataset_type: str,
    save_pipeline: bool = True,
) -> None:
    r"""
    Write what users load: the pipeline folder (`model_index.json` + component folder), the generator's
    `config.json` + `model.safetensors` at the top (for `from_pretrained(folder)` / `AutoModel`), the discriminator
    in `discriminator/` when given (for fine-tuning), `samples.png`, `training_args.json`, `metrics.json` (metrics,
    protocol, references, run facts) and the model card `README.md`.

    `sample_kwargs` go to the pipeline for the 8x8 sample grid (e.g. class labels, truncation). A LoRA run passes
    its PEFT model as `generator` and `save_pipeline=False`: the folder then holds the adapter only
    (`adapter_model.safetensors` + `adapter_config.json`), with `pipeline` (a merged copy) drawing the samples.
    """
    pipeline.set_progress_bar_config(disable=True)
    if save_pipeline:
        pipeline.save_pretrained(output_dir)
    generator.save_pretrained(output_dir)
    if discriminator is not None:
        discriminator.save_pretrained(os.path.join(output_dir, "discriminator"))
    samples = pipeline(batch_size=64, generator=torch.Generator(device="cpu").manual_seed(args.seed),
                       **sample_kwargs).images
    size = max(64, samples[0].width)
    make_image_grid(samples, rows=8, cols=8).resize((8 * size, 8 * size), 0).save(os.path.join(output_dir, "samples.png"))
    with open(os.path.join(output_dir, "training_args.json"), "w") as f:
        json.dump(vars(args), f, indent=2)
    record = {**run, "metrics": metrics, "protocol": metric_protocol(args.num_eval_samples)}
    if references is not None:
        record["references"] = references
    with open(os.path.join(output_dir, "metrics.json"), "w") as f:
        json.dump(record, f, indent=2)
    dataset = args.train_data_dir or args.dataset_name
    card = render_model_card(
        family=family,
        model_name=args.hub_model_id or os.path.basename(os.path.abspath(output_dir)),
        metrics=card_metrics(metrics, references, dataset_type),
        pipeline_tag="unconditional-image-generation",
        datasets=[dataset] if args.train_data_dir is None else [],
        tags=tags,
        template_values={
            "repo_id_or_path": args.hub_model_id or output_dir,
            "protocol": record["protocol"],
            "references": references,
            "training_args": vars(args),
            "samples_image": "samples.png",
            "base_model": args.pretrained_model_name_or_path,
            "dataset": dataset,
            "global_step": run["step"],
            "config": pipeline.components[next(iter(pipeline.components))].config,
            "lora": not save_pipeline,
            "has_discriminator": discriminator is not None,
            "sample_kwargs": sample_kwargs,
        },
    )
    card.save(os.path.join(output_dir, "README.md"))
