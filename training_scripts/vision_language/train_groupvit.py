#!/usr/bin/env python
"""Contrastive image-text training of GroupViT (Xu et al. 2022) for zero-shot semantic segmentation: fine-tune a
pretrained GroupViT (fully or with LoRA), or train a small one from scratch, ending with a Hub-ready
`hfgen.GroupViTSegmentationPipeline` folder and its measured mean IoU.

    accelerate launch training_scripts/vision_language/train_groupvit.py        # from scratch, digit canvases
    accelerate launch training_scripts/vision_language/train_groupvit.py --train_data_dir my_images/
                                                                        # metadata.jsonl with COCO boxes per image

GroupViT's grouping learns from text alone. Each step pairs every image with one of its captions ("two digits: three
and seven", written from its boxes left to right) and reads it against the prompts of every class ("the digit seven":
`--prompt_template` filled with the class name; Xu et al.'s multi-label loss); both symmetric contrastive losses
(CLIP's, with the learned temperature) pull the matching pairs together, an image matching the prompt of every class
it holds. Segmentation comes from the grouping: the pipeline labels each pixel with the class prompt nearest its
group's embedding, or background when no prompt is near enough (a cosine similarity threshold the script calibrates
on training images and saves in the folder). So the prompt loss reads each prompt against the image's nearest group
by default (`--prompt_pooling max`, as segmentation reads the groups) rather than against the mean of the groups
(`mean`, Xu et al.'s image embedding).

On the built-in canvases a training-only loss also teaches the image tower which digit is where
(`--patch_loss_weight`): a linear layer on each patch's output from the first grouping stage's layers (not saved)
learns to name the digit with the most ink in the patch, or background, from the canvases' pixel masks. Text alone
teaches a small ViT from scratch to separate digits from background in a few minutes, but hardly which digit is which.

The folder loads with `hfgen.GroupViTSegmentationPipeline.from_pretrained(dir)`; its `model/` with
`transformers.GroupViTModel.from_pretrained(dir, subfolder="model")`. Metrics on the held-out images: mean IoU over
background and the classes, pixel accuracy, and the IoU of digit versus background, against the canvases' pixel masks
(the user's boxes filled in, for data without masks), beside two baselines (everything background; the true masks
with random classes); `hfgen evaluate <dir>` measures the saved folder the same way, with its saved threshold
(`hfgen.pipelines.groupvit.evaluation`).
"""

import logging
import math
import os
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
from accelerate.logging import get_logger
from accelerate.utils import set_seed
from PIL import Image
from tqdm.auto import tqdm
from transformers import CLIPProcessor, GroupViTConfig, GroupViTModel

import hfgen
from hfgen.data import canvas_captions, object_captions
from hfgen.data.captions import NUMBER_WORDS
from hfgen.data.vision_language import patch_labels
from hfgen.losses.contrastive import (
    clip_contrastive_loss,
    grouped_multi_label_contrastive_loss,
    multi_label_contrastive_loss,
    same_caption_positives,
)
from hfgen.models.clip_heads import build_clip_processor
from hfgen.pipelines.groupvit import label_colours
from hfgen.pipelines.groupvit.evaluation import (
    CANVAS_SIZE,
    CARD_METRIC_NAMES,
    TRAIN_CANVASES,
    baselines,
    calibrate_threshold,
    evaluate_pipeline,
    groupvit_protocol,
    is_builtin,
    target_mask,
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
    add_patch_loss_argument,
    check_lora_arguments,
    load_config,
    load_detection_data,
    load_pretrained,
    processor_pixels,
    resolve_detection_data_arguments,
    resolve_model_arguments,
    resolve_patch_loss_weight,
    weight_decay_groups,
)

logger = get_logger(__name__)

# Default length: 2,500 steps of batch 64 (20 passes over the 8,000 training canvases), whatever the data's size.
DEFAULT_TRAIN_STEPS = 2500

