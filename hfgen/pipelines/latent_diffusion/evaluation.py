"""Measuring latent diffusion folders as their training scripts do, at the end of a run and on a saved folder
(`hfgen evaluate`).

- A text-to-image pipeline (train_ldm.py; or its `--use_lora` weights on the base pipeline): FID and its kin of
  samples prompted with the data's captions (written from class labels, or its caption column) against the held-out
  images, the diversity ratio, prompt accuracy on the built-in digits, FID and prompt accuracy also without guidance
  for class prompts, and the CLIP score when the run had a CLIP model.
- A ControlNet (train_controlnet.py) on its base pipeline: the same distribution metrics of samples drawn from the
  control maps of held-out images, and how well they follow those maps (edge F1, mask IoU or blur PSNR), beside the
  base model alone on the same prompts and noise.
- DreamBooth LoRA weights (train_dreambooth_lora.py) on their base pipeline: how much the instance prompt's samples
  look like the subject's images (also the base model's, before training), and how far the class prompt's samples
  drifted from the base model's.

A ControlNet or LoRA folder does not hold its base: the run's `training_args.json` names it
(`pretrained_model_name_or_path`), with the data, the control maps and the subjects it was measured on.
"""

import argparse
import json
import logging
import os

import datasets
import torch
from accelerate.utils import gather_object
from diffusers import DDIMScheduler
from diffusers.utils.torch_utils import randn_tensor

from ...data import BUILTIN_DIGITS, decoded_if_small, image_transform, load_image_dataset
from ...data.captions import ColumnCaptions, LabelCaptions, dataset_captions
from ...data.control import control_maps
from ...metrics import load_clip_score, resolve_feature_extractor
from ...metrics.control import CONTROL_METRICS, control_agreement
from ...models.modeling_utils import folder_architecture, folder_file
from ...training.evaluation import (
    DISTRIBUTION_METRIC_NAMES,
    FolderEvaluation,
    evaluate_generator,
    load_run_data,
    run_protocol,
)
from ..sampling import load_pipeline, pipeline_class_of
from .folders import controlnet_pipeline, lora_pipeline, recorded_base
from .pipeline_latent_diffusion import LatentDiffusionPipeline
from .pipeline_latent_diffusion_controlnet import LatentDiffusionControlNetPipeline

# Guidance and DDIM steps of train_ldm.py's samples.
GUIDANCE_SCALE = 3.0
NUM_INFERENCE_STEPS = 25

# The settings of a pipeline folder measured without its run's record (train_ldm.py's defaults). ControlNet and LoRA
# folders are only measured with their record, which names the base pipeline they need.
EVALUATION_DEFAULTS = dict(
    caption_column=None,
    guidance_scale=GUIDANCE_SCALE,
    num_inference_steps=NUM_INFERENCE_STEPS,
    clip_model_name_or_path=None,
)


def read_as_generated(run: argparse.Namespace, pipeline) -> None:
    """The pipeline's own image size and colours decide how the real images are read (the scripts take them from
    the base or the first stage the same way)."""
    run.resolution = pipeline.image_size[0]
    run.color_mode = "L" if pipeline.vae.config.in_channels == 1 else "RGB"


# --- text to image (train_ldm.py) ---


