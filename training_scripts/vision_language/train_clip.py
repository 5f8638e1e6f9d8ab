#!/usr/bin/env python
"""Contrastive image-text training of CLIP (Radford et al. 2021): fine-tune a pretrained CLIP (fully or with LoRA),
or train a small one from scratch, ending with a Hub-ready folder and measured retrieval and zero-shot metrics.

    accelerate launch training_scripts/vision_language/train_clip.py       # small CLIP from scratch, built-in digits
    accelerate launch training_scripts/vision_language/train_clip.py --model_name_or_path <CLIP folder> --use_lora \
        --train_data_dir my_images/                                        # class subfolders or metadata.jsonl

Captions are the data's `--caption_column` (an imagefolder's `metadata.jsonl`), else written from class labels with
several templates ("a handwritten digit seven"). The loss is the symmetric cross-entropy over the batch's image-text
similarity matrix with CLIP's learned temperature; captions of the same class count as matches.

The folder loads with `transformers.CLIPModel.from_pretrained(dir)` and `CLIPProcessor.from_pretrained(dir)` (with
--use_lora it holds the adapter: `peft.PeftModel.from_pretrained(CLIPModel.from_pretrained(base), dir)`), and, when
the data has classes, `zero_shot/` with `hfgen.CLIPZeroShotClassifier.from_pretrained(dir, subfolder="zero_shot")`.
Metrics on the held-out images: image-to-text and text-to-image recall@1/5/10, zero-shot accuracy from the prompt
templates, the accuracy of a linear probe on the frozen image embeddings, and the CLIP score of the matching pairs.
"""

import logging
import math
import os
import tempfile

import torch
from accelerate.logging import get_logger
from accelerate.utils import set_seed
from tqdm.auto import tqdm
from transformers import CLIPConfig, CLIPModel, CLIPProcessor

import hfgen
from hfgen.data import BUILTIN_DIGITS
from hfgen.data.captions import (
    IndexedImages,
    LabelCaptions,
    batch_captions,
    collate_indexed,
)
from hfgen.losses.contrastive import clip_contrastive_loss, same_caption_positives
from hfgen.models.clip_heads import build_clip_processor
from hfgen.models.clip_heads.evaluation import (
    CARD_METRIC_NAMES,
    PROBE_TRAIN_IMAGES,
    clip_protocol,
    embed_images,
    embed_texts,
    evaluate_clip,
    evaluation_captions,
    run_captions,
    tokenize,
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
from hfgen.training.evaluation import load_run_data
from hfgen.training.hub import print_run_summary, push_folder, save_card_grid, write_model_card, write_run_record
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
    check_lora_arguments,
    load_pretrained,
    processor_pixels,
    resolve_model_arguments,
    weight_decay_groups,
)

logger = get_logger(__name__)

# Default length: 600 steps of batch 64 (27 passes over the digits' 1,437 training images), whatever the data's size.
DEFAULT_TRAIN_STEPS = 600

# The CLIP trained from scratch when no --model_name_or_path or --train_from_scratch_config is given: a ViT of 4 px
# patches (64 tokens at 32 px) and a text transformer over captions of at most 16 tokens, both 3 layers of width 64,
# projected to 64 dimensions. The default run on the digits trains in about a minute on 2 CPU cores.
SCRATCH_TEXT_MAX_LENGTH = 16
SCRATCH_ARCHITECTURE = dict(hidden_size=64, intermediate_size=256, num_hidden_layers=3, num_attention_heads=4)
SCRATCH_PATCH_SIZE = 4
SCRATCH_PROJECTION_DIM = 64

# CLIP caps its learned temperature at 100 (logit scale ln 100), which keeps training stable.
MAX_LOGIT_SCALE = math.log(100)


