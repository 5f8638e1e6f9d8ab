#!/usr/bin/env python
"""Open-vocabulary detection training of OWL-ViT (Minderer et al. 2022) and OWLv2 (Minderer et al. 2023): fine-tune a
pretrained detector (fully or with LoRA), or train a small OWL-ViT from scratch, ending with a Hub-ready folder and its
measured mean average precision.

    accelerate launch training_scripts/vision_language/train_owlvit_detection.py   # from scratch, digit canvases
    accelerate launch training_scripts/vision_language/train_owlvit_detection.py --model_name_or_path <OWL folder> \
        --use_lora --train_data_dir my_images/                 # metadata.jsonl with COCO boxes per image

Each class is a text query, its name in `--query_template` ("a photo of the digit seven"), and every image is read
with all the queries. The loss is the set loss of `hfgen.OwlViTForOpenVocabularyDetection` (Carion et al. 2020): each
image's boxes are matched one-to-one to the detector's patch predictions (Hungarian matching), every prediction learns
its class scores (focal or binary cross-entropy; an unmatched prediction learns "no class") and the matched ones their
box (L1 and GIoU).

The folder holds transformers' detector and processor: `OwlViTForObjectDetection.from_pretrained(dir)` (or
`Owlv2ForObjectDetection`, or `AutoModelForZeroShotObjectDetection`) and `OwlViTProcessor.from_pretrained(dir)`; with
--use_lora it holds the adapter: `peft.PeftModel.from_pretrained(OwlViTForObjectDetection.from_pretrained(base), dir)`.
Metrics on the held-out images: COCO's mAP@[.5:.95], mAP@0.5 and mAP@0.75 of the detections that transformers' own
`post_process_grounded_object_detection` returns for the class queries, beside two baselines (random boxes; the true
boxes with every class); `hfgen evaluate <dir>` measures the saved folder the same way
(`hfgen.models.owlvit_heads.evaluation`).
"""

import logging
import math
import os
import tempfile
from functools import partial

import torch
from accelerate.logging import get_logger
from accelerate.utils import set_seed
from PIL import Image, ImageDraw
from tqdm.auto import tqdm
from transformers import AutoConfig, Owlv2Config, Owlv2Processor, OwlViTConfig, OwlViTProcessor

from hfgen.losses.detection import CLASS_LOSSES
from hfgen.metrics.detection import box_convert
from hfgen.models.owlvit_heads import (
    DETECTOR_CLASSES,
    DETECTOR_CONFIGS,
    OwlViTDetectionConfig,
    OwlViTForOpenVocabularyDetection,
    build_owl_processor,
)
from hfgen.models.owlvit_heads.evaluation import (
    CANVAS_QUERY_TEMPLATE,
    CANVAS_SIZE,
    CARD_METRIC_NAMES,
    MAX_DETECTIONS,
    QUERY_TEMPLATE,
    TRAIN_CANVASES,
    baselines,
    default_query_template,
    evaluate,
    num_predictions,
    owl_protocol,
)
from hfgen.training import save_checkpoint
from hfgen.training.arguments import add_run_arguments, check_run_arguments, print_dry_run, resolve_max_train_steps
from hfgen.training.cli import check_flag_ranges, make_parser, run_script
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
    DetectionData,
    add_detection_data_arguments,
    add_lora_adapter,
    add_lora_arguments,
    add_model_arguments,
    check_lora_arguments,
    load_detection_data,
    load_pretrained,
    resolve_detection_data_arguments,
    resolve_model_arguments,
    weight_decay_groups,
)

logger = get_logger(__name__)

# Default length: 2,000 steps of batch 32 (8 passes over the 8,000 training canvases), whatever the data's size.
DEFAULT_TRAIN_STEPS = 2000

# The OWL-ViT trained from scratch when no --model_name_or_path or --train_from_scratch_config is given: a ViT of 8 px
# patches (64 box predictions on a 64 px image) and a text transformer over queries of at most 16 tokens, both 3
# layers of width 64, the projection as wide as the text tower (as OWL's class head needs). The default run on the
# digit canvases trains in about five minutes on 2 CPU cores.
SCRATCH_RESOLUTION = 64
SCRATCH_TEXT_MAX_LENGTH = 16
SCRATCH_ARCHITECTURE = dict(hidden_size=64, intermediate_size=256, num_hidden_layers=3, num_attention_heads=4)
SCRATCH_PATCH_SIZE = 8