@torch.no_grad()
def measure_text_to_image(
    pipeline, captions, data, args, accelerator, guidance_scale: float, clip_metric=None
) -> dict:
    """Metrics of samples drawn with `guidance_scale`: distribution metrics against the evaluation images, class
    accuracy of prompted classes on the digits, and the CLIP score when a CLIP model is given."""
    num_classes = len(captions.phrases) if isinstance(captions, LabelCaptions) else 0
    prompted = []

    def sample(batch_size, labels, generator):
        if labels is not None:
            prompts = [captions.prompt(int(label)) for label in labels]
        elif isinstance(captions, ColumnCaptions):
            # captions of the data drawn at random (from the evaluation generator), not the first ones every time
            picks = torch.randint(0, len(captions.texts), (batch_size,), generator=generator).tolist()
            prompts = [captions.texts[pick] for pick in picks]
        else:
            prompts = [""] * batch_size
        images = pipeline(
            prompt=prompts,
            guidance_scale=guidance_scale if any(prompts) else 1.0,
            num_inference_steps=args.num_inference_steps,
            generator=generator,
            output_type="pt",
        ).images
        prompted.append((images * 2 - 1, prompts))
        return images * 2 - 1

    metrics = evaluate_generator(
        sample, data.evaluation, data.eval, accelerator, args.num_eval_samples, args.seed, num_classes=num_classes
    )
    if clip_metric is not None and isinstance(captions, (LabelCaptions, ColumnCaptions)):
        # every process scores its own samples; the mean is over all of them
        local = [clip_metric(images, prompts).cpu() for images, prompts in prompted]
        metrics["clip_score"] = torch.cat(gather_object(local)).mean().item()
    return metrics


def unguided_metrics(pipeline, captions, data, args, accelerator) -> dict:
    """FID and prompt accuracy without guidance (scale 1), as `<name>_without_guidance`, for class prompts measured
    with other guidance: what the guidance buys. Empty otherwise."""
    if not isinstance(captions, LabelCaptions) or args.guidance_scale == 1:
        return {}
    unguided = measure_text_to_image(pipeline, captions, data, args, accelerator, 1.0)
    return {f"{name}_without_guidance": unguided[name] for name in ("fid", "class_accuracy") if name in unguided}


TEXT_TO_IMAGE_METRIC_NAMES = {
    **DISTRIBUTION_METRIC_NAMES,
    "class_accuracy": "prompt accuracy (digits classifier reads the prompted class)",
    "class_accuracy_without_guidance": "prompt accuracy without guidance (scale 1)",
    "fid_without_guidance": "FID without guidance (scale 1)",
    "clip_score": "CLIP score",
}


def text_to_image_protocol(data, captions, args, sampler: str = "DDIM (eta 0)") -> dict:
    """How train_ldm.py's numbers were measured (with `sampler`, the scheduler's name), for metrics.json and the
    card."""
    protocol = {
        **run_protocol(data.evaluation, args.num_eval_samples),
        "sampler": f"{sampler}, {args.num_inference_steps} steps, guidance scale {args.guidance_scale}",
    }
    if isinstance(captions, LabelCaptions):
        protocol["prompts"] = f"'{captions.templates[0]}' with the class names, classes balanced"
    return protocol


def evaluate_text_to_image(pipeline, run: argparse.Namespace, accelerator) -> FolderEvaluation:
    pipeline.to(accelerator.device)
    read_as_generated(run, pipeline)
    data = load_run_data(run, accelerator, logging.getLogger(__name__))
    captions = dataset_captions(data.evaluation.train, run.caption_column)
    clip_metric = None
    if run.clip_model_name_or_path:
        clip_metric = load_clip_score(run.clip_model_name_or_path, accelerator.device)
    metrics = measure_text_to_image(pipeline, captions, data, run, accelerator, run.guidance_scale, clip_metric)
    metrics.update(unguided_metrics(pipeline, captions, data, run, accelerator))
    # a folder that samples with another scheduler than DDIM (a latent consistency model's LCMScheduler) names it
    sampler = "DDIM (eta 0)" if isinstance(pipeline.scheduler, DDIMScheduler) else type(pipeline.scheduler).__name__
    protocol = text_to_image_protocol(data, captions, run, sampler)
    return FolderEvaluation(metrics, protocol, TEXT_TO_IMAGE_METRIC_NAMES, "text-to-image")


# --- ControlNet (train_controlnet.py) ---


def computes_controls(args) -> bool:
    """Whether the control maps are computed from the images (no column or folder of control images given)."""
    return not (args.conditioning_image_column or args.conditioning_data_dir)


def control_parameters(args) -> dict:
    """The keyword arguments of `args.control_type`'s function in `hfgen.data.control`."""
    return {
        "canny": {
            "low_threshold": args.canny_low_threshold,
            "high_threshold": args.canny_high_threshold,
            "sigma": args.canny_sigma,
        },
        "sobel": {"threshold": args.sobel_threshold},
        "blur": {"sigma": args.blur_sigma},
        "mask": {"threshold": args.mask_threshold},
    }.get(args.control_type, {})