# The GroupViT trained from scratch when no --model_name_or_path or --train_from_scratch_config is given: 8 px patches
# of 64 px images (64 tokens) grouped into 16 and then 4 groups over three stages of 2, 2 and 1 layers of width 64, and
# a text transformer of 2 layers over captions of at most 16 tokens. The default run trains in about 5 minutes on 2 CPU
# cores (a batch-64 step takes about 0.12 s; 4 px patches would cost five times as much).
SCRATCH_RESOLUTION = 64
SCRATCH_TEXT_MAX_LENGTH = 16
SCRATCH_TEXT = dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4)
SCRATCH_VISION = dict(
    hidden_size=64,
    intermediate_size=256,
    depths=[2, 2, 1],
    num_hidden_layers=5,
    num_group_tokens=[16, 4, 0],
    num_output_groups=[16, 4, 4],
    num_attention_heads=4,
    patch_size=8,
)
SCRATCH_PROJECTION = dict(projection_dim=64, projection_intermediate_dim=256)

# CLIP's cap on the learned temperature (logit scale ln 100), which keeps training stable.
MAX_LOGIT_SCALE = math.log(100)

# The patch labels of the built-in canvases: background and the ten digits.
NUM_PATCH_LABELS = 1 + len(NUMBER_WORDS)


def parse_args(input_args=None):
    parser = make_parser("Contrastive image-text training of GroupViT for zero-shot semantic segmentation.")
    add_detection_data_arguments(parser, CANVAS_SIZE, TRAIN_CANVASES)
    parser.add_argument(
        "--prompt_template",
        type=str,
        default=None,
        help="The text of each class, with one {} for its name: the multi-label loss pairs images with it, and "
        'segmentation asks for it. Default: "the digit {}" on the built-in canvases, "a photo of a {}" otherwise.',
    )
    parser.add_argument(
        "--prompt_loss_weight",
        type=float,
        default=1.0,
        help="Weight of the contrastive loss between images and the prompts of their classes (0: captions only).",
    )
    parser.add_argument(
        "--prompt_pooling",
        choices=["max", "mean"],
        default="max",
        help="What the class prompts are read against: the image's group nearest each prompt (max, as segmentation "
        "reads the groups), or the mean of its groups (mean, the image embedding of Xu et al.'s loss).",
    )
    add_patch_loss_argument(parser)
    parser.add_argument("--dataloader_num_workers", type=int, default=0)
    # model
    add_model_arguments(
        parser,
        pretrained="GroupViT (folder or Hub id holding GroupViTModel and CLIPProcessor files)",
        scratch="A GroupViTConfig (folder or config.json) for a GroupViT trained from scratch; its image size is set "
        "to --resolution, its text vocabulary and special tokens to the tokenizer written from the captions. Default: "
        "a small built-in one.",
    )
    parser.add_argument(
        "--resolution",
        type=int,
        default=None,
        help=f"Image size of a GroupViT trained from scratch (default {SCRATCH_RESOLUTION}); a pretrained one takes "
        "its config's.",
    )
    add_lora_arguments(parser, default_targets=["q_proj", "k_proj", "v_proj", "out_proj"])
    # optimisation
    parser.add_argument("--adam_beta1", type=float, default=0.9)
    parser.add_argument("--adam_beta2", type=float, default=0.98)
    parser.add_argument(
        "--adam_weight_decay", type=float, default=0.05, help="On weight matrices only, not on gains, biases."
    )
    add_run_arguments(parser, family="groupvit")
    parser.set_defaults(
        lr_scheduler="cosine", lr_warmup_steps=50, max_grad_norm=1.0, checkpointing_steps=500, validation_steps=500
    )
    args = parser.parse_args(input_args)
    check_run_arguments(parser, args)
    check_lora_arguments(parser, args)
    resolve_model_arguments(parser, args)
    check_flag_ranges(
        parser, args, {"prompt_loss_weight": (0, None, "closed"), "patch_loss_weight": (0, None, "closed")}
    )
    builtin = resolve_detection_data_arguments(parser, args, CANVAS_SIZE, TRAIN_CANVASES)
    resolve_patch_loss_weight(parser, args, builtin)
    if args.prompt_template is None:
        args.prompt_template = "the digit {}" if builtin else "a photo of a {}"
    if args.prompt_template.count("{}") != 1:
        parser.error(f"--prompt_template needs exactly one {{}}, for the class name; got {args.prompt_template!r}")
    if args.model_name_or_path is not None:
        if args.resolution is not None:
            parser.error("--resolution sets a new GroupViT's image size: a pretrained one takes its config's")
    elif args.resolution is None:
        args.resolution = SCRATCH_RESOLUTION
    return args