PROCESSOR_CLASSES = {"owlvit": OwlViTProcessor, "owlv2": Owlv2Processor}

# The validation grids and the card's picture draw the detections scoring at least this, at most 10 per image.
DRAW_SCORE = 0.3
DRAW_SIZE = 192


def parse_args(input_args=None):
    parser = make_parser("Open-vocabulary detection training of OWL-ViT / OWLv2.")
    add_detection_data_arguments(parser, CANVAS_SIZE, TRAIN_CANVASES)
    parser.add_argument(
        "--query_template",
        type=str,
        default=None,
        help=f'The text query of each class, with one {{}} for its name. Default: "{CANVAS_QUERY_TEMPLATE}" on the '
        f'built-in canvases, "{QUERY_TEMPLATE}" otherwise.',
    )
    parser.add_argument("--dataloader_num_workers", type=int, default=0)
    # model
    add_model_arguments(
        parser,
        pretrained="OWL-ViT or OWLv2 (folder or Hub id holding the detector and its processor)",
        scratch="An OwlViTConfig or Owlv2Config (folder or config.json) for a detector trained from scratch; its "
        "image size is set to --resolution, its text vocabulary and special tokens to the tokenizer written from the "
        "queries. Default: a small built-in OWL-ViT.",
    )
    parser.add_argument(
        "--resolution",
        type=int,
        default=None,
        help=f"Image size of a detector trained from scratch (default {SCRATCH_RESOLUTION}); a pretrained one "
        "takes its processor's.",
    )
    add_lora_arguments(parser, default_targets=["q_proj", "k_proj", "v_proj", "out_proj"])
    # loss
    parser.add_argument(
        "--class_loss",
        type=str,
        default="focal",
        choices=list(CLASS_LOSSES),
        help="Sigmoid focal loss (Lin et al. 2017) or binary cross-entropy on every prediction's class scores.",
    )
    parser.add_argument("--class_loss_weight", type=float, default=2.0)
    parser.add_argument("--bbox_loss_weight", type=float, default=5.0, help="Weight of the L1 box loss.")
    parser.add_argument("--giou_loss_weight", type=float, default=2.0)
    parser.add_argument("--focal_alpha", type=float, default=0.25)
    parser.add_argument("--focal_gamma", type=float, default=2.0)
    # optimisation
    parser.add_argument("--adam_beta1", type=float, default=0.9)
    parser.add_argument("--adam_beta2", type=float, default=0.999)
    parser.add_argument(
        "--adam_weight_decay", type=float, default=1e-4, help="On weight matrices only, not on gains, biases."
    )
    add_run_arguments(parser, family="owlvit")
    parser.set_defaults(
        train_batch_size=32,
        lr_scheduler="cosine",
        lr_warmup_steps=100,
        max_grad_norm=1.0,
        checkpointing_steps=500,
        validation_steps=500,
    )
    args = parser.parse_args(input_args)
    check_run_arguments(parser, args)
    check_lora_arguments(parser, args)
    resolve_model_arguments(parser, args)
    check_flag_ranges(
        parser,
        args,
        {
            "class_loss_weight": (0, None, "closed"),
            "bbox_loss_weight": (0, None, "closed"),
            "giou_loss_weight": (0, None, "closed"),
            "focal_alpha": (0, 1, "closed"),
            "focal_gamma": (0, None, "closed"),
        },
    )
    resolve_detection_data_arguments(parser, args, CANVAS_SIZE, TRAIN_CANVASES)
    args.query_template = args.query_template or default_query_template(args)
    if args.query_template.count("{}") != 1:
        parser.error(f"--query_template needs exactly one {{}}, for the class name; got {args.query_template!r}")
    if args.model_name_or_path is not None:
        if args.resolution is not None:
            parser.error("--resolution sets a new detector's image size: a pretrained one takes its processor's")
    elif args.resolution is None:
        args.resolution = SCRATCH_RESOLUTION
    return args


