#!/usr/bin/env python
"""Visual question answering with BLIP (Li et al. 2022): fine-tune a pretrained `BlipForQuestionAnswering` (fully or
with LoRA), or train a small one from scratch, ending with a Hub-ready folder and its measured accuracy.

    accelerate launch training_scripts/vision_language/train_blip_vqa.py   # small BLIP from scratch, digit canvases
    accelerate launch training_scripts/vision_language/train_blip_vqa.py --model_name_or_path <BLIP VQA folder> \
        --use_lora --train_data_dir my_images/                            # metadata.jsonl: question, answer

The built-in data are questions about the digit canvases (`hfgen/digit-canvases`, 1 to 4 real digit scans on a black
canvas): "how many digits are there?", "which digit is on the left?" / "on the right?", "is there a seven?", each
with its one-word answer read off the canvas's boxes. The question encoder reads the question while attending to the
image; the loss is the answer decoder's next-token cross-entropy over the answer's tokens, its padding left out.

On the built-in canvases a second loss teaches the image tower which digit is where (`--patch_loss_weight`): a linear
layer on each patch's output (used in training only, not saved) is trained by cross-entropy to name the digit whose ink
fills most of the patch, or background, read off the canvas's pixel mask. The answers alone teach counting but too
little of the digits' identity: a small ViT from scratch answers "which digit is on the left?" and "is there a seven?"
at chance after 1,000 steps without it.

The folder loads with `transformers.BlipForQuestionAnswering.from_pretrained(dir)` and
`BlipProcessor.from_pretrained(dir)` (with --use_lora it holds the adapter:
`peft.PeftModel.from_pretrained(BlipForQuestionAnswering.from_pretrained(base), dir)`). The metric is the accuracy
of the beam-search answers to the held-out questions (exact match, case and punctuation aside), beside what answering
the most frequent training answer scores, overall and per question.
"""

import logging
import math
import os
import tempfile

import torch
import torch.nn.functional as F
from accelerate.logging import get_logger
from accelerate.utils import set_seed
from tqdm.auto import tqdm
from transformers import BlipConfig, BlipForQuestionAnswering, BlipProcessor

from hfgen.data import BUILTIN_CANVASES, DecodedImages
from hfgen.data.captions import NUMBER_WORDS, IndexedImages, collate_indexed
from hfgen.data.vision_language import patch_labels
from hfgen.models.blip_heads import blip_config_for, blip_decoder_inputs, build_blip_processor
from hfgen.models.blip_heads.evaluation import (
    ANSWER_MAX_NEW_TOKENS,
    EVALUATION_DEFAULTS,
    NUM_BEAMS,
    VQA_METRIC_NAMES,
    answer_baselines,
    evaluate_vqa,
    load_run_questions,
    tokenize,
    uses_canvases,
    vqa_protocol,
)
from hfgen.training import save_checkpoint
from hfgen.training.arguments import (
    add_data_arguments,
    add_run_arguments,
    check_run_arguments,
    print_dry_run,
    resolve_max_train_steps,
)
from hfgen.training.cli import check_flag_ranges, make_parser, run_script
from hfgen.training.hub import push_folder, save_card_grid, write_model_card, write_run_record
from hfgen.training.runs import (
    check_finite,
    check_replicas,
    end_run,
    endless_batches,
    make_accelerator,
    make_lr_schedulers,
    make_train_dataloader,
    resume_run,
    save_grid,
    start_trackers,
)
from hfgen.training.vision_language import (
    add_lora_adapter,
    add_lora_arguments,
    add_model_arguments,
    add_patch_loss_argument,
    check_lora_arguments,
    load_config,
    load_pretrained,
    processor_pixels,
    resolve_model_arguments,
    resolve_patch_loss_weight,
    weight_decay_groups,
)

logger = get_logger(__name__)

# Default length: 3,000 steps of batch 64 (12 passes over the ~16,500 training questions of the built-in canvases).
DEFAULT_TRAIN_STEPS = 3000

# The BLIP trained from scratch when no --model_name_or_path or --train_from_scratch_config is given: a ViT of 8 px
# patches (64 tokens at the default 64 px, where a digit spans 2 to 4 patches a side) and a question encoder and
# answer decoder over texts of at most 32 tokens, all 3 layers of width 64.
SCRATCH_TOWER = dict(hidden_size=64, intermediate_size=256, num_hidden_layers=3, num_attention_heads=4)
SCRATCH_PATCH_SIZE = 8
SCRATCH_TEXT_MAX_LENGTH = 32
# The canvases' side: 64 px draws the 8x8 digit scans at 14 to 28 px, at 32 px they shrink to 7 to 14 and lose strokes.
DEFAULT_RESOLUTION = 64