# --- 1. data: images, their captions and classes ---


def image_captions(objects: dict, class_names: list[str], builtin: bool) -> list[str]:
    if builtin:
        # without the count caption ("one digit: seven"): its count words are digit names, and would tie the
        # prompt "the digit one" to every canvas of one digit
        return canvas_captions(objects, class_names)[1:]
    return object_captions(objects, class_names)


def all_texts(data: DetectionData, args) -> list[str]:
    """Every caption and prompt the run can read, whose words the scratch tokenizer's vocabulary holds."""
    builtin = is_builtin(args)
    texts = [args.prompt_template.format(name) for name in data.class_names]
    for split in (data.train, data.eval):
        for objects in split["objects"]:
            if objects["bbox"]:
                texts.extend(image_captions(objects, data.class_names, builtin))
    return texts


def to_model_pixels(image: Image.Image, resolution: int) -> torch.Tensor:
    """An image as a (3, resolution, resolution) tensor in [-1, 1], resized whole as the pipeline resizes it."""
    image = image.convert("RGB").resize((resolution, resolution), Image.BICUBIC)
    return torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1) / 127.5 - 1


class CaptionedImages(torch.utils.data.Dataset):
    """Training images with the captions they may be described by and the classes they hold (images without boxes
    are left out: they have nothing to be captioned with); with a `patch_size`, the labels of their patches
    (`patch_labels` of the built-in canvases' masks, drawn at the model's resolution)."""

    def __init__(self, data: DetectionData, resolution: int, builtin: bool, patch_size: int | None = None):
        rows = [index for index, objects in enumerate(data.train["objects"]) if objects["bbox"]]
        self.images = data.train.select(rows)
        self.resolution = resolution
        self.captions = [image_captions(objects, data.class_names, builtin) for objects in self.images["objects"]]
        self.classes = [sorted(set(objects["category"])) for objects in self.images["objects"]]
        self.patches = None
        if patch_size is not None:
            masks = self.images["segmentation"]
            if masks and masks[0].size != (resolution, resolution):
                raise ValueError(
                    f"--patch_loss_weight needs the canvases drawn at the model's {resolution} px: give "
                    f"--canvas_size {resolution}, or --patch_loss_weight 0"
                )
            self.patches = patch_labels(masks, patch_size)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        row = {
            "pixel_values": to_model_pixels(self.images[index]["image"], self.resolution),
            "captions": self.captions[index],
            "classes": self.classes[index],
        }
        if self.patches is not None:
            row["patch_labels"] = self.patches[index]
        return row


def collate(rows: list[dict]) -> dict:
    batch = {
        "pixel_values": torch.stack([row["pixel_values"] for row in rows]),
        "captions": [row["captions"] for row in rows],
        "classes": [row["classes"] for row in rows],
    }
    if "patch_labels" in rows[0]:
        batch["patch_labels"] = torch.stack([row["patch_labels"] for row in rows])
    return batch


def draw_captions(batch: dict) -> list[str]:
    """One caption per image among its own, drawn from the global RNG (which checkpoints keep)."""
    return [options[torch.randint(len(options), ()).item()] for options in batch["captions"]]


