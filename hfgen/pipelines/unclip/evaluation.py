"""Measuring unCLIP as train_unclip.py does, at the end of a run and on a saved folder (`hfgen evaluate`).

On the run's held-out images and their captions (written from class labels, or the data's caption column):

- the prior: the cosine similarity between the image embedding it predicts from a held-out image's caption and that
  image's true CLIP image embedding, and the accuracy of retrieving a matching held-out image (same class, or same
  caption) with the prediction; beside the baseline of using the caption's text embedding itself as the image
  embedding (the "no prior" of Ramesh et al.), and retrieval by chance;
- text-to-image: FID and its kin of prompted samples against the held-out images, prompt accuracy (the digits
  classifier reads the prompted class, on the built-in digits) and the CLIP score of each sample against its prompt
  (100 x the cosine of the pipeline's own CLIP embeddings, floored at 0);
- image variations: the cosine similarity between the CLIP image embeddings of held-out images and of one variation of
  each, beside that of random pairs of distinct held-out images of the same class and of different classes (or any
  two, for data without classes), and, on the built-in digits, how often the classifier reads the input's class in
  its variation.
"""

import argparse
import logging

import torch
import torch.nn.functional as F
from accelerate.utils import gather_object
from diffusers import DDPMScheduler, UnCLIPScheduler

from ...data.captions import ColumnCaptions, LabelCaptions, dataset_captions
from ...metrics import load_digits_classifier, to_classifier_pixels
from ...models.clip_heads.evaluation import evaluation_captions
from ...models.unclip.modeling_unclip import UnCLIPRegressionPrior
from ...training.evaluation import (
    DISTRIBUTION_METRIC_NAMES,
    FolderEvaluation,
    evaluate_generator,
    evaluation_batches,
    load_run_data,
    run_protocol,
)
from ..sampling import load_pipeline
from .pipeline_unclip import (
    DECODER_GUIDANCE_SCALE,
    DECODER_NUM_INFERENCE_STEPS,
    PRIOR_GUIDANCE_SCALE,
    PRIOR_NUM_INFERENCE_STEPS,
    UnCLIPPipeline,
    clip_pixels,
)

# Held-out images whose variations are measured (at most): enough for a stable mean on 2 CPU cores.
NUM_VARIATION_IMAGES = 200

# The settings of a folder measured without its run's record (train_unclip.py's defaults).
EVALUATION_DEFAULTS = dict(
    caption_column=None,
    guidance_scale=DECODER_GUIDANCE_SCALE,
    prior_guidance_scale=PRIOR_GUIDANCE_SCALE,
    num_inference_steps=DECODER_NUM_INFERENCE_STEPS,
    prior_num_inference_steps=PRIOR_NUM_INFERENCE_STEPS,
    num_variation_images=NUM_VARIATION_IMAGES,
)

PRIOR_METRIC_NAMES = {
    "cosine": "cosine of predicted and true image embedding",
    "retrieval_accuracy": "retrieval accuracy of the predicted embedding (a matching held-out image is nearest)",
}

CARD_METRIC_NAMES = {
    **DISTRIBUTION_METRIC_NAMES,
    "class_accuracy": "prompt accuracy (digits classifier reads the prompted class)",
    "clip_score": "CLIP score (samples against their prompts)",
    **{
        f"{kind}_prior_{name}": f"{kind} prior: {title}"
        for kind in ("diffusion", "regression")
        for name, title in PRIOR_METRIC_NAMES.items()
    },
    **{
        f"text_embedding_{name}": f"baseline, the text embedding as image embedding: {title}"
        for name, title in PRIOR_METRIC_NAMES.items()
    },
    "retrieval_chance": "baseline, retrieval by chance",
    "variation_similarity": "variation similarity (cosine of input and variation image embeddings)",
    "variation_class_accuracy": "variation class accuracy (digits classifier reads the input's class)",
    "same_class_similarity": "baseline, two real images of the same class: cosine",
    "different_class_similarity": "baseline, two real images of different classes: cosine",
    "random_pair_similarity": "baseline, two random real images: cosine",
}