# The patch labels of the built-in canvases: background and the ten digits.
NUM_PATCH_LABELS = 1 + len(NUMBER_WORDS)


def parse_args(input_args=None):
    parser = make_parser("Visual question answering with BLIP.")
    add_data_arguments(parser, BUILTIN_CANVASES)
    parser.add_argument(
        "--question_column",
        type=str,
        default=EVALUATION_DEFAULTS["question_column"],
        help="The dataset column holding each question.",
    )
    parser.add_argument(
        "--answer_column",
        type=str,
        default=EVALUATION_DEFAULTS["answer_column"],
        help="The dataset column holding each answer.",
    )
    parser.add_argument(
        "--num_train_canvases",
        type=int,
        default=EVALUATION_DEFAULTS["num_train_canvases"],
        help="Canvases of the built-in data to train on (each asked 3 to 5 questions), cut from the digits' train "
        "split.",
    )
    parser.add_argument(
        "--num_test_canvases",
        type=int,
        default=EVALUATION_DEFAULTS["num_test_canvases"],
        help="Canvases of the built-in data whose questions are held out, cut from the digits' test split.",
    )
    # model
    add_model_arguments(
        parser,
        pretrained="BLIP VQA model (folder or Hub id holding BlipForQuestionAnswering and BlipProcessor files)",
        scratch="A BlipConfig (folder or config.json) for a BLIP trained from scratch; its image size is set to "
        "--resolution, its text vocabulary and special tokens to the tokenizer written from the questions and "
        "answers. Default: a small one (all towers 3 layers of width 64, 8-pixel patches).",
    )
    add_lora_arguments(parser, default_targets=["qkv", "projection", "query", "key", "value"])
    add_patch_loss_argument(parser)
    # optimisation
    parser.add_argument("--adam_beta1", type=float, default=0.9)
    parser.add_argument("--adam_beta2", type=float, default=0.999)
    parser.add_argument(
        "--adam_weight_decay", type=float, default=0.05, help="On weight matrices only, not on gains, biases."
    )
    # evaluation
    parser.add_argument(
        "--num_beams", type=int, default=NUM_BEAMS, help="Beam width of the answers that are measured."
    )
    parser.add_argument(
        "--max_new_tokens", type=int, default=ANSWER_MAX_NEW_TOKENS, help="Longest generated answer, in tokens."
    )
    add_run_arguments(parser, family="blip-vqa")
    parser.set_defaults(
        resolution=DEFAULT_RESOLUTION,
        lr_scheduler="cosine",
        lr_warmup_steps=50,
        max_grad_norm=1.0,
        checkpointing_steps=1000,
        validation_steps=1000,
    )
    args = parser.parse_args(input_args)
    check_run_arguments(parser, args)
    check_lora_arguments(parser, args)
    resolve_model_arguments(parser, args)
    check_flag_ranges(
        parser,
        args,
        {
            "num_beams": (1, None, "closed"),
            "max_new_tokens": (1, None, "closed"),
            "num_train_canvases": (1, None, "closed"),
            "num_test_canvases": (1, None, "closed"),
            "patch_loss_weight": (0, None, "closed"),
        },
    )
    resolve_patch_loss_weight(parser, args, uses_canvases(args))
    if args.random_flip:
        parser.error("--random_flip would swap the left and right that questions ask about: leave it out")
    if args.class_filter is not None:
        parser.error("--class_filter keeps images of some class labels, and question-answer data has none")
    return args


def scratch_model(args, texts: list[str]) -> tuple[BlipForQuestionAnswering, BlipProcessor]:
    """A new BLIP VQA model and its processor, with a tokenizer written from the questions and answers."""
    if args.train_from_scratch_config is not None:
        architecture = load_config(BlipConfig, args.train_from_scratch_config, "--train_from_scratch_config")
    else:
        architecture = BlipConfig(
            text_config=SCRATCH_TOWER,
            # BlipVisionConfig's default initializer_range, 1e-10, would start the position embeddings at zero
            vision_config=dict(SCRATCH_TOWER, patch_size=SCRATCH_PATCH_SIZE, initializer_range=0.02),
            projection_dim=SCRATCH_TOWER["hidden_size"],
        )
    if args.resolution % architecture.vision_config.patch_size:
        raise ValueError(
            f"--resolution {args.resolution} is not a multiple of the BLIP config's patch_size "
            f"{architecture.vision_config.patch_size}: choose a --resolution that is"
        )
    # the vocabulary file only seeds the tokenizer, which save_pretrained writes into the folder at the end
    with tempfile.TemporaryDirectory() as folder:
        processor = build_blip_processor(texts, folder, image_size=args.resolution, max_length=SCRATCH_TEXT_MAX_LENGTH)
    config = blip_config_for(processor.tokenizer, args.resolution, architecture)
    return BlipForQuestionAnswering(config), processor