# --- 1. data ---


def box_targets(objects: dict, size: tuple[int, int], pads_to_square: bool) -> dict[str, torch.Tensor]:
    """One image's boxes as the detector predicts them: normalised cxcywh, with their class ids (query indices).
    OWL-ViT's processor stretches an image to a square, so boxes are fractions of its width and height; OWLv2's pads
    it to a square at the bottom and right first, so they are fractions of its longer side."""
    width, height = size
    scale = [max(width, height)] * 4 if pads_to_square else [width, height, width, height]
    boxes = torch.tensor(objects["bbox"], dtype=torch.float32).view(-1, 4) / torch.tensor(scale)
    return {
        "class_labels": torch.tensor(objects["category"], dtype=torch.long),
        "boxes": box_convert(boxes, "xyxy", "cxcywh"),
    }


def collate_detection(rows: list[dict], image_processor, pads_to_square: bool) -> dict:
    """A training batch: the images through the processor's image processor (as at inference) and their targets."""
    images = [row["image"] for row in rows]
    return {
        "pixel_values": image_processor(images=images, return_tensors="pt").pixel_values,
        "labels": [
            box_targets(row["objects"], image.size, pads_to_square) for row, image in zip(rows, images, strict=True)
        ],
    }


# --- 2. model ---


def loss_settings(args) -> dict:
    return dict(
        class_loss=args.class_loss,
        class_loss_weight=args.class_loss_weight,
        bbox_loss_weight=args.bbox_loss_weight,
        giou_loss_weight=args.giou_loss_weight,
        focal_alpha=args.focal_alpha,
        focal_gamma=args.focal_gamma,
    )


def scratch_detector_config(args) -> OwlViTConfig | Owlv2Config:
    """--train_from_scratch_config (an OWL-ViT or OWLv2 config) or the built-in small OWL-ViT, at --resolution."""
    if args.train_from_scratch_config is None:
        return OwlViTConfig(
            text_config=dict(SCRATCH_ARCHITECTURE),
            vision_config={**SCRATCH_ARCHITECTURE, "patch_size": SCRATCH_PATCH_SIZE},
            projection_dim=SCRATCH_ARCHITECTURE["hidden_size"],
        )
    try:
        config = AutoConfig.from_pretrained(args.train_from_scratch_config)
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(
            f"--train_from_scratch_config {args.train_from_scratch_config!r} is not an OwlViTConfig or Owlv2Config "
            f"folder or config.json ({str(error).strip().splitlines()[0]})"
        ) from None
    if config.model_type not in DETECTOR_CONFIGS:
        raise ValueError(
            f"--train_from_scratch_config {args.train_from_scratch_config!r} is a {config.model_type!r} config, not "
            f"an OWL-ViT or OWLv2 one ({', '.join(DETECTOR_CONFIGS)})"
        )
    if config.projection_dim != config.text_config.hidden_size:
        raise ValueError(
            f"--train_from_scratch_config {args.train_from_scratch_config!r} has projection_dim "
            f"{config.projection_dim} but a text tower of width {config.text_config.hidden_size}: OWL's class head "
            "needs them equal"
        )
    return config


