#!/usr/bin/env python
"""Image captioning with BLIP (Li et al. 2022): fine-tune a pretrained `BlipForConditionalGeneration` (fully or with
LoRA), or train a small one from scratch, ending with a Hub-ready folder and measured captioning metrics.

    accelerate launch training_scripts/vision_language/train_blip_captioning.py   # small BLIP from scratch, digits
    accelerate launch training_scripts/vision_language/train_blip_captioning.py --model_name_or_path <BLIP folder> \
        --use_lora --train_data_dir my_images/ --caption_column text             # metadata.jsonl captions

Captions are the data's `--caption_column` (an imagefolder's `metadata.jsonl`), else written from class labels with
several templates ("a handwritten digit seven"), one drawn per image and step. The loss is the decoder's next-token
cross-entropy over each caption's tokens, its end token included and its padding left out.

The folder loads with `transformers.BlipForConditionalGeneration.from_pretrained(dir)` and
`BlipProcessor.from_pretrained(dir)` (with --use_lora it holds the adapter:
`peft.PeftModel.from_pretrained(BlipForConditionalGeneration.from_pretrained(base), dir)`). Metrics on the held-out
images: exact match, BLEU-4 and CIDEr-D of the beam-search captions against the references (every template of the
image's class for label captions, else the image's own caption), beside what writing the most frequent training
caption for every image scores; with classes, also the accuracy of zero-shot classification by captioning likelihood
(`hfgen.BLIPCaptionScorer`: the class whose captions the decoder finds most likely).
"""

import json
import logging
import math
import os
import tempfile

import torch
from accelerate.logging import get_logger
from accelerate.utils import set_seed
from tqdm.auto import tqdm
from transformers import BlipConfig, BlipForConditionalGeneration, BlipProcessor

from hfgen.data import BUILTIN_DIGITS
from hfgen.data.captions import IndexedImages, LabelCaptions, batch_captions, collate_indexed
from hfgen.models.blip_heads import blip_config_for, blip_decoder_inputs, build_blip_processor
from hfgen.models.blip_heads.evaluation import (
    CAPTION_MAX_NEW_TOKENS,
    CAPTIONING_METRIC_NAMES,
    NUM_BEAMS,
    captioning_baselines,
    captioning_protocol,
    evaluate_captioning,
    reference_captions,
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
    random_flip,
    resume_run,
    save_grid,
    start_trackers,
)
from hfgen.training.vision_language import (
    add_lora_adapter,
    add_lora_arguments,
    add_model_arguments,
    check_lora_arguments,
    load_config,
    load_pretrained,
    processor_pixels,
    resolve_model_arguments,
    weight_decay_groups,
)

logger = get_logger(__name__)

# Default length: 1,500 steps of batch 64 (67 passes over the digits' 1,437 training images), whatever the data's size.
DEFAULT_TRAIN_STEPS = 1500

# The BLIP trained from scratch when no --model_name_or_path or --train_from_scratch_config is given: a ViT of 8 px
# patches (16 tokens at 32 px) and a text decoder over captions of at most 32 tokens, both 3 layers of width 64.
SCRATCH_TOWER = dict(hidden_size=64, intermediate_size=256, num_hidden_layers=3, num_attention_heads=4)
SCRATCH_PATCH_SIZE = 8
SCRATCH_TEXT_MAX_LENGTH = 32


