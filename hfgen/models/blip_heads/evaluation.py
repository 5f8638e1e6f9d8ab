"""Measuring a BLIP captioner or question answerer as train_blip_captioning.py and train_blip_vqa.py do, at the end of
a run and on a saved folder (`hfgen evaluate`).

A captioner (`BlipForConditionalGeneration`) captions the held-out images by beam search: exact match, BLEU-4 and
CIDEr-D against the references (every template of the image's class for label captions, else its own caption) and,
for data with classes, the accuracy of zero-shot classification by captioning likelihood; beside what writing the most
frequent training caption for every image scores, and chance. A question answerer (`BlipForQuestionAnswering`)
answers the held-out questions by beam search: VQA accuracy (exact match), beside what the blind answerers score (the
most frequent training answer, overall and to the same question).
"""

import argparse
import logging
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import torch
from datasets import Dataset, Image
from transformers import BlipForConditionalGeneration, BlipForQuestionAnswering, BlipProcessor

from ...data import (
    BUILTIN_CANVASES,
    DecodedImages,
    collate_images,
    image_transform,
    load_canvas_vqa,
    load_image_dataset,
    split_for_evaluation,
)
from ...data.captions import LabelCaptions, dataset_captions
from ...data.vision_language import MIN_CANVAS_SIZE
from ...metrics.captioning import caption_metrics, caption_tokens, exact_match
from ...training.arguments import resolve_color_mode
from ...training.evaluation import FolderEvaluation, evaluation_batches, load_run_data
from ...training.vision_language import processor_pixels
from ..modeling_utils import folder_architecture, load_model_folder
from .modeling_blip_heads import caption_log_likelihoods

# Beam width of the measured captions and answers.
NUM_BEAMS = 3
# Longest generated caption and answer, in tokens.
CAPTION_MAX_NEW_TOKENS = 20
ANSWER_MAX_NEW_TOKENS = 10

# Held-out images captioned (or questions answered) at a time.
EVAL_BATCH_SIZE = 64

# The settings of a folder measured without its run's record (the scripts' defaults; `max_new_tokens` is the
# captioner's or the answerer's, chosen by the folder's architecture, and `color_mode` None reads the data's own).
EVALUATION_DEFAULTS = dict(
    caption_column=None,
    question_column="question",
    answer_column="answer",
    num_train_canvases=4000,
    num_test_canvases=200,
    num_beams=NUM_BEAMS,
    max_new_tokens=None,
    color_mode=None,
)


def tokenize(processor, texts: list[str], device) -> dict:
    max_length = processor.tokenizer.model_max_length
    inputs = processor.tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return {key: value.to(device) for key, value in inputs.items()}


# Captioning (train_blip_captioning.py)


def run_captions(data, caption_column: str | None):
    """The captions of the run's training images (`LabelCaptions` from class labels, or the `caption_column` texts);
    data with neither is a one-line error."""
    captions = dataset_captions(data.evaluation.train, caption_column)
    if captions is None:
        raise ValueError(
            f"{data.evaluation.dataset} has neither class labels nor captions: a captioner learns from image-caption "
            "pairs, so give class subfolders or a metadata.jsonl with a caption per image (--caption_column text)"
        )
    return captions


@torch.no_grad()
def generate_captions(model, processor, images, args, device) -> list[str]:
    """Beam-search captions (`--num_beams`, `--max_new_tokens`) of a transformed dataset's images, in order."""
    captions = []
    for batch in evaluation_batches(images, EVAL_BATCH_SIZE):
        pixels = processor_pixels(batch["pixel_values"].to(device), processor.image_processor)
        ids = model.generate(pixel_values=pixels, num_beams=args.num_beams, max_new_tokens=args.max_new_tokens)
        captions.extend(processor.tokenizer.batch_decode(ids, skip_special_tokens=True))
    return [caption.strip() for caption in captions]


def reference_captions(captions, evaluation, args) -> list[list[str]]:
    """The captions each held-out image is measured against: every template of its class for label captions (so a
    caption is right whichever template it chose), else its own caption."""
    if isinstance(captions, LabelCaptions):
        phrases = [captions.phrases[label] for label in evaluation["label"]]
        return [[template.format(phrase) for template in captions.templates] for phrase in phrases]
    return [[str(text)] for text in evaluation[args.caption_column]]


