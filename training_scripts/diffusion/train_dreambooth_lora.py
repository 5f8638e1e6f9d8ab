#!/usr/bin/env python
"""Teach a latent diffusion model a new subject from a few images with DreamBooth (Ruiz et al. 2022) and LoRA: the
images are captioned with a rare identifier ("a sks digit"), and LoRA adapters on the UNet (and optionally the text
encoder) learn to draw that subject when the identifier is in the prompt. With --with_prior_preservation, images of
the subject's class drawn by the base model itself ("a handwritten digit") keep the class as it was.

    accelerate launch training_scripts/diffusion/train_dreambooth_lora.py --pretrained_model_name_or_path ldm-digits \
        --instance_data_dir my_sevens/ --instance_prompt "a sks digit" \
        --with_prior_preservation --class_prompt "a handwritten digit"
    accelerate launch training_scripts/diffusion/train_dreambooth_lora.py --pretrained_model_name_or_path ldm-digits \
        --concepts_list concepts.json --with_prior_preservation

A concepts list is a JSON list of objects with `instance_prompt`, `instance_data_dir` and, with prior preservation,
`class_prompt` (and optionally `class_data_dir`): several subjects in one run.

The output folder holds only `pytorch_lora_weights.safetensors` (diffusers' LoRA format) with its card and samples:

    pipeline = hfgen.LatentDiffusionPipeline.from_pretrained("ldm-digits")
    pipeline.load_lora_weights("dreambooth-lora-my_sevens")
    images = pipeline("a sks digit").images
"""

import json
import logging
import math
import os

import torch
from accelerate.logging import get_logger
from accelerate.utils import set_seed
from tqdm.auto import tqdm

import hfgen
from hfgen.data import BUILTIN_DIGITS
from hfgen.pipelines.latent_diffusion.evaluation import (
    CONCEPT_KEYS,
    DREAMBOOTH_METRIC_NAMES,
    base_measurements,
    dreambooth_protocol,
    feature_extractor,
    load_folder_images,
    lora_parameter_counts,
    measure_dreambooth,
    read_concepts,
    sample_images,
)
from hfgen.training import save_checkpoint
from hfgen.training.arguments import add_run_arguments, check_run_arguments, print_dry_run, resolve_max_train_steps
from hfgen.training.cli import check_flag_ranges, make_parser, run_script
from hfgen.training.diffusion import (
    DIFFUSION_FLAG_RANGES,
    UNET_LORA_TARGET_MODULES,
    add_diffusion_arguments,
    add_text_encoder_lora,
    add_unet_lora,
    base_training_schedule,
    check_space_base,
    denoising_loss,
    encode_latents,
    encode_text,
    fit_data_to_base,
    local_folder,
    noised_latents,
    save_lora,
)
from hfgen.training.hub import push_folder, save_card_grid, write_model_card, write_run_record
from hfgen.training.runs import (
    check_finite,
    check_replicas,
    end_run,
    endless_batches,
    gradient_sync,
    make_accelerator,
    make_lr_schedulers,
    make_train_dataloader,
    random_flip,
    resume_run,
    save_grid,
    start_trackers,
)

logger = get_logger(__name__)

DEFAULT_TRAIN_STEPS = 400


