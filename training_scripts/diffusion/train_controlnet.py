#!/usr/bin/env python
"""Train a ControlNet (Zhang et al. 2023) on a frozen latent diffusion model: a trainable copy of the UNet's encoder,
joined to the frozen UNet's skip connections through zero-initialised convolutions and fed the control map through a
small convolutional encoder, so that generation follows edges, masks or blurred images.

    accelerate launch training_scripts/diffusion/train_ldm.py                       # the base: ldm-digits
    accelerate launch training_scripts/diffusion/train_controlnet.py --pretrained_model_name_or_path ldm-digits
    accelerate launch training_scripts/diffusion/train_controlnet.py --pretrained_model_name_or_path <SD folder> \
        --train_data_dir my_images/ --control_type canny --resolution 512

Control maps are computed from the training images (`--control_type`: canny, sobel, blur, mask; numpy and scipy, no
annotator model), or read from a dataset column (`--conditioning_image_column`) or from a folder of control images
with the same file names as `--train_data_dir` (`--conditioning_data_dir`).

The output folder holds the ControlNet alone (diffusers' `ControlNetModel` format), like the ControlNets on the Hub:

    controlnet = diffusers.ControlNetModel.from_pretrained("controlnet-digits")
    pipeline = hfgen.LatentDiffusionControlNetPipeline.from_pretrained("ldm-digits", controlnet=controlnet)

On a Stable-Diffusion-shaped base the same folder also works in diffusers' `StableDiffusionControlNetPipeline`.
"""

import logging
import math
import os

import torch
from accelerate.logging import get_logger
from accelerate.utils import set_seed
from diffusers import ControlNetModel
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
    grid_prompts,
)
from hfgen.data.control import CONTROL_TYPES
from hfgen.pipelines.latent_diffusion.evaluation import (
    CONTROLNET_METRIC_NAMES,
    ControlSource,
    EvaluationPrompts,
    computes_controls,
    controlnet_protocol,
    measure_controlnet,
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
from hfgen.training.diffusion import (
    DIFFUSION_FLAG_RANGES,
    add_diffusion_arguments,
    averaged_weights,
    base_training_schedule,
    check_space_base,
    create_ema,
    denoising_loss,
    encode_latents,
    encode_text,
    fit_data_to_base,
    local_folder,
    noised_latents,
)
from hfgen.training.evaluation import load_run_data
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
)

logger = get_logger(__name__)

DEFAULT_TRAIN_STEPS = 1000

# Channels of the conditioning encoder, one stride-2 stage per halving of the first stage (diffusers' and the
# paper's 16-32-96-256 for Stable Diffusion's 8x; a prefix of it for smaller factors).
CONDITIONING_CHANNELS = (16, 32, 96, 256)