def most_frequent_caption(captions, train) -> str:
    """The caption the training data gives most often: the first template of the most frequent class (every template
    is drawn as often), or the most frequent caption text."""
    if isinstance(captions, LabelCaptions):
        label, _ = Counter(train["label"]).most_common(1)[0]
        return captions.prompt(label)
    text, _ = Counter(captions.texts).most_common(1)[0]
    return text


@torch.no_grad()
def zero_shot_accuracy(model, processor, captions: LabelCaptions, images, device) -> float:
    """Accuracy of classifying each held-out image as the class whose captions (every template) have the highest
    mean log-likelihood under the captioning decoder (`hfgen.BLIPCaptionScorer`'s scores)."""
    prompts = [template.format(phrase) for phrase in captions.phrases for template in captions.templates]
    inputs = tokenize(processor, prompts, device)
    correct = 0
    for batch in evaluation_batches(images, EVAL_BATCH_SIZE):
        pixels = processor_pixels(batch["pixel_values"].to(device), processor.image_processor)
        scores = caption_log_likelihoods(model, pixels, inputs["input_ids"], inputs["attention_mask"])
        class_scores = scores.view(len(pixels), len(captions.phrases), len(captions.templates)).mean(dim=2)
        correct += (class_scores.argmax(dim=1).cpu() == batch["labels"]).sum().item()
    return correct / len(images)


@torch.no_grad()
def evaluate_captioning(
    model, processor, captions, references: list[list[str]], data, args, device
) -> tuple[dict, list[str]]:
    """Caption metrics of the held-out images' beam-search captions (and zero-shot accuracy by captioning likelihood
    for data with classes); returns the metrics and the captions."""
    model.eval()
    generated = generate_captions(model, processor, data.eval, args, device)
    metrics = caption_metrics(generated, references)
    if isinstance(captions, LabelCaptions):
        metrics["zero_shot_accuracy"] = zero_shot_accuracy(model, processor, captions, data.eval, device)
    model.train()
    return metrics, generated


def captioning_baselines(captions, references: list[list[str]], data) -> dict:
    """What the trivial captioner that writes the most frequent training caption for every image scores, and chance
    for zero-shot classification."""
    baseline = most_frequent_caption(captions, data.evaluation.train)
    scores = caption_metrics([baseline] * len(references), references)
    measured = {name: {"most_frequent_caption": value} for name, value in scores.items()}
    if isinstance(captions, LabelCaptions):
        measured["zero_shot_accuracy"] = {"chance": 1 / len(captions.phrases)}
    return measured


CAPTIONING_METRIC_NAMES = {
    "exact_match": "exact match",
    "bleu_4": "BLEU-4",
    "cider": "CIDEr-D",
    "zero_shot_accuracy": "zero-shot accuracy by captioning likelihood",
}


def captioning_protocol(data, captions, references, args) -> dict:
    """How the run's numbers were measured, for metrics.json and the card."""
    protocol = {
        "dataset": data.evaluation.dataset,
        "split": data.evaluation.split,
        "num_images": len(data.eval),
        "captions": f"beam search ({args.num_beams} beams, at most {args.max_new_tokens} new tokens) from each "
        "held-out image",
        "references": f"every template of the image's class ({len(references[0])} captions)"
        if isinstance(captions, LabelCaptions)
        else f"the held-out image's own {args.caption_column!r} caption",
        "metrics": "exact match (any reference, case and punctuation aside), corpus BLEU-4 (smoothed) and CIDEr-D on "
        "lower-cased words (not COCO's PTB tokenizer)",
        "baseline": f"the most frequent training caption, {most_frequent_caption(captions, data.evaluation.train)!r}, "
        "for every image",
    }
    if isinstance(captions, LabelCaptions):
        protocol["zero_shot"] = (
            f"the class among {len(captions.phrases)} whose {len(captions.templates)} template captions have the "
            "highest mean per-token log-likelihood (hfgen.BLIPCaptionScorer)"
        )
    return protocol


# Visual question answering (train_blip_vqa.py)


def uses_canvases(args) -> bool:
    return args.train_data_dir is None and args.dataset_name == BUILTIN_CANVASES