def conditioning_images(split: datasets.Dataset, args) -> datasets.Dataset:
    """The control images paired with `split`'s images, as a dataset with an `image` column in the same order: the
    --conditioning_image_column of the data, or the files of --conditioning_data_dir at the same relative paths."""
    if args.conditioning_image_column is not None:
        if args.conditioning_image_column not in split.column_names:
            raise ValueError(
                f"--conditioning_image_column {args.conditioning_image_column!r} is not a column of the data (its "
                f"columns: {', '.join(split.column_names)})"
            )
        return split.select_columns([args.conditioning_image_column]).rename_column(
            args.conditioning_image_column, "image"
        )
    paths = []
    for record in split.cast_column("image", datasets.Image(decode=False))["image"]:
        relative = os.path.relpath(record["path"], args.train_data_dir)
        path = os.path.join(args.conditioning_data_dir, relative)
        if not os.path.isfile(path):
            raise ValueError(
                f"--conditioning_data_dir has no control image {path!r} for the training image {relative!r}: give "
                "every image of --train_data_dir a control image at the same relative path"
            )
        paths.append(path)
    return datasets.Dataset.from_dict({"image": paths}).cast_column("image", datasets.Image())


class ControlSource:
    """The control maps of the run's images, in [0, 1] with 3 channels: computed from the images themselves, or read
    from the paired control images of the training and evaluation splits (decoded once, by index)."""

    def __init__(self, args, data):
        self.args = args
        self.parameters = control_parameters(args)
        self.read = {}
        if not computes_controls(args):
            transform = image_transform(args.resolution, "RGB")
            for name, split in (("train", data.evaluation.train), ("eval", data.evaluation.evaluation)):
                self.read[name] = decoded_if_small(conditioning_images(split, args), transform, args.resolution, 3)

    def maps(self, pixel_values: torch.Tensor, indices: list[int], split: str) -> torch.Tensor:
        if computes_controls(self.args):
            return control_maps(pixel_values, self.args.control_type, **self.parameters)
        read = torch.stack([self.read[split][index]["pixel_values"] for index in indices])
        return ((read + 1) / 2).to(pixel_values.device)


class EvaluationPrompts:
    """Prompts and control maps of evaluation samples: for labelled data an evaluation image of the asked class, drawn
    from the generator, prompted with its class; otherwise any evaluation image with its caption (or none)."""

    def __init__(self, data, captions, args):
        self.data, self.captions = data, captions
        evaluation = data.evaluation.evaluation
        self.texts = [str(text) for text in evaluation[args.caption_column]] if args.caption_column else None
        self.by_class = {}
        if isinstance(captions, LabelCaptions):
            for index, label in enumerate(evaluation["label"]):
                self.by_class.setdefault(int(label), []).append(index)

    def draw(self, count: int, labels, generator) -> tuple[list[int], list[str]]:
        if labels is not None:
            indices = []
            for label in labels.tolist():
                pool = self.by_class[label]
                indices.append(pool[torch.randint(0, len(pool), (1,), generator=generator).item()])
            return indices, [self.captions.prompt(label) for label in labels.tolist()]
        indices = torch.randint(0, len(self.data.eval), (count,), generator=generator).tolist()
        return indices, [self.texts[index] for index in indices] if self.texts else [""] * count


