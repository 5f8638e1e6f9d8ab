#!/usr/bin/env python
"""Train a text-guided inpainting latent diffusion model (Rombach et al. 2022; the Stable Diffusion inpainting models)
from a text-to-image one: its UNet also takes the mask and the latents of the masked image as extra input channels.

    accelerate launch training_scripts/diffusion/train_inpainting.py --pretrained_model_name_or_path ldm-digits
    accelerate launch training_scripts/diffusion/train_inpainting.py --pretrained_model_name_or_path <SD folder> \\
        --train_data_dir my_images/ --caption_column text

The base (--pretrained_model_name_or_path) is a folder train_ldm.py wrote, or any Stable-Diffusion-style folder (vae,
text_encoder, tokenizer, unet, scheduler): its first stage and text encoder stay frozen, and its UNet becomes the
inpainting UNet, the new input channels (1 for the mask, the latent channels again for the masked image) given zero
weights so that training starts from exactly the base's predictions. A folder this script wrote continues training.

Each training image gets a random mask (`hfgen.data.masks`: boxes or free-form strokes, and a share of full masks
(--full_mask_probability) so the model still generates from the prompt alone); the masked image (grey in the hole) is
encoded by the frozen first stage, the mask is max-pooled to the latents' size, and the UNet denoises the image's
latents given both, conditioned on the caption (dropped with --cfg_dropout for classifier-free guidance).

The folder loads with `hfgen.LatentDiffusionInpaintPipeline.from_pretrained(dir)`. Its card holds the metrics measured
at the end on held-out images with fixed masks: FID of the inpainted images, class preservation (built-in digits) and
PSNR outside the mask, beside the base model inpainting by latent blending and the masked input unfilled.
"""

import logging
import math
import os

import torch
from accelerate.logging import get_logger
from accelerate.utils import set_seed
from diffusers import DDIMScheduler, UNet2DConditionModel
from tqdm.auto import tqdm

import hfgen
from hfgen.data import BUILTIN_DIGITS
from hfgen.data.captions import (
    IndexedImages,
    LabelCaptions,
    batch_captions,
    collate_indexed,
    dataset_captions,
    drop_captions,
)
from hfgen.data.masks import evaluation_masks, random_masks
from hfgen.pipelines.inpainting.evaluation import (
    METRIC_NAMES,
    evaluate_inpainting,
    evaluation_prompts,
    inpainting_protocol,
)
from hfgen.pipelines.inpainting.pipeline_latent_diffusion_inpaint import (
    LatentBlendingInpaintPipeline,
    LatentDiffusionInpaintPipeline,
    image_latents,
    inpainting_unet_from,
    is_inpainting_unet,
    latent_mask,
    masked_images,
)
from hfgen.pipelines.latent_diffusion.evaluation import GUIDANCE_SCALE, NUM_INFERENCE_STEPS
from hfgen.training import save_checkpoint
from hfgen.training.arguments import (
    add_data_arguments,
    add_run_arguments,
    check_run_arguments,
    print_dry_run,
    resolve_max_train_steps,
)
from hfgen.training.cli import check_flag_ranges, make_parser, run_script
from hfgen.training.diffusion import (
    DIFFUSION_FLAG_RANGES,
    add_diffusion_arguments,
    averaged_weights,
    base_training_schedule,
    create_ema,
    denoising_loss,
    encode_latents,
    encode_text,
    fit_data_to_base,
    local_folder,
    noised_latents,
)
from hfgen.training.evaluation import evaluation_batches, load_run_data, measure_references
from hfgen.training.hub import print_run_summary, push_folder, save_card_grid, write_model_card, write_run_record
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
    to_training_memory_format,
)

logger = get_logger(__name__)

DEFAULT_TRAIN_STEPS = 600

# The share of full masks: Stable Diffusion's inpainting model was trained with a quarter of them, so it keeps
# generating from the prompt alone when nothing of the image is known.
FULL_MASK_PROBABILITY = 0.25