def vqa_loss(model, processor, bos_token_id: int, pixel_values, questions: list[str], answers: list[str]):
    """The model's output whose `loss` is the answer decoder's mean next-token cross-entropy over the answers' tokens
    (padding left out, see `blip_decoder_inputs`) given the images (in [-1, 1]) and the encoded questions; its
    `image_embeds` are the image tower's outputs (the class token, then the patches)."""
    question = tokenize(processor, questions, pixel_values.device)
    answer = tokenize(processor, answers, pixel_values.device)
    decoder_input_ids, labels = blip_decoder_inputs(answer["input_ids"], answer["attention_mask"], bos_token_id)
    output = model(
        input_ids=question["input_ids"],
        attention_mask=question["attention_mask"],
        pixel_values=processor_pixels(pixel_values, processor.image_processor),
        decoder_input_ids=decoder_input_ids,
        decoder_attention_mask=answer["attention_mask"],
        labels=labels,
    )
    return output


def sample_images(images, count: int) -> list:
    """The first `count` held-out images as PIL images, for the validation grids and the card."""
    from PIL import Image

    pixels = [images[index]["pixel_values"] for index in range(min(count, len(images)))]
    arrays = [((p.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).squeeze(-1) for p in pixels]
    return [Image.fromarray(array.numpy()) for array in arrays]


def main(args):
    accelerator = make_accelerator(args, args.gradient_accumulation_steps)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)

    # 1. a pretrained model first, whose image size the data takes; then the questions and their images (every image
    # is decoded before training, so a broken file fails first)
    set_seed(args.seed)
    model = processor = None
    if args.model_name_or_path is not None:
        model, processor = load_pretrained(BlipForQuestionAnswering, BlipProcessor, args.model_name_or_path)
        args.resolution = model.config.vision_config.image_size
    run_questions = load_run_questions(args)
    train_images = DecodedImages(run_questions.train, run_questions.transform)
    train_questions, train_answers, held_out = run_questions.questions, run_questions.answers, run_questions.held_out
    logger.info(
        f"{len(train_questions)} training and {len(held_out['questions'])} held-out questions ({run_questions.split})"
    )

    # 2. a model trained from scratch: built with the same seed everywhere
    if model is None:
        model, processor = scratch_model(args, train_questions + train_answers)
    positions = model.config.text_config.max_position_embeddings
    if args.max_new_tokens >= positions:
        raise ValueError(
            f"--max_new_tokens {args.max_new_tokens} does not fit the model's {positions} text positions (the start "
            f"token and the new ones): give --max_new_tokens {positions - 1} or less"
        )
    if args.dry_run:
        data = {"train": len(train_questions), run_questions.split: len(held_out["questions"])}
        print_dry_run(args, accelerator, model_config=model.config.to_dict(), data=data)
        return None
    bos_token_id = model.config.text_config.bos_token_id
    if args.use_lora:
        model = add_lora_adapter(model, args)
    # the patch classifier trains the image tower, and is left out of the saved folder
    patch_head = targets = None
    if args.patch_loss_weight > 0:
        targets = patch_labels(run_questions.train["segmentation"], model.config.vision_config.patch_size)
        patch_head = torch.nn.Linear(model.config.vision_config.hidden_size, NUM_PATCH_LABELS)
    trained_parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    if patch_head is not None:
        trained_parameters += list(patch_head.parameters())
    set_seed(args.seed, device_specific=True)
    train_dataloader = make_train_dataloader(IndexedImages(train_images), args, collate_indexed)

    # 3. optimisation
    optimizer = torch.optim.AdamW(
        weight_decay_groups(trained_parameters, args.adam_weight_decay),
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
    )
    updates_per_epoch = math.ceil(len(train_dataloader) / accelerator.num_processes / args.gradient_accumulation_steps)
    resolve_max_train_steps(args, updates_per_epoch, 1, DEFAULT_TRAIN_STEPS)
    (lr_scheduler,) = make_lr_schedulers(args, accelerator, optimizer)
    model, optimizer, train_dataloader, lr_scheduler = accelerator.prepare(
        model, optimizer, train_dataloader, lr_scheduler
    )
    if patch_head is not None:  # prepared after the model, so checkpoints keep (and resume restores) both
        patch_head = accelerator.prepare(patch_head)
    start_trackers(accelerator, args, "train_blip_vqa")

    # 4. resume
    global_step = resume_run(accelerator, args.output_dir, args.resume_from_checkpoint, logger)
    total_batch = args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    logger.info(
        f"{args.max_train_steps} steps, batch {total_batch} ({accelerator.num_processes} processes), "
        f"{sum(p.numel() for p in trained_parameters)} trained parameters"
    )
    progress = tqdm(
        range(args.max_train_steps), initial=global_step, desc="steps", disable=not accelerator.is_local_main_process
    )
    unwrapped = accelerator.unwrap_model(model)
    validation_images = sample_images(held_out["images"], args.num_validation_images)

    # 5. the loop
    model.train()
    batches = endless_batches(accelerator, train_dataloader, global_step * args.gradient_accumulation_steps)
    while global_step < args.max_train_steps:
        batch = next(batches)
        with accelerator.accumulate(model):
            indices = batch["indices"].tolist()
            questions = [train_questions[index] for index in indices]
            answers = [train_answers[index] for index in indices]
            output = vqa_loss(model, processor, bos_token_id, batch["pixel_values"], questions, answers)
            loss = output.loss
            if patch_head is not None:
                patch_logits = patch_head(output.image_embeds[:, 1:])
                patch_loss = F.cross_entropy(patch_logits.flatten(0, 1), targets[indices].flatten().to(loss.device))
                loss = loss + args.patch_loss_weight * patch_loss
            check_finite(loss, "loss", global_step, args.output_dir)
            accelerator.backward(loss)
            if accelerator.sync_gradients and args.max_grad_norm is not None:
                accelerator.clip_grad_norm_(trained_parameters, args.max_grad_norm)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad()
        if not accelerator.sync_gradients:
            continue
        global_step += 1
        progress.update(1)
        logs = {"loss": loss.item(), "lr": lr_scheduler.get_last_lr()[0]}
        if patch_head is not None:
            logs["patch_loss"] = patch_loss.item()
        progress.set_postfix(loss=f"{logs['loss']:.3f}")
        accelerator.log(logs, step=global_step)
        if global_step % args.checkpointing_steps == 0:
            save_checkpoint(accelerator, args.output_dir, global_step, args.checkpoints_total_limit)
        if global_step % args.validation_steps == 0 and accelerator.is_main_process:
            metrics, _ = evaluate_vqa(unwrapped, processor, held_out, args, accelerator.device)
            accelerator.log({f"eval/{name}": value for name, value in metrics.items()}, step=global_step)
            logger.info(f"step {global_step}: vqa_accuracy {metrics['vqa_accuracy']:.4g}")
            folder = os.path.join(args.output_dir, "validation")
            save_grid(validation_images, folder, "images", accelerator, global_step, len(validation_images))
    progress.close()

    # 6. the end of the run, on the main process: accuracy, the Hub-ready folder (weights or adapter, processor,
    # sample questions, record, card) and the upload
    run_facts = check_replicas(accelerator, model, global_step, logger)
    metrics = None
    if accelerator.is_main_process:
        metrics, answers = evaluate_vqa(unwrapped, processor, held_out, args, accelerator.device)
        unwrapped.save_pretrained(args.output_dir)  # the adapter alone with --use_lora
        processor.save_pretrained(args.output_dir)
        save_card_grid(validation_images, args.output_dir, columns=len(validation_images))
        samples = [
            {"question": question, "answer": answer, "reference": reference}
            for question, answer, reference in zip(
                held_out["questions"], answers, held_out["answers"][: len(validation_images)], strict=False
            )
        ]
        protocol = vqa_protocol(run_questions, args)
        baselines = answer_baselines(train_questions, train_answers, held_out)
        record = write_run_record(args, metrics, None, {**run_facts, "baselines": baselines}, protocol)
        write_model_card(
            args,
            "blip",
            record,
            VQA_METRIC_NAMES,
            tags=["blip", "visual-question-answering", "lora"]
            if args.use_lora
            else ["blip", "visual-question-answering"],
            pipeline_tag="visual-question-answering",
            task="vqa",
            model_class="BlipForQuestionAnswering",
            base_model=args.model_name_or_path,
            config=unwrapped.config.to_dict(),
            baselines=record["baselines"],
            samples=samples,
        )
        print(f"\nHub-ready folder: {os.path.abspath(args.output_dir)}")
        print(
            f"vqa_accuracy ({run_questions.dataset}, {run_questions.split}): {metrics['vqa_accuracy']:.4f}; "
            f"baselines {baselines}"
        )
        if args.push_to_hub:
            push_folder(args, "train_blip_vqa.py", logger)
    end_run(accelerator)
    return metrics


if __name__ == "__main__":
    run_script(main, parse_args())