@torch.no_grad()
def measure_controlnet(pipeline, controls, prompts, data, args, accelerator, with_base: bool) -> dict:
    """Metrics of samples drawn from held-out control maps: distribution metrics against the evaluation images, class
    accuracy of prompted classes on the digits, and how well the samples follow their controls; with `with_base`,
    also that of the base model without the ControlNet (same prompts, same noise)."""
    num_classes = len(prompts.captions.phrases) if isinstance(prompts.captions, LabelCaptions) else 0
    metric = CONTROL_METRICS.get(args.control_type)
    agreement, base_agreement = [], []

    def sample(batch_size, labels, generator):
        indices, texts = prompts.draw(batch_size, labels.cpu() if labels is not None else None, generator)
        pixel_values = torch.stack([data.eval[index]["pixel_values"] for index in indices])
        control = controls.maps(pixel_values, indices, "eval")
        latents = randn_tensor((batch_size, *pipeline._latent_shape), generator=generator)
        arguments = dict(
            prompt=texts,
            image=control,
            latents=latents,
            guidance_scale=args.guidance_scale if any(texts) else 1.0,
            num_inference_steps=args.num_inference_steps,
            output_type="pt",
        )
        images = pipeline(**arguments, controlnet_conditioning_scale=args.controlnet_conditioning_scale).images * 2 - 1
        if metric is not None:
            agreement.append(control_agreement(control, images, args.control_type, **tolerance, **controls.parameters))
            if with_base:
                base = pipeline(**arguments, controlnet_conditioning_scale=0.0).images * 2 - 1
                base_agreement.append(
                    control_agreement(control, base, args.control_type, **tolerance, **controls.parameters)
                )
        return images

    tolerance = {"tolerance": args.edge_tolerance} if metric == "edge_f1" else {}
    # the steps of a stochastic scheduler draw from the global RNG (the pipeline gets no generator beside the
    # latents): seeded from the run's seed so a saved folder measures the same, and forked so a validation in the
    # middle of a run leaves the training noise as it was
    device = accelerator.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(args.seed + accelerator.process_index)
        metrics = evaluate_generator(
            sample, data.evaluation, data.eval, accelerator, args.num_eval_samples, args.seed, num_classes=num_classes
        )
    if metric is not None:
        metrics[metric] = torch.cat(gather_object(agreement)).mean().item()
        if with_base:
            metrics[f"{metric}_without_controlnet"] = torch.cat(gather_object(base_agreement)).mean().item()
    return metrics


CONTROLNET_METRIC_NAMES = {
    **DISTRIBUTION_METRIC_NAMES,
    "class_accuracy": "prompt accuracy (digits classifier reads the prompted class)",
    "edge_f1": "edge agreement with the control (F1)",
    "edge_f1_without_controlnet": "edge agreement of the base model alone (F1)",
    "mask_iou": "mask agreement with the control (IoU)",
    "mask_iou_without_controlnet": "mask agreement of the base model alone (IoU)",
    "blur_psnr": "blurred-image agreement with the control (PSNR, dB)",
    "blur_psnr_without_controlnet": "blurred-image agreement of the base model alone (PSNR, dB)",
}


def controlnet_protocol(data, pipeline, args) -> dict:
    """How train_controlnet.py's numbers were measured, for metrics.json and the card."""
    protocol = {
        **run_protocol(data.evaluation, args.num_eval_samples),
        "sampler": f"{type(pipeline.scheduler).__name__}, {args.num_inference_steps} steps, guidance scale "
        f"{args.guidance_scale}, ControlNet scale {args.controlnet_conditioning_scale}",
        "control": f"{args.control_type or 'unnamed'} maps of held-out images"
        + (f" {control_parameters(args)}" if computes_controls(args) else ", read from the data"),
    }
    if args.control_type in ("canny", "sobel"):
        protocol["edge_agreement"] = (
            f"F1 of the samples' edges (same detector) against the control edges, {args.edge_tolerance} px "
            "tolerance; the base model alone draws from the same prompts and noise"
        )
    return protocol


def evaluate_controlnet(folder: str, base: str, run: argparse.Namespace, accelerator) -> FolderEvaluation:
    pipeline = controlnet_pipeline(folder, base)
    pipeline.to(accelerator.device)
    read_as_generated(run, pipeline)
    data = load_run_data(run, accelerator, logging.getLogger(__name__))
    captions = dataset_captions(data.evaluation.train, run.caption_column)
    controls, prompts = ControlSource(run, data), EvaluationPrompts(data, captions, run)
    metrics = measure_controlnet(pipeline, controls, prompts, data, run, accelerator, with_base=True)
    protocol = controlnet_protocol(data, pipeline, run)
    return FolderEvaluation(metrics, protocol, CONTROLNET_METRIC_NAMES, "text-to-image")