def parse_args(input_args=None):
    parser = make_parser("DreamBooth with LoRA: teach a latent diffusion model a subject from a few images.")
    parser.add_argument(
        "--pretrained_model_name_or_path",
        type=str,
        required=True,
        help="The base model: a folder train_ldm.py wrote, a Stable-Diffusion-style folder, or a Hub id of one.",
    )
    # the subject
    parser.add_argument("--instance_data_dir", type=str, default=None, help="A folder of 3-10 images of the subject.")
    parser.add_argument(
        "--instance_prompt",
        type=str,
        default=None,
        help='The caption of every instance image, with a rare identifier: "a sks digit".',
    )
    parser.add_argument(
        "--class_prompt",
        type=str,
        default=None,
        help='The subject\'s class without the identifier, for prior preservation: "a handwritten digit".',
    )
    parser.add_argument(
        "--class_data_dir",
        type=str,
        default=None,
        help="Images of the class; the base model draws the missing ones into it (default <output_dir>/class_images).",
    )
    parser.add_argument(
        "--concepts_list",
        type=str,
        default=None,
        help="A JSON file listing several subjects (objects with instance_prompt, instance_data_dir, class_prompt, "
        "class_data_dir) instead of the four flags.",
    )
    parser.add_argument(
        "--with_prior_preservation",
        action="store_true",
        help="Also train on class images drawn by the base model, so the class prompt keeps its meaning.",
    )
    parser.add_argument("--prior_loss_weight", type=float, default=1.0, help="Weight of the class images' loss.")
    parser.add_argument(
        "--num_class_images",
        type=int,
        default=100,
        help="Class images per subject for prior preservation; the base model draws those the folder lacks.",
    )
    parser.add_argument("--resolution", type=int, default=None, help="By default the base model's.")
    parser.add_argument("--color_mode", type=str, default=None, choices=["L", "RGB"], help="By default the base's.")
    parser.add_argument("--random_flip", action="store_true", help="Flip training images horizontally at random.")
    parser.add_argument("--dataloader_num_workers", type=int, default=0)
    # LoRA
    parser.add_argument("--lora_rank", type=int, default=4)
    parser.add_argument(
        "--lora_alpha", type=float, default=None, help="LoRA scaling numerator (scale alpha / rank); default rank."
    )
    parser.add_argument(
        "--lora_target_modules",
        type=str,
        nargs="+",
        default=UNET_LORA_TARGET_MODULES,
        help="The UNet modules that get adapters (names or name suffixes, as peft takes them).",
    )
    parser.add_argument(
        "--train_text_encoder",
        action="store_true",
        help="Also put LoRA adapters on the text encoder's attention (q_proj, k_proj, v_proj, out_proj).",
    )
    # sampling and metrics
    parser.add_argument("--guidance_scale", type=float, default=3.0, help="Guidance of class images and samples.")
    parser.add_argument(
        "--validation_prompt", type=str, default=None, help="Prompt of the validation grids; the instance prompt."
    )
    parser.add_argument(
        "--metrics_model",
        type=str,
        default=None,
        help="The features of the fidelity and drift metrics: a transformers vision backbone (folder or Hub id), or "
        f"{BUILTIN_DIGITS} for hfgen's digits classifier; by default the pixels.",
    )
    # optimisation
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--adam_beta1", type=float, default=0.9)
    parser.add_argument("--adam_beta2", type=float, default=0.999)
    parser.add_argument("--adam_weight_decay", type=float, default=0.0)
    add_diffusion_arguments(parser, num_inference_steps=25, new_schedule=False)
    parser.set_defaults(use_ema=False)  # a few hundred steps on a few images: the average would lag behind
    add_run_arguments(parser, family="dreambooth-lora")
    parser.set_defaults(
        builtin_dataset=None,
        dataset_name=None,
        train_data_dir=None,
        train_batch_size=4,
        checkpointing_steps=200,
        validation_steps=200,
        num_validation_images=8,
        num_eval_samples=32,
    )
    args = parser.parse_args(input_args)
    if args.output_dir is None:
        subject = args.instance_data_dir or args.concepts_list or "subject"
        args.output_dir = f"dreambooth-lora-{os.path.splitext(os.path.basename(os.path.normpath(subject)))[0]}"
    check_run_arguments(parser, args)
    del args.dataset_name, args.train_data_dir
    check_space_base(parser, args)
    check_flag_ranges(
        parser,
        args,
        {
            **DIFFUSION_FLAG_RANGES,
            "prior_loss_weight": (0, None, "closed"),
            "num_class_images": (1, None, "closed"),
            "lora_rank": (1, None, "closed"),
            "lora_alpha": (0, None, "open"),
            "guidance_scale": (0, None, "closed"),
        },
    )
    if args.concepts_list is not None:
        given = [f"--{key}" for key in CONCEPT_KEYS if getattr(args, key) is not None]
        if given:
            parser.error(f"--concepts_list lists the subjects: leave out {', '.join(given)}")
    else:
        if args.instance_data_dir is None or args.instance_prompt is None:
            parser.error("give the subject with --instance_data_dir and --instance_prompt (or a --concepts_list)")
        if args.with_prior_preservation and args.class_prompt is None:
            parser.error("--with_prior_preservation needs --class_prompt, the subject's class without the identifier")
    return args