def parse_args(input_args=None):
    parser = make_parser("Train a ControlNet on a frozen latent diffusion model.")
    add_data_arguments(parser, BUILTIN_DIGITS)
    parser.set_defaults(resolution=None)
    parser.add_argument(
        "--caption_column",
        type=str,
        default=None,
        help="The dataset column holding each image's caption; by default captions are written from the class "
        "labels, and data without labels trains with empty captions.",
    )
    parser.add_argument(
        "--pretrained_model_name_or_path",
        type=str,
        required=True,
        help="The frozen base: a folder train_ldm.py wrote, a Stable-Diffusion-style folder, or a Hub id of one.",
    )
    parser.add_argument(
        "--controlnet_model_name_or_path",
        type=str,
        default=None,
        help="Go on training this ControlNet; by default a new one is copied from the base UNet's encoder.",
    )
    # control maps
    parser.add_argument(
        "--control_type",
        type=str,
        default=None,
        choices=sorted(CONTROL_TYPES),
        help="The control map computed from each training image (default canny). With --conditioning_image_column "
        "or --conditioning_data_dir it names what those maps are, so that the run measures how well samples follow "
        "them.",
    )
    parser.add_argument(
        "--conditioning_image_column", type=str, default=None, help="A dataset column of control images."
    )
    parser.add_argument(
        "--conditioning_data_dir",
        type=str,
        default=None,
        help="A folder of control images with the same relative file names as the images of --train_data_dir.",
    )
    parser.add_argument("--canny_low_threshold", type=float, default=0.1, help="Canny's hysteresis low threshold.")
    parser.add_argument("--canny_high_threshold", type=float, default=0.2, help="Canny's high threshold.")
    parser.add_argument("--canny_sigma", type=float, default=1.0, help="Canny's Gaussian smoothing, in pixels.")
    parser.add_argument("--sobel_threshold", type=float, default=0.25, help="Gradient magnitude of a Sobel edge.")
    parser.add_argument("--blur_sigma", type=float, default=2.0, help="Blur of the 'blur' control, in pixels.")
    parser.add_argument(
        "--mask_threshold", type=float, default=None, help="Grey level of the 'mask' control; Otsu's by default."
    )
    parser.add_argument(
        "--edge_tolerance",
        type=int,
        default=1,
        help="Edge pixels this many pixels apart count as matching in the edge agreement (F1) of the metrics.",
    )
    # guidance and sampling
    parser.add_argument(
        "--cfg_dropout",
        type=float,
        default=0.5,
        help="Probability of training on the empty caption: half, as in the ControlNet paper, so the ControlNet "
        "learns to read the control map itself rather than lean on the prompt.",
    )
    parser.add_argument("--guidance_scale", type=float, default=3.0, help="Guidance of validation and metrics.")
    parser.add_argument(
        "--controlnet_conditioning_scale", type=float, default=1.0, help="ControlNet scale of validation and metrics."
    )
    # optimisation
    parser.add_argument("--learning_rate", type=float, default=5e-4)
    parser.add_argument("--adam_beta1", type=float, default=0.9)
    parser.add_argument("--adam_beta2", type=float, default=0.999)
    parser.add_argument("--adam_weight_decay", type=float, default=0.0)
    parser.add_argument("--gradient_checkpointing", action="store_true")
    add_diffusion_arguments(parser, num_inference_steps=25, new_schedule=False)
    add_run_arguments(parser, family="controlnet")
    parser.set_defaults(
        train_batch_size=64,
        lr_scheduler="cosine",
        lr_warmup_steps=50,
        max_grad_norm=1.0,
        checkpointing_steps=500,
        validation_steps=500,
        num_validation_images=8,
        num_eval_samples=256,
    )
    args = parser.parse_args(input_args)
    check_run_arguments(parser, args)
    check_space_base(parser, args)
    check_flag_ranges(
        parser,
        args,
        {
            **DIFFUSION_FLAG_RANGES,
            "canny_low_threshold": (0, None, "closed"),
            "canny_high_threshold": (0, None, "closed"),
            "canny_sigma": (0, None, "closed"),
            "sobel_threshold": (0, None, "open"),
            "blur_sigma": (0, None, "open"),
            "mask_threshold": (0, 1, "closed"),
            "edge_tolerance": (0, None, "closed"),
            "cfg_dropout": (0, 1, "closed"),
            "guidance_scale": (0, None, "closed"),
            "controlnet_conditioning_scale": (0, None, "closed"),
        },
    )
    if args.canny_low_threshold > args.canny_high_threshold:
        parser.error("--canny_low_threshold must not be above --canny_high_threshold")
    if args.conditioning_image_column and args.conditioning_data_dir:
        parser.error("give the control images by --conditioning_image_column or --conditioning_data_dir, not both")
    if args.conditioning_data_dir and not args.train_data_dir:
        parser.error("--conditioning_data_dir pairs control images with the files of --train_data_dir: give it too")
    if computes_controls(args) and args.control_type is None:
        args.control_type = "canny"
    return args


# --- models ---


def new_controlnet(unet, first_stage_downsampling: int) -> ControlNetModel:
    """A ControlNet copied from `unet`'s encoder (weights included, Zhang et al.), its zero convolutions at zero, with
    a conditioning encoder that brings control images down by `first_stage_downsampling` to the latent size."""
    stages = int(math.log2(first_stage_downsampling)) + 1
    channels = CONDITIONING_CHANNELS[:stages] + (CONDITIONING_CHANNELS[-1],) * (stages - len(CONDITIONING_CHANNELS))
    return ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=channels, conditioning_channels=3)