# --- DreamBooth (train_dreambooth_lora.py) ---


CONCEPT_KEYS = ("instance_prompt", "instance_data_dir", "class_prompt", "class_data_dir")


def read_concepts(args) -> list[dict]:
    """The subjects of the run: the one of the flags, or those of --concepts_list, checked (one-line errors naming the
    file, the entry and the key)."""
    if args.concepts_list is None:
        return [{key: getattr(args, key) for key in CONCEPT_KEYS}]
    try:
        with open(args.concepts_list, encoding="utf-8") as file:
            concepts = json.load(file)
    except FileNotFoundError:
        raise ValueError(f"--concepts_list {args.concepts_list!r} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"--concepts_list {args.concepts_list!r} is not valid JSON ({error})") from None
    if not isinstance(concepts, list) or not concepts or not all(isinstance(item, dict) for item in concepts):
        raise ValueError(f"--concepts_list {args.concepts_list!r} must hold a non-empty JSON list of objects")
    required = ["instance_prompt", "instance_data_dir"] + (["class_prompt"] if args.with_prior_preservation else [])
    for index, concept in enumerate(concepts):
        unknown = sorted(set(concept) - set(CONCEPT_KEYS))
        if unknown:
            raise ValueError(
                f"--concepts_list entry {index} has unknown key(s) {', '.join(unknown)} (known: "
                f"{', '.join(CONCEPT_KEYS)})"
            )
        for key in required:
            if not isinstance(concept.get(key), str) or not concept[key]:
                raise ValueError(f"--concepts_list entry {index} needs a {key!r} string")
    return [{key: concept.get(key) for key in CONCEPT_KEYS} for concept in concepts]


def load_folder_images(folder: str, args) -> torch.Tensor:
    """Every image below `folder` (each one decoded first, a broken file named) as `(count, channels, resolution,
    resolution)` in [-1, 1], resized and centre-cropped as the training images of every script."""
    dataset = load_image_dataset(train_data_dir=folder, resolution=args.resolution)["train"]
    return torch.stack(image_transform(args.resolution, args.color_mode)(dataset[:])["pixel_values"])


@torch.no_grad()
def sample_images(pipeline, prompt: str, count: int, seed: int, args, batch_size: int = 32) -> torch.Tensor:
    """`count` samples of `prompt` in [-1, 1], the i-th drawn from the generator of seed `seed + i` (its starting noise
    and, with a stochastic scheduler, the noise of its steps): the same images whatever the batch size, and
    comparable between two models."""
    images = []
    for start in range(0, count, batch_size):
        generators = [
            torch.Generator().manual_seed(seed + index) for index in range(start, min(count, start + batch_size))
        ]
        latents = torch.stack([randn_tensor(pipeline._latent_shape, generator=generator) for generator in generators])
        images.append(
            pipeline(
                prompt=[prompt] * latents.shape[0],
                latents=latents,
                generator=generators,
                guidance_scale=args.guidance_scale if prompt else 1.0,
                num_inference_steps=args.num_inference_steps,
                output_type="pt",
            ).images
            * 2
            - 1
        )
    return torch.cat(images)


def feature_extractor(args, device):
    """The features of the metrics, and their name: the --metrics_model backbone, hfgen's digits classifier, or the
    pixels themselves (None)."""
    if args.metrics_model is None:
        return None, "pixels"
    if args.metrics_model == BUILTIN_DIGITS:
        return resolve_feature_extractor(None, BUILTIN_DIGITS, device=device)[0], "hfgen's digits classifier"
    return resolve_feature_extractor(args.metrics_model, None, device=device)[0], args.metrics_model


@torch.no_grad()
def features(images: torch.Tensor, extractor) -> torch.Tensor:
    """Unit-length features of images in [-1, 1]: the extractor's, or the pixels centred on their mean."""
    if extractor is None:
        flat = images.flatten(1).float()
        flat = flat - flat.mean(dim=1, keepdim=True)
    else:
        device = next(extractor.parameters()).device
        flat = extractor(images.to(device)).float().cpu()
    return torch.nn.functional.normalize(flat, dim=1)


def instance_fidelity(samples: torch.Tensor, instances: torch.Tensor, extractor) -> float:
    """Mean cosine similarity of every sample to every instance image (the DINO score of Ruiz et al., in the chosen
    features): how much the samples look like the subject."""
    return (features(samples, extractor) @ features(instances, extractor).T).mean().item()


def class_drift(samples: torch.Tensor, base_samples: torch.Tensor, extractor) -> float:
    """Mean cosine distance between each class-prompt sample and the base model's sample from the same noise: how
    far training moved the class (0: not at all)."""
    return (1 - (features(samples, extractor) * features(base_samples, extractor)).sum(dim=1)).mean().item()


@torch.no_grad()
def base_measurements(pipeline, concepts, instance_images, extractor, args) -> tuple[dict, list]:
    """What the base model draws before any adapter exists: its fidelity to the instance images
    (`instance_fidelity_base`, averaged over the subjects), and its class-prompt samples that class drift is measured
    from (None for a subject without a class prompt)."""
    class_samples = [
        sample_images(pipeline, concept["class_prompt"], args.num_eval_samples, args.seed, args)
        if concept["class_prompt"]
        else None
        for concept in concepts
    ]
    fidelity = [
        instance_fidelity(
            sample_images(pipeline, concept["instance_prompt"], args.num_eval_samples, args.seed, args),
            instance_images[index],
            extractor,
        )
        for index, concept in enumerate(concepts)
    ]
    return {"instance_fidelity_base": sum(fidelity) / len(fidelity)}, class_samples


@torch.no_grad()
def measure_dreambooth(pipeline, concepts, instance_images, base_class_samples, extractor, args) -> dict:
    """Fidelity of instance-prompt samples to the instance images, and drift of class-prompt samples from the base
    model's, averaged over the subjects (on the main process: a few dozen samples per subject)."""
    fidelity, drift = [], []
    for index, concept in enumerate(concepts):
        samples = sample_images(pipeline, concept["instance_prompt"], args.num_eval_samples, args.seed, args)
        fidelity.append(instance_fidelity(samples, instance_images[index], extractor))
        if concept["class_prompt"]:
            class_samples = sample_images(pipeline, concept["class_prompt"], args.num_eval_samples, args.seed, args)
            drift.append(class_drift(class_samples, base_class_samples[index], extractor))
    metrics = {"instance_fidelity": sum(fidelity) / len(fidelity)}
    if drift:
        metrics["class_drift"] = sum(drift) / len(drift)
    return metrics


DREAMBOOTH_METRIC_NAMES = {
    "instance_fidelity": "subject fidelity (mean cosine similarity of samples to the instance images)",
    "instance_fidelity_base": "subject fidelity of the base model (same prompt, same noise)",
    "class_drift": "class drift (mean cosine distance of class-prompt samples from the base model's)",
}


def lora_parameter_counts(unet, text_encoder) -> tuple[int, int]:
    """The LoRA parameters of the UNet and the text encoder (those a DreamBooth run trains), and the UNet's own."""
    trained = sum(
        p.numel() for model in (unet, text_encoder) for name, p in model.named_parameters() if "lora_" in name
    )
    return trained, sum(p.numel() for name, p in unet.named_parameters() if "lora_" not in name)


def dreambooth_protocol(pipeline, concepts, instance_images, feature_name: str, args) -> dict:
    """How train_dreambooth_lora.py's numbers were measured (`pipeline` holds the adapters), for metrics.json and the
    card."""
    trained, total = lora_parameter_counts(pipeline.unet, pipeline.text_encoder)
    return {
        "dataset": ", ".join(concept["instance_data_dir"] for concept in concepts),
        "split": "instance images",
        "subjects": [
            {key: concept[key] for key in ("instance_prompt", "class_prompt") if concept[key]} for concept in concepts
        ],
        "instance_images": [len(images) for images in instance_images],
        "samples": f"{args.num_eval_samples} per prompt from seeds {args.seed} on, "
        f"{type(pipeline.scheduler).__name__} {args.num_inference_steps} steps, guidance {args.guidance_scale}",
        "features": feature_name,
        "trained_parameters": f"{trained:,} ({100 * trained / total:.2f}% of the UNet's {total:,})",
    }


def run_subjects(run: argparse.Namespace) -> list[dict]:
    """The subjects of the run that saved the folder, their instance images replaced by `--train_data_dir` when given
    (a run of one subject only); one-line errors for data a DreamBooth folder cannot be measured on."""
    concepts = read_concepts(run)
    if run.dataset_name is not None:
        raise ValueError(
            "--dataset_name: DreamBooth weights are measured against a folder of the subject's images; give it with "
            "--train_data_dir"
        )
    if run.train_data_dir is not None:
        if len(concepts) > 1:
            raise ValueError(
                f"--train_data_dir replaces the images of one subject, and this run taught {len(concepts)} (its "
                "--concepts_list): leave it out to measure on the run's own images"
            )
        concepts[0]["instance_data_dir"] = run.train_data_dir
    source = "--train_data_dir" if run.train_data_dir is not None else "the run's training_args.json"
    for concept in concepts:
        if not os.path.isdir(concept["instance_data_dir"]):
            raise ValueError(
                f"{source} names the subject's images {concept['instance_data_dir']!r}, which is not a folder: give "
                "them with --train_data_dir"
            )
    return concepts


def evaluate_dreambooth(folder: str, base: str, run: argparse.Namespace, accelerator) -> FolderEvaluation:
    concepts = run_subjects(run)
    pipeline = LatentDiffusionPipeline.from_pretrained(base)
    pipeline.set_progress_bar_config(disable=True)
    pipeline.to(accelerator.device)
    read_as_generated(run, pipeline)
    instance_images = [load_folder_images(concept["instance_data_dir"], run) for concept in concepts]
    extractor, feature_name = feature_extractor(run, accelerator.device)
    # the base model's samples first, as the run drew them before training
    base_metrics, base_class_samples = base_measurements(pipeline, concepts, instance_images, extractor, run)
    pipeline.load_lora_weights(folder)
    metrics = measure_dreambooth(pipeline, concepts, instance_images, base_class_samples, extractor, run)
    protocol = dreambooth_protocol(pipeline, concepts, instance_images, feature_name, run)
    return FolderEvaluation({**metrics, **base_metrics}, protocol, DREAMBOOTH_METRIC_NAMES, "text-to-image")


# --- saved folders ---


def evaluate_folder(folder: str, run: argparse.Namespace, accelerator) -> FolderEvaluation:
    """The folder measured as the script that saved it measures it at the end of its run, on `run`'s data: a
    LatentDiffusionPipeline (train_ldm.py), a ControlNetModel (train_controlnet.py) or diffusers LoRA weights
    (train_ldm.py --use_lora, train_dreambooth_lora.py) on the base pipeline that the run's record names."""
    if folder_file(folder, "model_index.json") is not None:
        if issubclass(pipeline_class_of(folder), LatentDiffusionControlNetPipeline):
            raise ValueError(
                f"{folder} holds a LatentDiffusionControlNetPipeline, without the control maps it is measured on: "
                "hfgen evaluate measures the ControlNet folder train_controlnet.py wrote (its training_args.json "
                "names them)"
            )
        return evaluate_text_to_image(load_pipeline(folder), run, accelerator)
    if folder_architecture(folder) == "ControlNetModel":
        return evaluate_controlnet(folder, recorded_base(folder, run, "a ControlNet"), run, accelerator)
    base = recorded_base(folder, run, "LoRA weights")
    # train_dreambooth_lora.py records its subjects; train_ldm.py --use_lora records the data it was measured on
    if "instance_prompt" in vars(run):
        return evaluate_dreambooth(folder, base, run, accelerator)
    return evaluate_text_to_image(lora_pipeline(folder, base), run, accelerator)