# --- data ---


def class_images(pipeline, concept: dict, index: int, args, accelerator) -> torch.Tensor:
    """The class images of a subject for prior preservation: those in its class folder, the missing ones up to
    --num_class_images drawn by the base model first (main process) and saved there as PNG files."""
    folder = concept["class_data_dir"] or os.path.join(args.output_dir, "class_images", str(index))
    existing = 0
    if os.path.isdir(folder):
        existing = len([name for name in os.listdir(folder) if name.lower().endswith((".png", ".jpg", ".jpeg"))])
    missing = args.num_class_images - existing
    if missing > 0 and accelerator.is_main_process:
        logger.info(f"drawing {missing} class images of {concept['class_prompt']!r} into {folder}")
        os.makedirs(folder, exist_ok=True)
        images = sample_images(pipeline, concept["class_prompt"], missing, args.seed + 10_000 * index + existing, args)
        for offset, image in enumerate(pipeline.image_processor.postprocess(images, output_type="pil")):
            image.save(os.path.join(folder, f"class-{existing + offset:05d}.png"))
    accelerator.wait_for_everyone()
    images = load_folder_images(folder, args)
    return images[: args.num_class_images]


class DreamBoothExamples(torch.utils.data.Dataset):
    """Instance images with their prompt and, with prior preservation, a class image of the same subject with the
    class prompt: one example per instance image, or per class image when there are more of them."""

    def __init__(self, instances: list[tuple[torch.Tensor, str]], classes: list[tuple[torch.Tensor, str]] | None):
        self.instances = [
            (image, prompt, subject) for subject, (images, prompt) in enumerate(instances) for image in images
        ]
        self.classes = classes

    def __len__(self):
        if self.classes is None:
            return len(self.instances)
        return max(len(self.instances), sum(len(images) for images, _ in self.classes))

    def __getitem__(self, index):
        image, prompt, subject = self.instances[index % len(self.instances)]
        example = {"pixel_values": image, "prompt": prompt}
        if self.classes is not None:
            images, class_prompt = self.classes[subject]
            example.update(class_pixel_values=images[index % len(images)], class_prompt=class_prompt)
        return example


def collate_examples(examples) -> dict:
    batch = {
        "pixel_values": torch.stack([example["pixel_values"] for example in examples]),
        "prompts": [example["prompt"] for example in examples],
    }
    if "class_pixel_values" in examples[0]:
        batch["class_pixel_values"] = torch.stack([example["class_pixel_values"] for example in examples])
        batch["class_prompts"] = [example["class_prompt"] for example in examples]
    return batch


# --- the run ---


def validation_grid(pipeline, concepts, args, step, accelerator) -> None:
    if accelerator.is_main_process:
        prompts = [args.validation_prompt] if args.validation_prompt else [c["instance_prompt"] for c in concepts]
        images = [
            image
            for prompt in prompts
            for image in pipeline.image_processor.postprocess(
                sample_images(pipeline, prompt, args.num_validation_images, args.seed, args), output_type="pil"
            )
        ]
        folder = os.path.join(args.output_dir, "validation")
        save_grid(images, folder, "samples", accelerator, step, columns=args.num_validation_images)