def build_model(args, queries: list[str]):
    """The trainable detector and its processor: pretrained, or new from a config with a tokenizer written from the
    queries."""
    if args.model_name_or_path is not None:
        try:
            model_type = AutoConfig.from_pretrained(args.model_name_or_path).model_type
        except (OSError, ValueError, KeyError) as error:
            model_type = f"unreadable ({str(error).strip().splitlines()[0]})"
        if model_type not in DETECTOR_CLASSES:
            raise ValueError(
                f"--model_name_or_path {args.model_name_or_path!r} is not an OWL-ViT or OWLv2 folder (model type "
                f"{model_type}): give a folder saved by OwlViTForObjectDetection / Owlv2ForObjectDetection with its "
                "processor, or leave it out to train from scratch"
            )
        detector, processor = load_pretrained(
            DETECTOR_CLASSES[model_type], PROCESSOR_CLASSES[model_type], args.model_name_or_path
        )
        return OwlViTForOpenVocabularyDetection.from_owlvit(detector, **loss_settings(args)), processor
    config = scratch_detector_config(args)
    config.vision_config.image_size = args.resolution
    if args.resolution % config.vision_config.patch_size:
        raise ValueError(
            f"--resolution {args.resolution} is not a multiple of the patch size {config.vision_config.patch_size}: "
            "choose a --resolution that is"
        )
    # the vocabulary files only seed the tokenizer, which save_pretrained writes into the folder at the end
    with tempfile.TemporaryDirectory() as folder:
        processor = build_owl_processor(
            queries, folder, args.resolution, SCRATCH_TEXT_MAX_LENGTH, model_type=config.model_type
        )
    tokenizer = processor.tokenizer
    for key, value in dict(
        vocab_size=len(tokenizer),
        max_position_embeddings=tokenizer.model_max_length,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    ).items():
        setattr(config.text_config, key, value)
    return OwlViTForOpenVocabularyDetection(
        OwlViTDetectionConfig(detector_config=config, **loss_settings(args))
    ), processor


# --- 3. evaluation: the detections drawn (the metrics are hfgen.models.owlvit_heads.evaluation's) ---


def draw_detections(image, detection: dict, class_names: list[str]) -> Image.Image:
    """`image` on a black `DRAW_SIZE` square (enlarged, nearest neighbour) with its detections scoring at least
    `DRAW_SCORE` (at most 10), each box labelled with its class and score."""
    scale = DRAW_SIZE / max(image.size)
    picture = Image.new("RGB", (DRAW_SIZE, DRAW_SIZE))
    picture.paste(
        image.convert("RGB").resize((round(image.width * scale), round(image.height * scale)), Image.NEAREST)
    )
    draw = ImageDraw.Draw(picture)
    draw.rectangle((0, 0, DRAW_SIZE - 1, DRAW_SIZE - 1), outline=(96, 96, 96))  # the grid's cells apart
    for box, score, label in list(zip(detection["boxes"], detection["scores"], detection["labels"], strict=True))[:10]:
        if score < DRAW_SCORE:
            break  # the detections are sorted by score
        x0, y0, x1, y1 = (box * scale).tolist()
        draw.rectangle((x0, y0, x1, y1), outline=(255, 64, 64), width=2)
        draw.text((x0 + 2, y0 + 1), f"{class_names[label]} {score:.2f}", fill=(255, 255, 0))
    return picture


def detection_grid(data: DetectionData, detections: list[dict], count: int) -> list[Image.Image]:
    return [
        draw_detections(image, detection, data.class_names)
        for image, detection in zip(data.eval["image"][:count], detections[:count], strict=True)
    ]