def load_questions(args):
    """The questions, answers and images of the run: the built-in canvases' (drawn at `--resolution`, the same
    whatever `--seed`), or a folder's or dataset's `--question_column` and `--answer_column`; then the held-out part
    (`split_for_evaluation`). Every question and answer must be a non-empty string: a bad one is a one-line error
    naming its row."""
    if uses_canvases(args):
        if args.resolution < MIN_CANVAS_SIZE:
            raise ValueError(f"--resolution {args.resolution} is too small for the canvases: use {MIN_CANVAS_SIZE}+")
        dataset = load_canvas_vqa(args.resolution, args.num_train_canvases, args.num_test_canvases)
        columns = {"question": "question", "answer": "answer"}
    else:
        dataset = load_image_dataset(
            args.dataset_name, args.train_data_dir, args.resolution, args.dataset_config_name, args.cache_dir
        )
        columns = {"question": args.question_column, "answer": args.answer_column}
        for split_name, split in dataset.items():
            for kind, column in columns.items():
                if column not in split.column_names:
                    raise ValueError(
                        f"--{kind}_column {column!r} is not a column of split {split_name!r} of "
                        f"{args.train_data_dir or args.dataset_name} (its columns: {', '.join(split.column_names)}): "
                        f"give every image a {kind} in metadata.jsonl, or name the column"
                    )
                for row, text in enumerate(split[column]):
                    if not isinstance(text, str) or not text.strip():
                        image = split.cast_column("image", Image(decode=False))[row]["image"]
                        where = f"image {image['path']!r}" if image["path"] else f"row {row} of split {split_name!r}"
                        raise ValueError(f"{where}: its {kind} ({column!r}) is {text!r}: give it a non-empty one")
    splits = split_for_evaluation(dataset, args.validation_split, seed=args.seed)
    return splits, columns


@dataclass
class RunQuestions:
    """The questions of a VQA run, from [`load_run_questions`].

    Args:
        dataset (`str`): the data's name as the user gave it (`--train_data_dir` or `--dataset_name`).
        split (`str`): which questions are held out, e.g. `"test"`.
        train (`datasets.Dataset`): the training rows, untransformed.
        transform (`Callable`): the images' transform, to `pixel_values` in [-1, 1] at `--resolution`.
        questions, answers (`list[str]`): the training questions and their answers, in the order of `train`.
        held_out (`dict`): the held-out `images` (decoded and transformed), `questions` and `answers`.
    """

    dataset: str
    split: str
    train: Dataset
    transform: Callable
    questions: list[str]
    answers: list[str]
    held_out: dict


def load_run_questions(args) -> RunQuestions:
    """The run's questions (`load_questions`) with its images read at `--resolution` in `--color_mode` (by default
    that of the training images; resolved into `args`), the held-out images decoded once."""
    splits, columns = load_questions(args)
    transform = image_transform(args.resolution, resolve_color_mode(args, {"train": splits.train}))
    return RunQuestions(
        dataset=args.train_data_dir or args.dataset_name,
        split=splits.name,
        train=splits.train,
        transform=transform,
        questions=list(splits.train[columns["question"]]),
        answers=list(splits.train[columns["answer"]]),
        held_out={
            "images": DecodedImages(splits.evaluation, transform),
            "questions": list(splits.evaluation[columns["question"]]),
            "answers": list(splits.evaluation[columns["answer"]]),
        },
    )


@torch.no_grad()
def generate_answers(model, processor, images, questions: list[str], args, device) -> list[str]:
    """Beam-search answers (`--num_beams`, `--max_new_tokens`) to each question about its image, in order.

    Questions are batched by token length, unpadded: `BlipForQuestionAnswering.generate` lets the answer decoder
    attend to every question token, padding included, where training masked the padding out."""
    tokenizer = processor.tokenizer
    question_ids = tokenizer(questions, truncation=True, max_length=tokenizer.model_max_length).input_ids
    by_length = defaultdict(list)
    for index, ids in enumerate(question_ids):
        by_length[len(ids)].append(index)
    answers = [""] * len(questions)
    for indices in by_length.values():
        for start in range(0, len(indices), EVAL_BATCH_SIZE):
            chunk = indices[start : start + EVAL_BATCH_SIZE]
            pixels = collate_images([images[index] for index in chunk])["pixel_values"].to(device)
            ids = model.generate(
                input_ids=torch.tensor([question_ids[index] for index in chunk], device=device),
                pixel_values=processor_pixels(pixels, processor.image_processor),
                num_beams=args.num_beams,
                max_new_tokens=args.max_new_tokens,
            )
            for index, answer in zip(chunk, tokenizer.batch_decode(ids, skip_special_tokens=True), strict=True):
                answers[index] = answer.strip()
    return answers