def main(args):
    accelerator = make_accelerator(args)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)

    # 1. the base fixes the resolution and colour mode; the subjects' images are decoded first
    concepts = read_concepts(args)
    set_seed(args.seed)
    pipeline = hfgen.LatentDiffusionPipeline.from_pretrained(local_folder(args.pretrained_model_name_or_path))
    pipeline.set_progress_bar_config(disable=True)
    fit_data_to_base(args, pipeline.image_size, pipeline.vae.config.in_channels)
    noise_scheduler = base_training_schedule(pipeline.scheduler.config, args)
    instance_images = [load_folder_images(concept["instance_data_dir"], args) for concept in concepts]
    if args.dry_run:
        print_dry_run(
            args,
            accelerator,
            concepts=concepts,
            instance_images=[len(images) for images in instance_images],
            unet_config=dict(pipeline.unet.config),
        )
        return None
    vae, text_encoder, tokenizer, unet = pipeline.vae, pipeline.text_encoder, pipeline.tokenizer, pipeline.unet
    for model in (vae, text_encoder, unet):
        model.requires_grad_(False).eval().to(accelerator.device)

    # 2. what the base model draws before any training: class images for prior preservation, and the samples the
    # metrics compare with (all from seeded noise, before the adapters exist)
    extractor, feature_name = feature_extractor(args, accelerator.device)
    classes = None
    if args.with_prior_preservation:
        classes = [
            (class_images(pipeline, concept, index, args, accelerator), concept["class_prompt"])
            for index, concept in enumerate(concepts)
        ]
    base_metrics, base_class_samples = {}, []
    if accelerator.is_main_process:
        base_metrics, base_class_samples = base_measurements(pipeline, concepts, instance_images, extractor, args)

    # 3. LoRA adapters: the only trained weights
    add_unet_lora(unet, args.lora_rank, args.lora_alpha, args.lora_target_modules)
    if args.train_text_encoder:
        add_text_encoder_lora(text_encoder, args.lora_rank, args.lora_alpha)
    unet.train()
    text_encoder.train(args.train_text_encoder)
    parameters = [p for model in (unet, text_encoder) for p in model.parameters() if p.requires_grad]
    trained, total = lora_parameter_counts(unet, text_encoder)
    set_seed(args.seed, device_specific=True)
    instances = [
        (images, concept["instance_prompt"]) for images, concept in zip(instance_images, concepts, strict=True)
    ]
    train_dataloader = make_train_dataloader(DreamBoothExamples(instances, classes), args, collate_examples)
    optimizer = torch.optim.AdamW(
        parameters,
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        weight_decay=args.adam_weight_decay,
        fused=True,
    )
    updates_per_epoch = math.ceil(len(train_dataloader) / accelerator.num_processes / args.gradient_accumulation_steps)
    resolve_max_train_steps(args, updates_per_epoch, 1, DEFAULT_TRAIN_STEPS)
    (lr_scheduler,) = make_lr_schedulers(args, accelerator, optimizer)
    trained_models = [unet, text_encoder] if args.train_text_encoder else [unet]
    *trained_models, optimizer, train_dataloader, lr_scheduler = accelerator.prepare(
        *trained_models, optimizer, train_dataloader, lr_scheduler
    )
    unet = trained_models[0]
    if args.train_text_encoder:
        text_encoder = trained_models[1]
    start_trackers(accelerator, args, "train_dreambooth_lora")

    # 4. resume
    global_step = resume_run(accelerator, args.output_dir, args.resume_from_checkpoint, logger)
    batches = endless_batches(accelerator, train_dataloader, global_step * args.gradient_accumulation_steps)
    logger.info(
        f"{sum(len(images) for images in instance_images)} instance images of {len(concepts)} subject(s), "
        f"{args.max_train_steps} steps; LoRA adapters train {trained:,} parameters ({100 * trained / total:.2f}% of "
        f"the UNet's {total:,}){' with the text encoder' if args.train_text_encoder else ''}"
    )
    progress = tqdm(
        range(args.max_train_steps), initial=global_step, desc="steps", disable=not accelerator.is_local_main_process
    )

    # 5. the loop: instance and class images in one batch, the class half's loss weighted by --prior_loss_weight
    while global_step < args.max_train_steps:
        for index in range(args.gradient_accumulation_steps):
            batch = next(batches)
            pixel_values, texts = batch["pixel_values"], batch["prompts"]
            if classes is not None:
                pixel_values = torch.cat([pixel_values, batch["class_pixel_values"]])
                texts = texts + batch["class_prompts"]
            if args.random_flip:
                pixel_values = random_flip(pixel_values)
            with gradient_sync(accelerator, trained_models, index, args.gradient_accumulation_steps):
                latents = encode_latents(vae, pixel_values)
                encoder_hidden_states = encode_text(text_encoder, tokenizer, texts, latents.device)
                noise, timesteps, noisy = noised_latents(latents, noise_scheduler, args.noise_offset)
                prediction = unet(noisy, timesteps, encoder_hidden_states=encoder_hidden_states).sample
                count = len(batch["prompts"])
                loss = denoising_loss(
                    prediction[:count], latents[:count], noise[:count], timesteps[:count], noise_scheduler, args
                )
                if classes is not None:
                    prior = denoising_loss(
                        prediction[count:], latents[count:], noise[count:], timesteps[count:], noise_scheduler, args
                    )
                    loss = loss + args.prior_loss_weight * prior
                check_finite(loss, "the loss", global_step, args.output_dir)
                accelerator.backward(loss / args.gradient_accumulation_steps)
        if args.max_grad_norm is not None:
            accelerator.clip_grad_norm_(parameters, args.max_grad_norm)
        optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        global_step += 1
        progress.update(1)
        logs = {"loss": loss.item(), "lr": lr_scheduler.get_last_lr()[0]}
        progress.set_postfix(loss=f"{logs['loss']:.4f}")
        accelerator.log(logs, step=global_step)
        if global_step % args.checkpointing_steps == 0:
            save_checkpoint(accelerator, args.output_dir, global_step, args.checkpoints_total_limit)
        if global_step % args.validation_steps == 0 and global_step < args.max_train_steps:
            unet.eval()
            validation_grid(pipeline, concepts, args, global_step, accelerator)
            unet.train()
    progress.close()

    # 6. the end: the LoRA file, samples, metrics against the base model's, the record, the card and the upload
    run_facts = check_replicas(accelerator, unet, global_step, logger)
    if accelerator.is_main_process:
        unet_model = accelerator.unwrap_model(unet).eval()
        text_model = accelerator.unwrap_model(text_encoder).eval()
        save_lora(args.output_dir, unet_model, text_model if args.train_text_encoder else None)
        metrics = {
            **measure_dreambooth(pipeline, concepts, instance_images, base_class_samples, extractor, args),
            **base_metrics,
        }
        accelerator.log({f"eval/{name}": value for name, value in metrics.items()}, step=global_step)
        rows = []
        for concept in concepts:
            for prompt in filter(None, (concept["instance_prompt"], concept["class_prompt"])):
                rows.extend(pipeline.image_processor.postprocess(sample_images(pipeline, prompt, 8, args.seed, args)))
        save_card_grid(rows, args.output_dir, columns=8)
        protocol = dreambooth_protocol(pipeline, concepts, instance_images, feature_name, args)
        record = write_run_record(args, metrics, None, run_facts, protocol)
        write_model_card(
            args,
            "dreambooth_lora",
            record,
            DREAMBOOTH_METRIC_NAMES,
            tags=["diffusion", "dreambooth", "lora", "text-to-image"],
            pipeline_tag="text-to-image",
            concepts=concepts,
        )
        print(f"\nHub-ready folder: {os.path.abspath(args.output_dir)}")
        print(f"metrics (features: {feature_name}): " + json.dumps(metrics, indent=2))
        if args.push_to_hub:
            push_folder(args, "train_dreambooth_lora.py", logger, also_ignore=("class_images/*",))
    end_run(accelerator)


if __name__ == "__main__":
    run_script(main, parse_args())