def prior_kind(prior) -> str:
    return "regression" if isinstance(prior, UnCLIPRegressionPrior) else "diffusion"


def sampling_pipeline(components: dict, decoder_noise_scheduler, prior_noise_scheduler) -> UnCLIPPipeline:
    """The pipeline of the run's current weights (`components`: prior, decoder, the CLIP towers, tokenizer and
    feature extractor), each stage sampling on its training schedule: the decoder with DDPM's ancestral sampler over a
    shortened schedule, its clean-image estimates clipped to [-1, 1] (on the digits' default run deterministic DDIM
    left many samples grainy at 25 steps, as it does for train_ddpm.py's models, where this sampler drew clean
    digits), the diffusion prior with the UnCLIPScheduler."""
    decoder_scheduler = DDPMScheduler.from_config(decoder_noise_scheduler.config, clip_sample=True)
    prior_scheduler = None
    if not isinstance(components["prior"], UnCLIPRegressionPrior):
        prior_scheduler = UnCLIPScheduler.from_config(prior_noise_scheduler.config)
    pipeline = UnCLIPPipeline(**components, decoder_scheduler=decoder_scheduler, prior_scheduler=prior_scheduler)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@torch.no_grad()
def image_embeddings(pipeline: UnCLIPPipeline, images: torch.Tensor) -> torch.Tensor:
    """Unit-norm CLIP image embeddings of images in [-1, 1], as training computes them."""
    config = pipeline.image_encoder.config
    processor = pipeline.feature_extractor
    pixels = clip_pixels(images, config.image_size, processor.image_mean, processor.image_std)
    embeds = pipeline.image_encoder(pixel_values=pixels.to(pipeline.device, pipeline.image_encoder.dtype)).image_embeds
    return F.normalize(embeds, dim=-1).float().cpu()