def parse_args(input_args=None):
    parser = make_parser("Train a text-guided inpainting latent diffusion model from a text-to-image one.")
    add_data_arguments(parser, BUILTIN_DIGITS)
    parser.add_argument(
        "--pretrained_model_name_or_path",
        type=str,
        required=True,
        help="The base: a folder train_ldm.py wrote, or a Stable-Diffusion-style folder or Hub id (vae, "
        "text_encoder, tokenizer, unet, scheduler), whose UNet is widened for the mask and the masked image; or a "
        "folder this script wrote, to train further.",
    )
    parser.add_argument(
        "--caption_column",
        type=str,
        default=None,
        help="The dataset column holding each image's caption; without it, captions are written from the class "
        "labels, as train_ldm.py does.",
    )
    parser.add_argument(
        "--full_mask_probability",
        type=float,
        default=FULL_MASK_PROBABILITY,
        help="The share of training masks that cover the whole image (the others are boxes or strokes, half each).",
    )
    parser.add_argument(
        "--cfg_dropout",
        type=float,
        default=0.1,
        help="Probability of training on the empty caption, for classifier-free guidance.",
    )
    parser.add_argument(
        "--guidance_scale", type=float, default=GUIDANCE_SCALE, help="Guidance of validation grids and the metrics."
    )
    parser.add_argument(
        "--skip_baseline_metrics",
        action="store_true",
        help="Leave out the base model's latent blending metrics at the end of the run.",
    )
    parser.add_argument("--gradient_checkpointing", action="store_true")
    # optimisation
    # measured on the default digits LDM, 600 steps (benchmarks/bench_inpainting.py): 2e-4 left the new channels
    # barely used (FID 3.11, worse than latent blending's 2.72; class kept without a prompt 64%); 5e-4 reads FID 1.75
    # (74%), 1e-3 FID 1.59 (84%) and keeps the context best (PSNR outside the mask 21.7 dB, 19.1 at 5e-4)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--adam_beta1", type=float, default=0.9)
    parser.add_argument("--adam_beta2", type=float, default=0.999)
    parser.add_argument("--adam_weight_decay", type=float, default=0.0)
    # the base's noise schedule and objective are kept: no flags for them
    add_diffusion_arguments(parser, num_inference_steps=NUM_INFERENCE_STEPS, new_schedule=False)
    add_run_arguments(parser, family="inpainting")
    parser.set_defaults(
        train_batch_size=32,
        lr_scheduler="cosine",
        lr_warmup_steps=50,
        max_grad_norm=1.0,
        checkpointing_steps=300,
        validation_steps=300,
        resolution=None,
        color_mode=None,
    )
    args = parser.parse_args(input_args)
    check_run_arguments(parser, args)
    check_flag_ranges(
        parser,
        args,
        {
            **DIFFUSION_FLAG_RANGES,
            "full_mask_probability": (0, 1, "closed"),
            "cfg_dropout": (0, 1, "high_open"),
            "guidance_scale": (0, None, "closed"),
            "learning_rate": (0, None, "open"),
        },
    )
    return args


def load_base(args):
    """The base's components, its UNet widened into an inpainting UNet (or kept, when it is one already), and the
    plain pipeline for the latent blending baseline (None when the base is an inpainting folder)."""
    folder = local_folder(args.pretrained_model_name_or_path)
    if not os.path.isfile(os.path.join(folder, "unet", "config.json")):
        # a CLIP or unCLIP folder, say: diffusers' own error would not name the flag
        raise ValueError(
            f"--pretrained_model_name_or_path {args.pretrained_model_name_or_path} has no unet/config.json: give a "
            "latent diffusion folder (train_ldm.py's output, or Stable-Diffusion-style with vae, text_encoder, "
            "tokenizer, unet and scheduler)"
        )
    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet")
    if is_inpainting_unet(unet):
        components = LatentDiffusionInpaintPipeline.from_pretrained(folder, unet=unet).components
        return components, None
    components = hfgen.LatentDiffusionPipeline.from_pretrained(folder, unet=unet).components
    plain_unet = components["unet"]
    return {**components, "unet": inpainting_unet_from(plain_unet)}, plain_unet


def inpainting_loss(vae, text_encoder, tokenizer, unet, noise_scheduler, pixel_values, texts, args):
    """Algorithm 1 of Ho et al. in latent space, the UNet given a random mask (max-pooled to the latents) and the
    latents of the image masked by it beside the noisy latents, conditioned on the texts (some dropped for
    guidance)."""
    latents = encode_latents(vae, pixel_values)
    masks = random_masks(len(pixel_values), pixel_values.shape[-1], None, args.full_mask_probability)
    masks = masks.to(pixel_values.device)
    with torch.no_grad():
        context = image_latents(vae, masked_images(pixel_values, masks))
    encoder_hidden_states = encode_text(
        text_encoder, tokenizer, drop_captions(texts, args.cfg_dropout), latents.device
    )
    noise, timesteps, noisy = noised_latents(latents, noise_scheduler, args.noise_offset)
    model_input = torch.cat([noisy, latent_mask(masks, latents.shape[-2:]), context], dim=1)
    prediction = unet(model_input, timesteps, encoder_hidden_states=encoder_hidden_states).sample
    return denoising_loss(prediction, latents, noise, timesteps, noise_scheduler, args)