def normalized(text: str) -> str:
    """An answer as the accuracy compares it: lower-cased words, punctuation dropped."""
    return " ".join(caption_tokens(text))


@torch.no_grad()
def evaluate_vqa(model, processor, held_out: dict, args, device) -> tuple[dict, list[str]]:
    """VQA accuracy of the beam-search answers to the held-out questions; returns it and the answers."""
    model.eval()
    answers = generate_answers(model, processor, held_out["images"], held_out["questions"], args, device)
    model.train()
    references = [[answer] for answer in held_out["answers"]]
    return {"vqa_accuracy": exact_match(answers, references)}, answers


def answer_baselines(train_questions: list[str], train_answers: list[str], held_out: dict) -> dict:
    """What blind answerers score: the most frequent training answer for every question, and the most frequent
    training answer to the same question (the overall one for a question training never asked), a language prior
    that sees no image."""
    overall = Counter(map(normalized, train_answers)).most_common(1)[0][0]
    answers_to = defaultdict(Counter)
    for question, answer in zip(train_questions, train_answers, strict=True):
        answers_to[normalized(question)][normalized(answer)] += 1
    prior = [
        answers_to[normalized(question)].most_common(1)[0][0] if normalized(question) in answers_to else overall
        for question in held_out["questions"]
    ]
    references = [[answer] for answer in held_out["answers"]]
    return {
        "vqa_accuracy": {
            "most_frequent_answer": exact_match([overall] * len(references), references),
            "most_frequent_answer_to_the_question": exact_match(prior, references),
        }
    }


VQA_METRIC_NAMES = {"vqa_accuracy": "VQA accuracy (exact match)"}


def vqa_protocol(questions: RunQuestions, args) -> dict:
    """How the run's accuracy was measured, for metrics.json and the card."""
    protocol = {
        "dataset": questions.dataset,
        "split": questions.split,
        "num_questions": len(questions.held_out["questions"]),
        "answers": f"beam search ({args.num_beams} beams, at most {args.max_new_tokens} new tokens) from each "
        "held-out image and question, questions batched by length without padding",
        "accuracy": "share of answers equal to the right one, as lower-cased words without punctuation",
    }
    if uses_canvases(args):
        protocol["canvases"] = (
            f"{args.num_train_canvases} training canvases (digits' train split) and {args.num_test_canvases} "
            f"held-out canvases (digits' test split) of {args.resolution} px, drawn with seed 0"
        )
    return protocol


# A saved folder (hfgen evaluate)


def evaluate_folder(folder: str, run: argparse.Namespace, accelerator) -> FolderEvaluation:
    """The BLIP captioner or question answerer of the folder (or its LoRA adapter on the base) measured as its script
    measures it, on `run`'s data; the images are read at the model's own size."""
    device = accelerator.device
    answers_questions = folder_architecture(folder) == "BlipForQuestionAnswering"
    model_class = BlipForQuestionAnswering if answers_questions else BlipForConditionalGeneration
    model = load_model_folder(folder, model_class).to(device).eval()
    processor = BlipProcessor.from_pretrained(folder)
    run.resolution = model.config.vision_config.image_size
    if run.max_new_tokens is None:
        run.max_new_tokens = ANSWER_MAX_NEW_TOKENS if answers_questions else CAPTION_MAX_NEW_TOKENS
    if answers_questions:
        questions = load_run_questions(run)
        metrics, _ = evaluate_vqa(model, processor, questions.held_out, run, device)
        baselines = answer_baselines(questions.questions, questions.answers, questions.held_out)
        protocol = vqa_protocol(questions, run)
        return FolderEvaluation(metrics, protocol, VQA_METRIC_NAMES, "visual-question-answering", baselines)
    data = load_run_data(run, accelerator, logging.getLogger(__name__), measures_distributions=False)
    captions = run_captions(data, run.caption_column)
    references = reference_captions(captions, data.evaluation.evaluation, run)
    metrics, _ = evaluate_captioning(model, processor, captions, references, data, run, device)
    baselines = captioning_baselines(captions, references, data)
    protocol = captioning_protocol(data, captions, references, run)
    return FolderEvaluation(metrics, protocol, CAPTIONING_METRIC_NAMES, "image-to-text", baselines)