@torch.no_grad()
def clip_scores(pipeline: UnCLIPPipeline, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
    """The CLIP score of each image (in [-1, 1]) against its prompt (Hessel et al. 2021: 100 x cosine, floored at 0),
    with the pipeline's own CLIP towers."""
    text_embeds, _, _ = pipeline.encode_prompt(prompts)
    cosine = (image_embeddings(pipeline, images) * F.normalize(text_embeds.float().cpu(), dim=-1)).sum(dim=-1)
    return (100 * cosine).clamp(min=0)


def held_out(pipeline: UnCLIPPipeline, data, captions, args) -> dict:
    """The held-out images with their embeddings, labels (or None), one caption each and the keys that say which
    captions match which images."""
    images, labels = [], []
    for batch in evaluation_batches(data.eval, 256):
        images.append(batch["pixel_values"])
        if "labels" in batch:
            labels.append(batch["labels"])
    images = torch.cat(images)
    texts, keys = evaluation_captions(captions, data.evaluation.evaluation, args)
    return {
        "images": images,
        "embeds": torch.cat([image_embeddings(pipeline, part) for part in images.split(256)]),
        "labels": torch.cat(labels) if labels else None,
        "texts": texts,
        "keys": keys,
    }


@torch.no_grad()
def measure_prior(pipeline: UnCLIPPipeline, held: dict, args, generator_seed: int) -> dict:
    """Cosine and retrieval accuracy of the image embeddings `pipeline`'s prior predicts from the held-out captions,
    named after the kind of prior; with the text-embedding baseline and retrieval chance."""
    predicted, text = [], []
    generator = torch.Generator().manual_seed(generator_seed)
    for start in range(0, len(held["texts"]), 256):
        prompts = held["texts"][start : start + 256]
        predicted.append(
            pipeline.prior_image_embeddings(
                prompts, args.prior_guidance_scale, args.prior_num_inference_steps, generator
            )
            .float()
            .cpu()
        )
        text.append(F.normalize(pipeline.encode_prompt(prompts)[0].float().cpu(), dim=-1))
    keys = held["keys"]
    matches = torch.tensor([[key == other for other in keys] for key in keys])
    metrics = {}
    kind = prior_kind(pipeline.prior)
    for name, embeds in ((f"{kind}_prior", torch.cat(predicted)), ("text_embedding", torch.cat(text))):
        metrics[f"{name}_cosine"] = (embeds * held["embeds"]).sum(dim=-1).mean().item()
        nearest = (embeds @ held["embeds"].t()).argmax(dim=1)
        metrics[f"{name}_retrieval_accuracy"] = matches[torch.arange(len(keys)), nearest].float().mean().item()
    metrics["retrieval_chance"] = matches.float().mean().item()
    return metrics


def random_pair_similarities(held: dict, seed: int, pairs: int = 2000) -> dict:
    """Mean cosine of random pairs of distinct held-out images: of the same class and of different classes (any two
    for data without labels), drawn with `seed`."""
    generator = torch.Generator().manual_seed(seed)
    count = held["embeds"].shape[0]
    first = torch.randint(0, count, (pairs,), generator=generator)
    second = (first + torch.randint(1, count, (pairs,), generator=generator)) % count  # never the image itself
    cosine = (held["embeds"][first] * held["embeds"][second]).sum(dim=-1)
    if held["labels"] is None:
        return {"random_pair_similarity": cosine.mean().item()}
    same = held["labels"][first] == held["labels"][second]
    metrics = {}
    if same.any():
        metrics["same_class_similarity"] = cosine[same].mean().item()
    if (~same).any():
        metrics["different_class_similarity"] = cosine[~same].mean().item()
    return metrics


@torch.no_grad()
def measure_variations(pipeline: UnCLIPPipeline, held: dict, data, args) -> dict:
    """Variation similarity of up to `--num_variation_images` held-out images (one variation each, image `i` from a
    generator seeded `seed + i`), its baselines, and the class accuracy of the variations on the built-in digits."""
    count = min(args.num_variation_images, held["images"].shape[0])
    classifier = None
    if held["labels"] is not None and data.evaluation.reads_digit_classes:
        classifier = load_digits_classifier(pipeline.device)
    similarities, correct = [], 0
    for start in range(0, count, 128):
        inputs = held["images"][start : min(start + 128, count)]
        generators = [torch.Generator().manual_seed(args.seed + start + i) for i in range(len(inputs))]
        variations = (
            pipeline(
                image_embeds=held["embeds"][start : start + len(inputs)],
                generator=generators,
                guidance_scale=args.guidance_scale,
                num_inference_steps=args.num_inference_steps,
                output_type="pt",
            ).images
            * 2
            - 1
        )
        own = held["embeds"][start : start + len(inputs)]
        similarities.append((image_embeddings(pipeline, variations) * own).sum(dim=-1))
        if classifier is not None:
            pixels = to_classifier_pixels(variations.to(pipeline.device), classifier.config.image_size)
            labels = held["labels"][start : start + len(inputs)].to(pipeline.device)
            correct += (classifier(pixels).logits.argmax(dim=1) == labels).sum().item()
    metrics = {"variation_similarity": torch.cat(similarities).mean().item()}
    if classifier is not None:
        metrics["variation_class_accuracy"] = correct / count
    metrics.update(random_pair_similarities(held, args.seed))
    return metrics


@torch.no_grad()
def measure_text_to_image(pipeline: UnCLIPPipeline, captions, data, args, accelerator) -> dict:
    """FID and its kin, prompt accuracy (on the built-in digits) and the CLIP score of prompted samples."""
    num_classes = len(captions.phrases) if isinstance(captions, LabelCaptions) else 0
    prompted = []

    def sample(batch_size, labels, generator):
        if labels is not None:
            prompts = [captions.prompt(int(label)) for label in labels]
        else:
            # captions of the data drawn at random (from the evaluation generator), not the first ones every time
            picks = torch.randint(0, len(captions.texts), (batch_size,), generator=generator).tolist()
            prompts = [captions.texts[pick] for pick in picks]
        images = (
            pipeline(
                prompt=prompts,
                generator=generator,
                prior_guidance_scale=args.prior_guidance_scale,
                prior_num_inference_steps=args.prior_num_inference_steps,
                guidance_scale=args.guidance_scale,
                num_inference_steps=args.num_inference_steps,
                output_type="pt",
            ).images
            * 2
            - 1
        )
        prompted.append(clip_scores(pipeline, images, prompts))
        return images

    metrics = evaluate_generator(
        sample, data.evaluation, data.eval, accelerator, args.num_eval_samples, args.seed, num_classes=num_classes
    )
    # every process scores its own samples; the mean is over all of them
    metrics["clip_score"] = torch.cat(gather_object(prompted)).mean().item()
    return metrics


def evaluate_unclip(pipeline: UnCLIPPipeline, captions, data, args, accelerator, other=None) -> dict:
    """Every metric of the module docstring for `pipeline`; with `other` (the same pipeline with the run's other kind
    of prior), that prior's figures too, measured on the same captions."""
    held = held_out(pipeline, data, captions, args)
    metrics = measure_prior(pipeline, held, args, args.seed)
    if other is not None:
        kind = prior_kind(other.prior)
        metrics.update(
            {key: value for key, value in measure_prior(other, held, args, args.seed).items() if key.startswith(kind)}
        )
    metrics.update(measure_text_to_image(pipeline, captions, data, args, accelerator))
    metrics.update(measure_variations(pipeline, held, data, args))
    return metrics


def unclip_protocol(data, captions, args) -> dict:
    """How train_unclip.py's numbers were measured, for metrics.json and the card."""
    protocol = {
        **run_protocol(data.evaluation, args.num_eval_samples),
        "sampler": f"prior: UnCLIPScheduler, {args.prior_num_inference_steps} steps, guidance scale "
        f"{args.prior_guidance_scale} (the diffusion prior); decoder: DDPM (ancestral, x0 clipped), "
        f"{args.num_inference_steps} steps, "
        f"guidance scale {args.guidance_scale}",
        "prior": f"each of the {len(data.eval)} held-out images' caption through the prior; cosine with the image's "
        "own CLIP image embedding; retrieval: the held-out image nearest the prediction matches the caption (same "
        "class, or same caption)",
        "variations": f"one variation of each of the first {min(args.num_variation_images, len(data.eval))} "
        "held-out images, cosine of the CLIP image embeddings of input and variation; baselines: 2000 random pairs "
        "of distinct held-out images",
        "clip_score": "100 x cosine of the CLIP image embedding of each sample and the text embedding of its prompt "
        "(the run's own CLIP model), floored at 0",
    }
    if isinstance(captions, LabelCaptions):
        protocol["prompts"] = f"'{captions.templates[0]}' with the class names, classes balanced"
    return protocol


def run_captions(data, caption_column: str | None):
    """The captions of the run's data; data with neither class labels nor a caption column is a one-line error."""
    captions = dataset_captions(data.evaluation.train, caption_column)
    if not isinstance(captions, (LabelCaptions, ColumnCaptions)):
        raise ValueError(
            f"{data.evaluation.dataset} has neither class labels nor captions: unCLIP's prior learns from image-text "
            "pairs, so give class subfolders or a metadata.jsonl with a caption per image (--caption_column text)"
        )
    return captions


def evaluate_folder(folder: str, run: argparse.Namespace, accelerator) -> FolderEvaluation:
    """An UnCLIPPipeline folder measured as train_unclip.py measures it at the end of its run, on `run`'s data."""
    pipeline = load_pipeline(folder).to(accelerator.device)
    pipeline.set_progress_bar_config(disable=True)
    # the decoder's own image size and colours decide how the real images are read, as the run read them
    run.resolution = pipeline.decoder.config.sample_size
    run.color_mode = "L" if pipeline.decoder.config.out_channels == 1 else "RGB"
    data = load_run_data(run, accelerator, logging.getLogger(__name__))
    captions = run_captions(data, run.caption_column)
    metrics = evaluate_unclip(pipeline, captions, data, run, accelerator)
    return FolderEvaluation(metrics, unclip_protocol(data, captions, run), CARD_METRIC_NAMES, "text-to-image")