def parse_args(input_args=None):
    parser = make_parser("Image captioning with BLIP.")
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
        pretrained="BLIP captioner (folder or Hub id holding BlipForConditionalGeneration and BlipProcessor files)",
        scratch="A BlipConfig (folder or config.json) for a BLIP trained from scratch; its image size is set to "
        "--resolution, its text vocabulary and special tokens to the tokenizer written from the captions. Default: a "
        "small one (both towers 3 layers of width 64, 8-pixel patches).",
    )
    add_lora_arguments(parser, default_targets=["qkv", "projection", "query", "key", "value"])
    # optimisation
    parser.add_argument("--adam_beta1", type=float, default=0.9)
    parser.add_argument("--adam_beta2", type=float, default=0.999)
    parser.add_argument(
        "--adam_weight_decay", type=float, default=0.05, help="On weight matrices only, not on gains, biases."
    )
    # evaluation
    parser.add_argument(
        "--num_beams", type=int, default=NUM_BEAMS, help="Beam width of the captions that are measured."
    )
    parser.add_argument(
        "--max_new_tokens", type=int, default=CAPTION_MAX_NEW_TOKENS, help="Longest generated caption, in tokens."
    )
    add_run_arguments(parser, family="blip-captioning")
    parser.set_defaults(
        lr_scheduler="cosine", lr_warmup_steps=50, max_grad_norm=1.0, checkpointing_steps=500, validation_steps=500
    )
    args = parser.parse_args(input_args)
    check_run_arguments(parser, args)
    check_lora_arguments(parser, args)
    resolve_model_arguments(parser, args)
    check_flag_ranges(parser, args, {"num_beams": (1, None, "closed"), "max_new_tokens": (1, None, "closed")})
    return args


def caption_texts(captions) -> list[str]:
    """Every caption the run can draw, whose words the scratch tokenizer's vocabulary holds."""
    if isinstance(captions, LabelCaptions):
        return [template.format(phrase) for template in captions.templates for phrase in captions.phrases]
    return list(captions.texts)


def scratch_model(args, captions) -> tuple[BlipForConditionalGeneration, BlipProcessor]:
    """A new BLIP captioner and its processor, with a tokenizer written from the captions."""
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
        processor = build_blip_processor(
            caption_texts(captions), folder, image_size=args.resolution, max_length=SCRATCH_TEXT_MAX_LENGTH
        )
    config = blip_config_for(processor.tokenizer, args.resolution, architecture)
    return BlipForConditionalGeneration(config), processor


def captioning_loss(model, processor, bos_token_id: int, pixel_values: torch.Tensor, texts: list[str]) -> torch.Tensor:
    """The decoder's mean next-token cross-entropy over the captions' tokens (padding left out, see
    `blip_decoder_inputs`) given the images (in [-1, 1])."""
    inputs = tokenize(processor, texts, pixel_values.device)
    input_ids, labels = blip_decoder_inputs(inputs["input_ids"], inputs["attention_mask"], bos_token_id)
    pixels = processor_pixels(pixel_values, processor.image_processor)
    return model(pixel_values=pixels, input_ids=input_ids, attention_mask=inputs["attention_mask"], labels=labels).loss