def parse_args(input_args=None):
    parser = make_parser("Contrastive image-text training of CLIP.")
    add_data_arguments(parser, BUILTIN_DIGITS)
    parser.add_argument(
        "--caption_column",
        type=str,
        default=None,
        help="The dataset column holding each image's caption (an imagefolder's metadata.jsonl 'text'). Without "
        "it, captions are written from the class labels with several templates.",
    )
    # model
    add_model_arguments(
        parser,
        pretrained="CLIP (folder or Hub id holding CLIPModel and CLIPProcessor files)",
        scratch="A CLIPConfig (folder or config.json) for a CLIP trained from scratch; its image size is set to "
        "--resolution, its text vocabulary and special tokens to the tokenizer written from the captions. Default: a "
        "small built-in one.",
    )
    parser.add_argument(
        "--templates",
        type=str,
        nargs="+",
        default=None,
        help='Prompt templates for zero-shot classification, each with one {} for the class name (e.g. "a photo '
        "of a {}.\"). Default: the caption templates of the data's classes.",
    )
    add_lora_arguments(parser, default_targets=["q_proj", "k_proj", "v_proj", "out_proj"])
    # optimisation
    parser.add_argument("--adam_beta1", type=float, default=0.9)
    parser.add_argument("--adam_beta2", type=float, default=0.98)
    parser.add_argument(
        "--adam_weight_decay", type=float, default=0.1, help="On weight matrices only, not on gains, biases."
    )
    parser.add_argument(
        "--probe_train_images",
        type=int,
        default=PROBE_TRAIN_IMAGES,
        help="Training images (at most) whose embeddings fit the linear probe.",
    )
    add_run_arguments(parser, family="clip")
    parser.set_defaults(
        lr_scheduler="cosine", lr_warmup_steps=30, max_grad_norm=1.0, checkpointing_steps=200, validation_steps=200
    )
    args = parser.parse_args(input_args)
    check_run_arguments(parser, args)
    check_lora_arguments(parser, args)
    resolve_model_arguments(parser, args)
    check_flag_ranges(parser, args, {"probe_train_images": (1, None, "closed")})
    if args.templates is not None and any(template.count("{}") != 1 for template in args.templates):
        parser.error(f"--templates need exactly one {{}} each, for the class name; got {args.templates}")
    return args