def main(args):
    accelerator = make_accelerator(args, args.gradient_accumulation_steps)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)

    # 1. data and queries: one query per class
    data = load_detection_data(args)
    queries = [args.query_template.format(name) for name in data.class_names]
    logger.info(f"{len(data.train)} training images, {data.split} of {data.dataset} held out; queries: {queries}")

    # 2. model: built with the same seed everywhere
    set_seed(args.seed)
    model, processor = build_model(args, queries)
    most_boxes = max(len(objects["bbox"]) for objects in data.train["objects"])
    box_predictions = num_predictions(model.config.detector_config.vision_config)
    if most_boxes > box_predictions:
        raise ValueError(
            f"an image of {data.dataset} holds {most_boxes} boxes, more than the detector's {box_predictions} "
            "box predictions (one per patch): train at a larger --resolution, or with smaller patches"
        )
    if args.dry_run:
        sizes = {"train": len(data.train), "evaluation": len(data.eval)}
        print_dry_run(args, accelerator, model_config=model.config.to_dict(), data=sizes, queries=queries)
        return None
    if args.use_lora:
        # the adapter goes on transformers' detector itself, so that it loads onto the base detector alone
        model.detector = add_lora_adapter(model.detector, args)
    trained_parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    set_seed(args.seed, device_specific=True)
    pads_to_square = model.config.detector_config.model_type == "owlv2"
    collate = partial(collate_detection, image_processor=processor.image_processor, pads_to_square=pads_to_square)
    train_dataloader = make_train_dataloader(data.train, args, collate)
    query_inputs = processor(text=queries, return_tensors="pt")

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
    start_trackers(accelerator, args, "train_owlvit_detection")

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

    # 5. the loop
    model.train()
    batches = endless_batches(accelerator, train_dataloader, global_step * args.gradient_accumulation_steps)
    while global_step < args.max_train_steps:
        batch = next(batches)
        with accelerator.accumulate(model):
            # 5.1 every image reads every query: the queries' tokens repeated image after image, as OWL lays them out
            num_images = batch["pixel_values"].shape[0]
            output = model(
                pixel_values=batch["pixel_values"],
                input_ids=query_inputs["input_ids"].repeat(num_images, 1).to(accelerator.device),
                attention_mask=query_inputs["attention_mask"].repeat(num_images, 1).to(accelerator.device),
                labels=batch["labels"],
            )
            # 5.2 the set loss: boxes matched to patch predictions, class loss everywhere, box losses on matches
            loss = output.loss
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
        logs = {"loss": loss.item(), **{name: value.item() for name, value in output.loss_dict.items()}}
        logs["lr"] = lr_scheduler.get_last_lr()[0]
        progress.set_postfix(loss=f"{logs['loss']:.3f}")
        accelerator.log(logs, step=global_step)
        if global_step % args.checkpointing_steps == 0:
            save_checkpoint(accelerator, args.output_dir, global_step, args.checkpoints_total_limit)
        if global_step % args.validation_steps == 0 and accelerator.is_main_process:
            metrics, detections = evaluate(unwrapped.detector, processor, data, queries, accelerator.device)
            scalars = {f"eval/{name}": value for name, value in metrics.items() if not isinstance(value, dict)}
            accelerator.log(scalars, step=global_step)
            logger.info(f"step {global_step}: " + ", ".join(f"{k} {v:.4g}" for k, v in scalars.items()))
            images = detection_grid(data, detections, args.num_validation_images)
            save_grid(images, os.path.join(args.output_dir, "validation"), "detections", accelerator, global_step, 4)
    progress.close()

    # 6. the end of the run, on the main process: metrics, the Hub-ready folder (detector or adapter, processor,
    # detections grid, record, card) and the upload
    run_facts = check_replicas(accelerator, model, global_step, logger)
    metrics = None
    if accelerator.is_main_process:
        metrics, detections = evaluate(unwrapped.detector, processor, data, queries, accelerator.device)
        reference = baselines(data, min(box_predictions, MAX_DETECTIONS), args.seed)
        # the training queries travel with the detector (`id2label`, as transformers' label names do): the demo and
        # users start from them
        unwrapped.detector.config.id2label = dict(enumerate(queries))
        unwrapped.detector.config.label2id = {query: index for index, query in enumerate(queries)}
        unwrapped.detector.save_pretrained(args.output_dir)  # transformers' detector, or its adapter with --use_lora
        processor.save_pretrained(args.output_dir)
        save_card_grid(detection_grid(data, detections, args.num_validation_images), args.output_dir, columns=4)
        protocol = owl_protocol(data, queries, args)
        record = write_run_record(args, metrics, None, {**run_facts, "baselines": reference}, protocol)
        model_type = unwrapped.config.detector_config.model_type
        write_model_card(
            args,
            "owlvit",
            record,
            CARD_METRIC_NAMES,
            tags=["owlvit", "object-detection", "lora"] if args.use_lora else ["owlvit", "object-detection"],
            pipeline_tag="zero-shot-object-detection",
            config=unwrapped.config.detector_config.to_dict(),
            baselines=reference,
            queries=queries,
            base_model=args.model_name_or_path,
            detector_class=DETECTOR_CLASSES[model_type].__name__,
            processor_class=PROCESSOR_CLASSES[model_type].__name__,
        )
        print_run_summary(args.output_dir, data, metrics, measures_distributions=False)
        if args.push_to_hub:
            push_folder(args, "train_owlvit_detection.py", logger)
    end_run(accelerator)
    return metrics


if __name__ == "__main__":
    run_script(main, parse_args())