def sample_images(data, count: int) -> list:
    """The first `count` held-out images as PIL images, for the validation grids and the card."""
    from PIL import Image

    pixels = [data.eval[index]["pixel_values"] for index in range(min(count, len(data.eval)))]
    arrays = [((p.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).squeeze(-1) for p in pixels]
    return [Image.fromarray(array.numpy()) for array in arrays]


def main(args):
    accelerator = make_accelerator(args, args.gradient_accumulation_steps)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)

    # 1. a pretrained model first, whose image size the data takes; then the data and captions (every image is
    # decoded before training, so a broken file fails first)
    set_seed(args.seed)
    model = processor = None
    if args.model_name_or_path is not None:
        model, processor = load_pretrained(BlipForConditionalGeneration, BlipProcessor, args.model_name_or_path)
        args.resolution = model.config.vision_config.image_size
    data = load_run_data(args, accelerator, logger, measures_distributions=False)
    captions = run_captions(data, args.caption_column)
    references = reference_captions(captions, data.evaluation.evaluation, args)

    # 2. a model trained from scratch: built with the same seed everywhere
    if model is None:
        model, processor = scratch_model(args, captions)
    positions = model.config.text_config.max_position_embeddings
    if args.max_new_tokens >= positions:
        raise ValueError(
            f"--max_new_tokens {args.max_new_tokens} does not fit the model's {positions} text positions (the start "
            f"token and the new ones): give --max_new_tokens {positions - 1} or less"
        )
    if args.dry_run:
        data = {split: len(images) for split, images in data.dataset.items()}
        print_dry_run(args, accelerator, model_config=model.config.to_dict(), data=data)
        return None
    bos_token_id = model.config.text_config.bos_token_id
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
    start_trackers(accelerator, args, "train_blip_captioning")

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
    validation_images = sample_images(data, args.num_validation_images)

    # 5. the loop
    model.train()
    batches = endless_batches(accelerator, train_dataloader, global_step * args.gradient_accumulation_steps)
    while global_step < args.max_train_steps:
        batch = next(batches)
        with accelerator.accumulate(model):
            # a caption for each image: its own, or a template filled with its class (drawn from the global RNG,
            # which checkpoints keep)
            texts = batch_captions(batch, captions)
            pixel_values = random_flip(batch["pixel_values"]) if args.random_flip else batch["pixel_values"]
            loss = captioning_loss(model, processor, bos_token_id, pixel_values, texts)
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
        progress.set_postfix(loss=f"{logs['loss']:.3f}")
        accelerator.log(logs, step=global_step)
        if global_step % args.checkpointing_steps == 0:
            save_checkpoint(accelerator, args.output_dir, global_step, args.checkpoints_total_limit)
        if global_step % args.validation_steps == 0 and accelerator.is_main_process:
            metrics, generated = evaluate_captioning(
                unwrapped, processor, captions, references, data, args, accelerator.device
            )
            accelerator.log({f"eval/{name}": value for name, value in metrics.items()}, step=global_step)
            logger.info(f"step {global_step}: " + ", ".join(f"{name} {value:.4g}" for name, value in metrics.items()))
            folder = os.path.join(args.output_dir, "validation")
            save_grid(validation_images, folder, "images", accelerator, global_step, len(validation_images))
            with open(os.path.join(folder, f"step-{global_step:06d}-captions.json"), "w") as file:
                json.dump(generated[: len(validation_images)], file, indent=2)
    progress.close()

    # 6. the end of the run, on the main process: metrics, the Hub-ready folder (weights or adapter, processor,
    # captioned images, record, card) and the upload
    run_facts = check_replicas(accelerator, model, global_step, logger)
    metrics = None
    if accelerator.is_main_process:
        metrics, generated = evaluate_captioning(
            unwrapped, processor, captions, references, data, args, accelerator.device
        )
        unwrapped.save_pretrained(args.output_dir)  # the adapter alone with --use_lora
        processor.save_pretrained(args.output_dir)
        save_card_grid(validation_images, args.output_dir, columns=len(validation_images))
        samples = [
            {"caption": caption, "reference": reference[0]}
            for caption, reference in zip(generated, references[: len(validation_images)], strict=False)
        ]
        protocol = captioning_protocol(data, captions, references, args)
        baselines = captioning_baselines(captions, references, data)
        record = write_run_record(args, metrics, None, {**run_facts, "baselines": baselines}, protocol)
        write_model_card(
            args,
            "blip",
            record,
            CAPTIONING_METRIC_NAMES,
            tags=["blip", "image-captioning", "lora"] if args.use_lora else ["blip", "image-captioning"],
            pipeline_tag="image-to-text",
            task="captioning",
            model_class="BlipForConditionalGeneration",
            base_model=args.model_name_or_path,
            config=unwrapped.config.to_dict(),
            baselines=record["baselines"],
            samples=samples,
        )
        print_run_summary(args.output_dir, data.evaluation, metrics, measures_distributions=False)
        if args.push_to_hub:
            push_folder(args, "train_blip_captioning.py", logger)
    end_run(accelerator)
    return metrics


if __name__ == "__main__":
    run_script(main, parse_args())