def scratch_config(args, tokenizer) -> CLIPConfig:
    """The config of a CLIP trained from scratch (--train_from_scratch_config or the built-in small one), its text
    vocabulary, length and special tokens those of `tokenizer`."""
    text = dict(
        vocab_size=len(tokenizer),
        max_position_embeddings=tokenizer.model_max_length,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    if args.train_from_scratch_config is not None:
        try:
            config = CLIPConfig.from_pretrained(args.train_from_scratch_config)
        except (OSError, ValueError) as error:
            raise ValueError(
                f"--train_from_scratch_config {args.train_from_scratch_config!r} is not a CLIPConfig folder or "
                f"config.json ({str(error).strip().splitlines()[0]})"
            ) from None
        for key, value in text.items():
            setattr(config.text_config, key, value)
        config.vision_config.image_size = args.resolution
        if args.resolution % config.vision_config.patch_size:
            raise ValueError(
                f"--resolution {args.resolution} is not a multiple of the config's patch_size "
                f"{config.vision_config.patch_size}: choose a --resolution that is"
            )
        return config
    return CLIPConfig(
        text_config={**SCRATCH_ARCHITECTURE, **text},
        vision_config={**SCRATCH_ARCHITECTURE, "image_size": args.resolution, "patch_size": SCRATCH_PATCH_SIZE},
        projection_dim=SCRATCH_PROJECTION_DIM,
    )


def caption_texts(captions) -> list[str]:
    """Every caption the run can draw, whose words the scratch tokenizer's vocabulary holds."""
    if isinstance(captions, LabelCaptions):
        return [template.format(phrase) for template in captions.templates for phrase in captions.phrases]
    return list(captions.texts)


def build_model(args, captions):
    """The CLIP model and processor: pretrained, or new from a config with a tokenizer written from the captions."""
    if args.model_name_or_path is not None:
        return load_pretrained(CLIPModel, CLIPProcessor, args.model_name_or_path)
    # the vocabulary files only seed the tokenizer, which save_pretrained writes into the folder at the end
    with tempfile.TemporaryDirectory() as folder:
        processor = build_clip_processor(
            caption_texts(captions), folder, image_size=args.resolution, max_length=SCRATCH_TEXT_MAX_LENGTH
        )
    return CLIPModel(scratch_config(args, processor.tokenizer)), processor


def caption_keys(batch: dict, captions, texts: list[str]) -> list:
    """What makes two pairs of a batch match: the class behind label captions, the text itself otherwise."""
    return batch["labels"].tolist() if isinstance(captions, LabelCaptions) else texts


@torch.no_grad()
def retrieval_grid(model, processor, captions, eval_texts, data, device, per_class: int = 8) -> tuple[list, list[str]]:
    """For each class prompt (at most ten; or the first distinct held-out captions), the `per_class` held-out images
    CLIP ranks highest: the card's picture of what the text tower learnt. Returns the PIL images and the prompts."""
    image_embeddings, _ = embed_images(model, processor, data.eval, device)
    if isinstance(captions, LabelCaptions):
        prompts = [captions.prompt(label) for label in range(min(10, len(captions.phrases)))]
    else:
        prompts = list(dict.fromkeys(eval_texts))[:10]
    scores = embed_texts(model, processor, prompts, device) @ image_embeddings.t()
    top = scores.topk(min(per_class, scores.shape[1]), dim=1).indices
    pixels = [data.eval[int(index)]["pixel_values"] for index in top.flatten()]
    images = [((p.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8) for p in pixels]
    from PIL import Image

    return [Image.fromarray(image.permute(1, 2, 0).squeeze(-1).numpy()) for image in images], prompts


def main(args):
    accelerator = make_accelerator(args, args.gradient_accumulation_steps)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)

    # 1. data and captions: every image is decoded before anything else, so a broken file fails first
    if args.model_name_or_path is not None:
        # a pretrained CLIP takes its own image size
        args.resolution = CLIPConfig.from_pretrained(args.model_name_or_path).vision_config.image_size
    args.color_mode = "RGB"
    data = load_run_data(args, accelerator, logger, measures_distributions=False)
    captions = run_captions(data, args.caption_column)
    eval_captions = evaluation_captions(captions, data.evaluation.evaluation, args)

    # 2. model: built with the same seed everywhere
    set_seed(args.seed)
    model, processor = build_model(args, captions)
    if args.dry_run:
        data = {split: len(images) for split, images in data.dataset.items()}
        print_dry_run(args, accelerator, model_config=model.config.to_dict(), data=data)
        return None
    if args.use_lora:
        model = add_lora_adapter(model, args)
    trained_parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    set_seed(args.seed, device_specific=True)
    train_dataloader = make_train_dataloader(IndexedImages(data.train), args, collate_indexed)

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
    start_trackers(accelerator, args, "train_clip")

    # 4. resume
    global_step = resume_run(accelerator, args.output_dir, args.resume_from_checkpoint, logger)
    total_batch = args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    logger.info(
        f"{len(data.train)} training images, {args.max_train_steps} steps, batch {total_batch} "
        f"({accelerator.num_processes} processes), {sum(p.numel() for p in trained_parameters)} trained parameters"
    )
    progress = tqdm(
        range(args.max_train_steps), initial=global_step, desc="steps", disable=not accelerator.is_local_main_process
    )
    unwrapped = accelerator.unwrap_model(model)

    # 5. the loop
    model.train()
    batches = endless_batches(accelerator, train_dataloader, global_step * args.gradient_accumulation_steps)
    while global_step < args.max_train_steps:
        batch = next(batches)
        with accelerator.accumulate(model):
            # 5.1 a caption for each image: its own, or a template filled with its class (drawn from the global
            # RNG, which checkpoints keep)
            texts = batch_captions(batch, captions)
            pixels = processor_pixels(batch["pixel_values"], processor.image_processor)
            output = model(pixel_values=pixels, **tokenize(processor, texts, accelerator.device))
            # 5.2 the symmetric contrastive loss; captions of one class all match its images
            positives = same_caption_positives(caption_keys(batch, captions, texts)).to(accelerator.device)
            loss = clip_contrastive_loss(output.image_embeds, output.text_embeds, unwrapped.logit_scale, positives)
            check_finite(loss, "loss", global_step, args.output_dir)
            accelerator.backward(loss)
            if accelerator.sync_gradients and args.max_grad_norm is not None:
                accelerator.clip_grad_norm_(trained_parameters, args.max_grad_norm)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad()
            with torch.no_grad():
                unwrapped.logit_scale.clamp_(0, MAX_LOGIT_SCALE)
        if not accelerator.sync_gradients:
            continue
        global_step += 1
        progress.update(1)
        logs = {"loss": loss.item(), "temperature": 1 / unwrapped.logit_scale.exp().item()}
        logs["lr"] = lr_scheduler.get_last_lr()[0]
        progress.set_postfix(loss=f"{logs['loss']:.3f}")
        accelerator.log(logs, step=global_step)
        if global_step % args.checkpointing_steps == 0:
            save_checkpoint(accelerator, args.output_dir, global_step, args.checkpoints_total_limit)
        if global_step % args.validation_steps == 0 and accelerator.is_main_process:
            metrics, _ = evaluate_clip(unwrapped, processor, captions, eval_captions, data, args, accelerator.device)
            accelerator.log({f"eval/{name}": value for name, value in metrics.items()}, step=global_step)
            images, _ = retrieval_grid(unwrapped, processor, captions, eval_captions[0], data, accelerator.device)
            save_grid(images, os.path.join(args.output_dir, "validation"), "retrieval", accelerator, global_step, 8)
    progress.close()

    # 6. the end of the run, on the main process: metrics, the Hub-ready folder (weights or adapter, processor,
    # zero-shot classifier, retrieval grid, record, card) and the upload
    run_facts = check_replicas(accelerator, model, global_step, logger)
    metrics = None
    if accelerator.is_main_process:
        metrics, baselines = evaluate_clip(
            unwrapped, processor, captions, eval_captions, data, args, accelerator.device
        )
        unwrapped.save_pretrained(args.output_dir)  # the adapter alone with --use_lora
        processor.save_pretrained(args.output_dir)
        # the zero-shot classifier is a whole CLIP: kept for models trained here, not beside a LoRA adapter
        has_classes = isinstance(captions, LabelCaptions) and not args.use_lora
        if has_classes:
            templates = args.templates or list(captions.templates)
            classifier = hfgen.CLIPZeroShotClassifier.from_clip(
                unwrapped, processor.tokenizer, captions.phrases, templates
            )
            classifier.save_pretrained(os.path.join(args.output_dir, "zero_shot"))
        images, prompts = retrieval_grid(unwrapped, processor, captions, eval_captions[0], data, accelerator.device)
        save_card_grid(images, args.output_dir, columns=8)
        protocol = clip_protocol(data, captions, args)
        record = write_run_record(args, metrics, None, {**run_facts, "baselines": baselines}, protocol)
        write_model_card(
            args,
            "clip",
            record,
            CARD_METRIC_NAMES,
            tags=["clip", "contrastive", "lora"] if args.use_lora else ["clip", "contrastive"],
            pipeline_tag="zero-shot-image-classification",
            config=unwrapped.config.to_dict(),
            base_model=args.model_name_or_path,
            baselines=baselines,
            grid_prompts=prompts,
            has_zero_shot=has_classes,
        )
        print_run_summary(args.output_dir, data.evaluation, metrics, measures_distributions=False)
        if args.push_to_hub:
            push_folder(args, "train_clip.py", logger)
    end_run(accelerator)
    return metrics


if __name__ == "__main__":
    run_script(main, parse_args())