def load_models(args):
    """The frozen base pipeline, its training noise schedule and the ControlNet to train."""
    base = hfgen.LatentDiffusionPipeline.from_pretrained(local_folder(args.pretrained_model_name_or_path))
    fit_data_to_base(args, base.image_size, base.vae.config.in_channels)
    noise_scheduler = base_training_schedule(base.scheduler.config, args)
    if args.controlnet_model_name_or_path is not None:
        controlnet = ControlNetModel.from_pretrained(local_folder(args.controlnet_model_name_or_path))
    else:
        controlnet = new_controlnet(base.unet, base.image_size[0] // base.unet.config.sample_size)
    pipeline = hfgen.LatentDiffusionControlNetPipeline(**base.components, controlnet=controlnet)
    pipeline.check_controlnets()  # a ControlNet given by the user must fit the base
    pipeline.set_progress_bar_config(disable=True)
    return pipeline, noise_scheduler


# --- evaluation ---


@torch.no_grad()
def control_grid(pipeline, controls, prompts, data, args, count: int) -> list:
    """Control maps of the first `count` evaluation images (or of the asked classes in turn) above the samples drawn
    from them: two rows of `count` PIL images."""
    generator = torch.Generator().manual_seed(args.seed)
    num_classes = len(prompts.captions.phrases) if isinstance(prompts.captions, LabelCaptions) else 0
    labels = torch.arange(count) % num_classes if num_classes else None
    indices, texts = prompts.draw(count, labels, generator)
    pixel_values = torch.stack([data.eval[index]["pixel_values"] for index in indices])
    control = controls.maps(pixel_values, indices, "eval")
    images = pipeline(
        prompt=texts,
        image=control,
        guidance_scale=args.guidance_scale if any(texts) else 1.0,
        controlnet_conditioning_scale=args.controlnet_conditioning_scale,
        num_inference_steps=args.num_inference_steps,
        generator=generator,
    ).images
    control_images = pipeline.image_processor.postprocess(control * 2 - 1, output_type="pil")
    return [*control_images, *images]


@torch.no_grad()
def validate(pipeline, controls, prompts, data, args, accelerator, step, ema, parameters, final=False) -> dict:
    """A grid of control maps over samples (main process) and the metrics (all processes) of the averaged
    ControlNet."""
    controlnet = accelerator.unwrap_model(pipeline.controlnet)
    with averaged_weights(ema, parameters):
        controlnet.eval()
        if accelerator.is_main_process:
            grid = control_grid(pipeline, controls, prompts, data, args, args.num_validation_images)
            folder = os.path.join(args.output_dir, "validation")
            save_grid(grid, folder, "control_and_samples", accelerator, step, columns=args.num_validation_images)
        metrics = measure_controlnet(pipeline, controls, prompts, data, args, accelerator, with_base=final)
        controlnet.train()
    accelerator.log({f"eval/{name}": value for name, value in metrics.items()}, step=step)
    logger.info(f"step {step}: " + ", ".join(f"{name} {value:.4g}" for name, value in metrics.items()))
    return metrics


# --- training ---


def controlnet_loss(pipeline, controlnet, noise_scheduler, pixel_values, control, texts, args):
    """Algorithm 1 of Ho et al. on the frozen first stage's latents, with the frozen UNet taking the residuals of the
    ControlNet fed the control maps; only the ControlNet gets gradients."""
    latents = encode_latents(pipeline.vae, pixel_values)
    with torch.no_grad():
        encoder_hidden_states = encode_text(
            pipeline.text_encoder, pipeline.tokenizer, drop_captions(texts, args.cfg_dropout), latents.device
        )
    noise, timesteps, noisy = noised_latents(latents, noise_scheduler, args.noise_offset)
    down, middle = controlnet(
        noisy, timesteps, encoder_hidden_states=encoder_hidden_states, controlnet_cond=control, return_dict=False
    )
    prediction = pipeline.unet(
        noisy,
        timesteps,
        encoder_hidden_states=encoder_hidden_states,
        down_block_additional_residuals=down,
        mid_block_additional_residual=middle,
    ).sample
    return denoising_loss(prediction, latents, noise, timesteps, noise_scheduler, args)


def main(args):
    accelerator = make_accelerator(args)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)

    # 1. the frozen base fixes the resolution and colour mode; then the data, every image decoded first
    set_seed(args.seed)
    pipeline, noise_scheduler = load_models(args)
    data = load_run_data(args, accelerator, logger)
    captions = dataset_captions(data.evaluation.train, args.caption_column)
    controls = ControlSource(args, data)
    prompts = EvaluationPrompts(data, captions, args)
    controlnet = pipeline.controlnet
    if args.dry_run:
        print_dry_run(
            args,
            accelerator,
            controlnet_config=dict(controlnet.config),
            data={split: len(images) for split, images in data.dataset.items()},
        )
        return None
    for model in (pipeline.vae, pipeline.text_encoder, pipeline.unet):
        model.requires_grad_(False).eval().to(accelerator.device)
    controlnet.train()
    if args.gradient_checkpointing:
        controlnet.enable_gradient_checkpointing()
    parameters = list(controlnet.parameters())
    ema = create_ema(parameters, args) if args.use_ema else None
    set_seed(args.seed, device_specific=True)
    train_dataloader = make_train_dataloader(IndexedImages(data.train), args, collate_indexed)

    # 2. optimisation
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
    controlnet, optimizer, train_dataloader, lr_scheduler = accelerator.prepare(
        controlnet, optimizer, train_dataloader, lr_scheduler
    )
    if ema is not None:
        ema.to(accelerator.device)
        accelerator.register_for_checkpointing(ema)
    start_trackers(accelerator, args, "train_controlnet")

    # 3. resume
    global_step = resume_run(accelerator, args.output_dir, args.resume_from_checkpoint, logger)
    batches = endless_batches(accelerator, train_dataloader, global_step * args.gradient_accumulation_steps)
    total_batch = args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    source = args.control_type if computes_controls(args) else "read from the data"
    logger.info(
        f"{len(data.train)} training images, {args.max_train_steps} steps, batch {total_batch} "
        f"({accelerator.num_processes} processes); control maps: {source}"
    )
    progress = tqdm(
        range(args.max_train_steps), initial=global_step, desc="steps", disable=not accelerator.is_local_main_process
    )

    # 4. the loop
    while global_step < args.max_train_steps:
        for index in range(args.gradient_accumulation_steps):
            batch = next(batches)
            pixel_values = batch["pixel_values"]
            control = controls.maps(pixel_values, batch["indices"].tolist(), "train")
            if args.random_flip:
                pixel_values, control = random_flip(pixel_values, control)
            texts = batch_captions(batch, captions)
            with gradient_sync(accelerator, [controlnet], index, args.gradient_accumulation_steps):
                loss = controlnet_loss(pipeline, controlnet, noise_scheduler, pixel_values, control, texts, args)
                check_finite(loss, "the loss", global_step, args.output_dir)
                accelerator.backward(loss / args.gradient_accumulation_steps)
        if args.max_grad_norm is not None:
            accelerator.clip_grad_norm_(parameters, args.max_grad_norm)
        optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.step(parameters)
        global_step += 1
        progress.update(1)
        logs = {"loss": loss.item(), "lr": lr_scheduler.get_last_lr()[0]}
        progress.set_postfix(loss=f"{logs['loss']:.4f}")
        accelerator.log(logs, step=global_step)
        if global_step % args.checkpointing_steps == 0:
            save_checkpoint(accelerator, args.output_dir, global_step, args.checkpoints_total_limit)
        if global_step % args.validation_steps == 0 and global_step < args.max_train_steps:
            validate(pipeline, controls, prompts, data, args, accelerator, global_step, ema, parameters)
    progress.close()

    # 5. the end: final metrics with the base model alone for comparison (all processes); then, on the main process,
    # the ControlNet folder, the grid of controls and samples, the record, the model card and the upload
    run_facts = check_replicas(accelerator, controlnet, global_step, logger)
    metrics = validate(pipeline, controls, prompts, data, args, accelerator, global_step, ema, parameters, final=True)
    if accelerator.is_main_process:
        model = accelerator.unwrap_model(controlnet)
        if ema is not None:
            ema.copy_to(parameters)  # the run is over: the saved ControlNet is the average
        model.eval().save_pretrained(args.output_dir)
        grid = control_grid(pipeline, controls, prompts, data, args, 8)
        save_card_grid(grid, args.output_dir, columns=8)
        protocol = controlnet_protocol(data, pipeline, args)
        record = write_run_record(args, metrics, None, run_facts, protocol)
        write_model_card(
            args,
            "controlnet",
            record,
            CONTROLNET_METRIC_NAMES,
            tags=["diffusion", "controlnet", "text-to-image"],
            pipeline_tag="text-to-image",
            example_prompt=grid_prompts(captions, 8)[-1],
            control_type=args.control_type,
            computed_control=computes_controls(args),
        )
        print_run_summary(args.output_dir, data.evaluation, metrics)
        if args.push_to_hub:
            push_folder(args, "train_controlnet.py", logger)
    end_run(accelerator)
    return metrics


if __name__ == "__main__":
    run_script(main, parse_args())