def class_presence(batch: dict, num_classes: int) -> torch.Tensor:
    """`(batch, num_classes)` bool: which classes each image holds, so which class prompts it matches."""
    presence = torch.zeros(len(batch["classes"]), num_classes, dtype=torch.bool)
    for row, classes in enumerate(batch["classes"]):
        presence[row, classes] = True
    return presence


# --- 2. model ---


def scratch_config(args, tokenizer) -> GroupViTConfig:
    """The config of a GroupViT trained from scratch (--train_from_scratch_config or the built-in small one), its
    text vocabulary, length and special tokens those of `tokenizer`."""
    text = dict(
        vocab_size=len(tokenizer),
        max_position_embeddings=tokenizer.model_max_length,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    if args.train_from_scratch_config is None:
        return GroupViTConfig(
            text_config={**SCRATCH_TEXT, **text},
            vision_config={**SCRATCH_VISION, "image_size": args.resolution},
            **SCRATCH_PROJECTION,
        )
    config = load_config(GroupViTConfig, args.train_from_scratch_config, "--train_from_scratch_config")
    for key, value in text.items():
        setattr(config.text_config, key, value)
    config.vision_config.image_size = args.resolution
    if args.resolution % config.vision_config.patch_size:
        raise ValueError(
            f"--resolution {args.resolution} is not a multiple of the config's patch_size "
            f"{config.vision_config.patch_size}: choose a --resolution that is"
        )
    return config


def build_model(args, data: DetectionData) -> tuple[GroupViTModel, CLIPProcessor]:
    """The GroupViT and its processor: pretrained, or new from a config with a tokenizer written from the texts."""
    if args.model_name_or_path is not None:
        return load_pretrained(GroupViTModel, CLIPProcessor, args.model_name_or_path)
    # the vocabulary files only seed the tokenizer, which the pipeline saves into the folder at the end
    with tempfile.TemporaryDirectory() as folder:
        processor = build_clip_processor(
            all_texts(data, args), folder, image_size=args.resolution, max_length=SCRATCH_TEXT_MAX_LENGTH
        )
    model = GroupViTModel(scratch_config(args, processor.tokenizer))
    initialise_group_tokens(model)
    return model, processor


def initialise_group_tokens(model: GroupViTModel) -> None:
    """Draw a new GroupViT's group tokens and patch position embeddings as Xu et al. do (truncated normal, std 0.02).
    transformers leaves them at zero, which suits loading pretrained weights but not training: identical group
    tokens attract every patch alike, so all patches fall into one group and nothing is segmented, and the patches
    start without their positions."""
    with torch.no_grad():
        torch.nn.init.trunc_normal_(model.vision_model.embeddings.position_embeddings, std=0.02)
        for stage in model.vision_model.encoder.stages:
            if stage.group_token is not None:
                torch.nn.init.trunc_normal_(stage.group_token, std=0.02)


def make_pipeline(model, processor, args, background_threshold=None) -> hfgen.GroupViTSegmentationPipeline:
    pipeline = hfgen.GroupViTSegmentationPipeline(
        model=model,
        tokenizer=processor.tokenizer,
        image_processor=processor.image_processor,
        background_threshold=background_threshold,
        templates=[args.prompt_template],
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


# --- 3. evaluation: the threshold calibrated, the pipeline measured (hfgen.pipelines.groupvit.evaluation) ---


@torch.no_grad()
def evaluate(model, processor, data: DetectionData, args) -> tuple[dict, float, list[torch.Tensor]]:
    """The held-out metrics with the background threshold calibrated on training images; returns the metrics, the
    threshold and the predicted label maps."""
    model.eval()
    pipeline = make_pipeline(model, processor, args)
    threshold = calibrate_threshold(pipeline, data, args.seed)
    metrics, predictions = evaluate_pipeline(pipeline, data, threshold)
    model.train()
    return metrics, threshold, predictions


def segmentation_grid(data: DetectionData, predictions: list[torch.Tensor], count: int) -> list[Image.Image]:
    """For the first `count` held-out images: the image, the predicted labels and the true ones, in the pipeline's
    colours, side by side."""
    colours = (label_colours(len(data.class_names) + 1) * 255).round().to(torch.uint8)
    images = []
    for row, predicted in zip(data.eval.select(range(min(count, len(data.eval)))), predictions, strict=False):
        target = torch.from_numpy(target_mask(row))
        images.append(row["image"].convert("RGB"))
        images.extend(Image.fromarray(colours[labels].numpy()) for labels in (predicted, target))
    return images


# --- 4. the run ---


def main(args):
    accelerator = make_accelerator(args, args.gradient_accumulation_steps)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)

    # 1. data: images with boxes (whose classes write the captions) and their held-out masks
    builtin = is_builtin(args)
    data = load_detection_data(args)
    logger.info(f"{len(data.train)} training images, {data.split} of {data.dataset} held out")

    # 2. model: built with the same seed everywhere
    if args.model_name_or_path is not None:
        args.resolution = GroupViTConfig.from_pretrained(args.model_name_or_path).vision_config.image_size
    set_seed(args.seed)
    model, processor = build_model(args, data)
    if args.dry_run:
        sizes = {"train": len(data.train), "evaluation": len(data.eval)}
        prompts = [args.prompt_template.format(name) for name in data.class_names]
        print_dry_run(args, accelerator, model_config=model.config.to_dict(), data=sizes, prompts=prompts)
        return None
    if args.use_lora:
        model = add_lora_adapter(model, args)
    # the patch classifier trains the image tower, and is left out of the saved folder
    patch_head, patch_size = None, None
    if args.patch_loss_weight > 0:
        patch_head = torch.nn.Linear(model.config.vision_config.hidden_size, NUM_PATCH_LABELS)
        patch_size = model.config.vision_config.patch_size
    trained_parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    if patch_head is not None:
        trained_parameters += list(patch_head.parameters())
    set_seed(args.seed, device_specific=True)
    images = CaptionedImages(data, args.resolution, builtin, patch_size)
    train_dataloader = make_train_dataloader(images, args, collate)

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
    start_trackers(accelerator, args, "train_groupvit")

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
    tokenizer = processor.tokenizer
    prompts = [args.prompt_template.format(name) for name in data.class_names]
    # the patches' outputs of the first stage's last layer, before they are grouped, which the patch loss reads
    first_stage_output = {}
    if patch_head is not None:
        unwrapped.vision_model.encoder.stages[0].layers[-1].register_forward_hook(
            lambda module, inputs, output: first_stage_output.update(hidden=output)
        )

    # 5. the loop
    model.train()
    batches = endless_batches(accelerator, train_dataloader, global_step * args.gradient_accumulation_steps)
    while global_step < args.max_train_steps:
        batch = next(batches)
        with accelerator.accumulate(model):
            # 5.1 a caption for every image and the prompts of every class, read by the text tower in one batch
            captions = draw_captions(batch)
            texts = tokenizer(
                captions + prompts,
                padding=True,
                truncation=True,
                max_length=tokenizer.model_max_length,
                return_tensors="pt",
            ).to(accelerator.device)
            pixels = processor_pixels(batch["pixel_values"], processor.image_processor)
            output = model(pixel_values=pixels, input_ids=texts["input_ids"], attention_mask=texts["attention_mask"])
            caption_embeddings, prompt_embeddings = output.text_embeds.split([len(captions), len(prompts)])
            # 5.2 both contrastive losses: images and captions (the same caption text matches), images and class
            # prompts (an image matches the prompt of every class it holds)
            scale = unwrapped.logit_scale
            caption_positives = same_caption_positives(captions).to(accelerator.device)
            caption_loss = clip_contrastive_loss(output.image_embeds, caption_embeddings, scale, caption_positives)
            presence = class_presence(batch, len(prompts)).to(accelerator.device)
            if args.prompt_pooling == "max":
                groups = output.vision_model_output.last_hidden_state  # (batch, groups, hidden)
                group_embeddings = unwrapped.visual_projection(groups.flatten(0, 1)).view(*groups.shape[:2], -1)
                prompt_loss = grouped_multi_label_contrastive_loss(
                    group_embeddings, prompt_embeddings, scale, presence
                )
            else:
                prompt_loss = multi_label_contrastive_loss(output.image_embeds, prompt_embeddings, scale, presence)
            loss = caption_loss + args.prompt_loss_weight * prompt_loss
            if patch_head is not None:
                labels = batch["patch_labels"].to(accelerator.device)
                patch_logits = patch_head(first_stage_output["hidden"][:, : labels.shape[1]])
                patch_loss = F.cross_entropy(patch_logits.flatten(0, 1), labels.flatten())
                loss = loss + args.patch_loss_weight * patch_loss
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
        logs = {"loss": loss.item(), "caption_loss": caption_loss.item(), "prompt_loss": prompt_loss.item()}
        if patch_head is not None:
            logs["patch_loss"] = patch_loss.item()
        logs.update(temperature=1 / unwrapped.logit_scale.exp().item(), lr=lr_scheduler.get_last_lr()[0])
        progress.set_postfix(loss=f"{logs['loss']:.3f}")
        accelerator.log(logs, step=global_step)
        if global_step % args.checkpointing_steps == 0:
            save_checkpoint(accelerator, args.output_dir, global_step, args.checkpoints_total_limit)
        if global_step % args.validation_steps == 0 and accelerator.is_main_process:
            metrics, threshold, predictions = evaluate(unwrapped, processor, data, args)
            accelerator.log({f"eval/{name}": value for name, value in metrics.items()}, step=global_step)
            logger.info(f"step {global_step}: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
            images = segmentation_grid(data, predictions, args.num_validation_images)
            save_grid(images, os.path.join(args.output_dir, "validation"), "segmentation", accelerator, global_step, 6)
    progress.close()

    # 6. the end of the run, on the main process: metrics, the Hub-ready pipeline folder (model, tokenizer, image
    # processor, the calibrated threshold), the segmentation grid, record, card, and the upload
    run_facts = check_replicas(accelerator, model, global_step, logger)
    metrics = None
    if accelerator.is_main_process:
        metrics, threshold, predictions = evaluate(unwrapped, processor, data, args)
        reference = baselines(data, args.seed)
        # a LoRA adapter is merged into the weights: the pipeline folder holds a whole GroupViT
        model_to_save = unwrapped.merge_and_unload() if args.use_lora else unwrapped
        pipeline = make_pipeline(model_to_save.eval(), processor, args, threshold)
        pipeline.save_pretrained(args.output_dir)
        save_card_grid(segmentation_grid(data, predictions, args.num_validation_images), args.output_dir, columns=6)
        protocol = groupvit_protocol(data, pipeline, args)
        record = write_run_record(args, metrics, None, {**run_facts, "baselines": reference}, protocol)
        write_model_card(
            args,
            "groupvit",
            record,
            CARD_METRIC_NAMES,
            tags=["groupvit", "zero-shot-segmentation", "lora"]
            if args.use_lora
            else ["groupvit", "zero-shot-segmentation"],
            pipeline_tag="image-segmentation",
            config=model_to_save.config.to_dict(),
            baselines=reference,
            class_names=data.class_names,
            background_threshold=threshold,
        )
        print_run_summary(args.output_dir, data, metrics, measures_distributions=False)
        if args.push_to_hub:
            push_folder(args, "train_groupvit.py", logger)
    end_run(accelerator)
    return metrics


if __name__ == "__main__":
    run_script(main, parse_args())