def inpainting_pipeline(pipeline_class, components: dict, unet, noise_scheduler):
    """An inpainting pipeline sampling with DDIM on the training schedule, as train_ldm.py's samples do."""
    pipeline = pipeline_class(
        vae=components["vae"],
        text_encoder=components["text_encoder"],
        tokenizer=components["tokenizer"],
        unet=unet,
        scheduler=DDIMScheduler.from_config(noise_scheduler.config, clip_sample=False, set_alpha_to_one=False),
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def comparison_images(pipeline, originals, masks, prompts, args) -> list:
    """Rows of PIL images for a grid: the masked inputs, the inpainted images, the originals."""
    output = pipeline(
        prompt=prompts,
        image=originals * 0.5 + 0.5,
        mask_image=masks,
        guidance_scale=args.guidance_scale if any(prompts) else 1.0,
        num_inference_steps=args.num_inference_steps,
        generator=[torch.Generator().manual_seed(args.seed + i) for i in range(len(originals))],
        output_type="pt",
    ).images
    rows = [masked_images(originals, masks), output * 2 - 1, originals]
    return pipeline.image_processor.postprocess(torch.cat(rows), output_type="pil")


@torch.no_grad()
def evaluate(components, unet, ema, noise_scheduler, fixed, captions, data, args, accelerator, step, plain=None):
    """Validation grid (main process) and the inpainting metrics (every process) of the averaged weights; at the end
    of the run (`plain`: the base's plain UNet, or False when the base was an inpainting model) also with empty
    prompts, and beside the plain UNet's latent blending."""
    final = plain is not None
    model = accelerator.unwrap_model(unet)
    with averaged_weights(ema, list(model.parameters())):
        model.eval()
        pipeline = inpainting_pipeline(LatentDiffusionInpaintPipeline, components, model, noise_scheduler)
        if accelerator.is_main_process:
            images = comparison_images(pipeline, *fixed, args)
            folder = os.path.join(args.output_dir, "validation")
            save_grid(images, folder, "inpainting", accelerator, step, columns=len(fixed[0]))
        baseline = None
        if final and plain is not False:
            baseline = inpainting_pipeline(LatentBlendingInpaintPipeline, components, plain, noise_scheduler)
        metrics = evaluate_inpainting(pipeline, data, captions, args, accelerator, baseline, unprompted=final)
    model.train()
    accelerator.log({f"eval/{name}": value for name, value in metrics.items()}, step=step)
    logger.info(f"step {step}: " + ", ".join(f"{name} {value:.4g}" for name, value in metrics.items()))
    return metrics


def main(args):
    accelerator = make_accelerator(args)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)

    # 1. the base fixes the resolution, colours and noise schedule; the data is decoded first
    set_seed(args.seed)
    components, plain_unet = load_base(args)
    vae, text_encoder, tokenizer, unet = (components[name] for name in ("vae", "text_encoder", "tokenizer", "unet"))
    image_size = 2 ** (len(vae.config.block_out_channels) - 1) * unet.config.sample_size
    fit_data_to_base(args, (image_size, image_size), vae.config.in_channels)
    noise_scheduler = base_training_schedule(components["scheduler"].config, args)
    data = load_run_data(args, accelerator, logger)
    captions = dataset_captions(data.evaluation.train, args.caption_column)
    if args.dry_run:
        print_dry_run(
            args,
            accelerator,
            unet_config=dict(unet.config),
            data={split: len(images) for split, images in data.dataset.items()},
        )
        return None
    for model in (vae, text_encoder) + ((plain_unet,) if plain_unet is not None else ()):
        model.requires_grad_(False).eval().to(accelerator.device)
    if args.skip_baseline_metrics:
        plain_unet = None
    to_training_memory_format(args, unet, vae)
    if args.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    ema = create_ema(list(unet.parameters()), args) if args.use_ema else None
    set_seed(args.seed, device_specific=True)
    train_dataloader = make_train_dataloader(IndexedImages(data.train), args, collate_indexed)

    # 2. optimisation
    optimizer = torch.optim.AdamW(
        unet.parameters(),
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        weight_decay=args.adam_weight_decay,
        fused=True,
    )
    updates_per_epoch = math.ceil(len(train_dataloader) / accelerator.num_processes / args.gradient_accumulation_steps)
    resolve_max_train_steps(args, updates_per_epoch, 1, DEFAULT_TRAIN_STEPS)
    (lr_scheduler,) = make_lr_schedulers(args, accelerator, optimizer)
    unet, optimizer, train_dataloader, lr_scheduler = accelerator.prepare(
        unet, optimizer, train_dataloader, lr_scheduler
    )
    if ema is not None:
        ema.to(accelerator.device)
        accelerator.register_for_checkpointing(ema)

    start_trackers(accelerator, args, "train_inpainting")

    # 3. resume
    global_step = resume_run(accelerator, args.output_dir, args.resume_from_checkpoint, logger)
    batches = endless_batches(accelerator, train_dataloader, global_step * args.gradient_accumulation_steps)
    total_batch = args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    logger.info(
        f"inpainting from {args.pretrained_model_name_or_path}: {len(data.train)} training images, "
        f"{args.max_train_steps} steps, batch {total_batch} ({accelerator.num_processes} processes)"
    )
    progress = tqdm(
        range(args.max_train_steps), initial=global_step, desc="steps", disable=not accelerator.is_local_main_process
    )
    # the validation grid's images, masks and prompts: the first held-out images with their evaluation masks
    originals = next(evaluation_batches(data.eval, min(8, len(data.eval))))["pixel_values"].to(accelerator.device)
    masks = evaluation_masks(list(range(len(originals))), args.resolution, args.seed).to(accelerator.device)
    fixed = (originals, masks, evaluation_prompts(data, captions, args)[: len(originals)])

    # 4. the loop: one optimizer step per --gradient_accumulation_steps micro-batches, their mean loss
    unet.train()
    micro_batches = args.gradient_accumulation_steps
    while global_step < args.max_train_steps:
        for index in range(micro_batches):
            batch = next(batches)
            pixel_values = batch["pixel_values"]
            if args.random_flip:
                pixel_values = random_flip(pixel_values)
            texts = batch_captions(batch, captions)
            with gradient_sync(accelerator, unet, index, micro_batches):
                loss = inpainting_loss(vae, text_encoder, tokenizer, unet, noise_scheduler, pixel_values, texts, args)
                check_finite(loss, "the loss", global_step, args.output_dir)
                accelerator.backward(loss / micro_batches)
        if args.max_grad_norm is not None:
            accelerator.clip_grad_norm_(unet.parameters(), args.max_grad_norm)
        optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.step(unet.parameters())
        global_step += 1
        progress.update(1)
        logs = {"loss": loss.item(), "lr": lr_scheduler.get_last_lr()[0]}
        progress.set_postfix(loss=f"{logs['loss']:.4f}")
        accelerator.log(logs, step=global_step)

        if global_step % args.checkpointing_steps == 0:
            save_checkpoint(accelerator, args.output_dir, global_step, args.checkpoints_total_limit)
        if global_step % args.validation_steps == 0 and global_step < args.max_train_steps:
            evaluate(components, unet, ema, noise_scheduler, fixed, captions, data, args, accelerator, global_step)
    progress.close()

    # 5. the end of the run: final metrics of the averaged weights beside the base's latent blending and the unfilled
    # inputs (all processes); then, on the main process, the Hub-ready folder (pipeline, grid, record, card)
    run_facts = check_replicas(accelerator, unet, global_step, logger)
    plain = False if plain_unet is None else plain_unet
    metrics = evaluate(
        components, unet, ema, noise_scheduler, fixed, captions, data, args, accelerator, global_step, plain
    )
    if accelerator.is_main_process:
        references = measure_references(data.evaluation, args)
        model = accelerator.unwrap_model(unet)
        if ema is not None:
            ema.copy_to(model.parameters())  # the run is over: the saved model is the average
        model.eval().to(memory_format=torch.contiguous_format)
        pipeline = inpainting_pipeline(LatentDiffusionInpaintPipeline, components, model, noise_scheduler)
        pipeline.save_pretrained(args.output_dir)
        save_card_grid(comparison_images(pipeline, *fixed, args), args.output_dir, columns=len(originals))
        baseline = None if plain_unet is None else args.pretrained_model_name_or_path
        protocol = inpainting_protocol(data, captions, args, baseline)
        record = write_run_record(args, metrics, references, run_facts, protocol)
        write_model_card(
            args,
            "inpainting",
            record,
            METRIC_NAMES,
            tags=["diffusion", "latent-diffusion", "inpainting"],
            pipeline_tag="image-to-image",
            unet_config=dict(model.config),
            example_prompt=fixed[2][0] if isinstance(captions, LabelCaptions) else "",
            class_preservation="class_accuracy" in metrics,
            widened=plain_unet is not None,
        )
        print_run_summary(args.output_dir, data.evaluation, metrics)
        if args.push_to_hub:
            push_folder(args, "train_inpainting.py", logger)
    end_run(accelerator)
    return metrics


if __name__ == "__main__":
    run_script(main, parse_args())
