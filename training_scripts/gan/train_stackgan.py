#!/usr/bin/env python
"""Train StackGAN (Zhang et al. 2017), a two-stage text-to-image GAN, ending with a Hub-ready folder and metrics.

    accelerate launch training_scripts/gan/train_stackgan.py     # digits, captions from labels: 16 px, then 32 px
    accelerate launch training_scripts/gan/train_stackgan.py --train_data_dir my_images/ --caption_column text \
        --resolution 64 --stage1_steps 3000 --stage2_steps 2000
    accelerate launch training_scripts/gan/train_stackgan.py --text_encoder_name_or_path openai/clip-vit-base-patch32

Stage I (`--stage1_steps`) trains the generator's first stage and its discriminator at `--stage1_resolution` (half
of `--resolution` by default), on the real images brought to that size. Stage II (`--stage2_steps`) then trains the
second stage and its own discriminator at `--resolution`, stage I frozen as in the paper: it learns to refine what
stage I draws. Each step is written out below: one discriminator step, then one generator step on the same fakes.

The discriminator is matching-aware (the paper's GAN-CLS loss): a real image with its caption is a positive; a
generated image with its caption and a real image with a wrong caption (another class's caption, or another image's)
are negatives, so its score says "real and fits the text". The generator's loss adds `--kl_weight` times the KL term
of its conditioning augmentation.

Text: `--text_encoder_name_or_path` (a CLIP text encoder and its tokenizer, frozen), or by default a small CLIP text
transformer trained with the GAN, over a byte-level tokenizer written from the captions (no download). Captions are
the data's `--caption_column`, or written from its class labels ("a handwritten digit seven"), or empty for data
with neither. The folder loads with `hfgen.StackGANPipeline.from_pretrained(dir)`,
`hfgen.StackGANGenerator.from_pretrained(dir)` and `transformers.AutoModel.from_pretrained(dir)`.
"""

import contextlib
import functools
import logging
import os
import tempfile

import torch
import torch.nn.functional as F
from accelerate.logging import get_logger
from accelerate.utils import DistributedDataParallelKwargs, set_seed
from tqdm.auto import tqdm

import hfgen
from hfgen.data import BUILTIN_DIGITS
from hfgen.data.captions import (
    IndexedImages,
    LabelCaptions,
    batch_captions,
    collate_indexed,
    dataset_captions,
    grid_prompts,
)
from hfgen.models.latent_diffusion import build_caption_text_encoder, load_clip_text_encoder, write_caption_tokenizer
from hfgen.pipelines.stackgan.evaluation import (
    measure_stackgan,
    stackgan_metric_names,
    stackgan_protocol,
    to_stage1,
)
from hfgen.training import save_checkpoint
from hfgen.training.adversarial import Phase, add_adversarial_run_arguments, run_phase, save_adversarial_weights
from hfgen.training.arguments import (
    add_data_arguments,
    add_run_arguments,
    check_run_arguments,
    is_power_of_two,
    print_dry_run,
    resolve_max_train_steps,
)
from hfgen.training.cli import check_flag_ranges, make_parser, run_script
from hfgen.training.diffusion import local_folder
from hfgen.training.ema import create_ema, update_ema
from hfgen.training.evaluation import load_run_data, measure_references
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
    to_training_memory_format,
)

logger = get_logger(__name__)

# A new model's architecture when no --model_config_name_or_path is given: sized so that the default run on the
# built-in digits trains in about 5 minutes on 2 CPU cores (the paper's: z of 100, c of 128, 4 residual blocks).
DEFAULT_ARCHITECTURE = dict(
    latent_dim=32,
    condition_dim=16,
    generator_channels=128,
    stage2_channels=64,
    stage2_residual_blocks=2,
    discriminator_channels=16,
    discriminator_text_dim=16,
)
# The text encoder trained with the GAN: a 2-layer CLIP text transformer of width 64 over captions of at most 16
# tokens (as train_ldm.py's).
TEXT_HIDDEN_SIZE, TEXT_MAX_LENGTH = 64, 16
# The KL term is summed over the condition's dimensions; at the paper's weight of 1 it pulls every caption's Gaussian
# onto N(0, I) faster than the jointly trained text encoder separates the captions. After 600 stage-I steps on the
# digits (one seed): weight 1, digits-FID 42 and prompt accuracy 33%; 0.1, 20.6 and 80%; 0.05, 16.7 and 90% (recall
# 0.56); 0.02, 14.0 and 96% but recall 0.36, the conditions then too narrow to vary the images much.
DEFAULT_KL_WEIGHT = 0.05
# Steps of batch 64 per stage: about 2 minutes each on 2 CPU cores. Stage II needs as many as stage I: after 600 of
# them its digits-FID was 17.1 and recall 0.36, after 1200 6.3 and 0.66.
DEFAULT_STAGE1_STEPS = 1200
DEFAULT_STAGE2_STEPS = 1200


def parse_args(input_args=None):
    parser = make_parser("Train StackGAN (two-stage text-to-image GAN) with hfgen.")
    add_data_arguments(parser, BUILTIN_DIGITS)
    parser.add_argument(
        "--caption_column",
        type=str,
        default=None,
        help="The dataset column holding each image's caption. Without it, captions are written from the class "
        "labels ('a handwritten digit seven' on the digits, 'a photo of <class>' on a folder's class subfolders); "
        "data without labels trains an unconditional model (empty captions).",
    )
    parser.add_argument(
        "--text_encoder_name_or_path",
        type=str,
        default=None,
        help="A CLIP text encoder with its tokenizer (a folder, a pipeline folder with text_encoder/ and "
        "tokenizer/, or a Hub id), kept frozen. By default a small one is trained with the GAN, over a tokenizer "
        "written from the captions.",
    )
    parser.add_argument(
        "--pretrained_model_name_or_path",
        type=str,
        default=None,
        help="A folder or Hub id written by this script: its text encoder, tokenizer, generator and, if kept, "
        "discriminator/ are trained further.",
    )
    parser.add_argument("--model_config_name_or_path", type=str, default=None, help="A model config for a new model.")
    parser.add_argument(
        "--stage1_resolution",
        type=int,
        default=None,
        help="Side of stage I's images, a power of two of at least 8; default: half of --resolution.",
    )
    parser.add_argument(
        "--stage1_steps", type=int, default=DEFAULT_STAGE1_STEPS, help="Steps of stage I (0: start at stage II)."
    )
    parser.add_argument(
        "--stage2_steps",
        type=int,
        default=DEFAULT_STAGE2_STEPS,
        help="Steps of stage II, stage I frozen: the run's length is both, unless --max_train_steps or "
        "--num_train_epochs is given (stage II then takes the steps after stage I's).",
    )
    parser.add_argument(
        "--kl_weight",
        type=float,
        default=DEFAULT_KL_WEIGHT,
        help="Weight of the conditioning augmentation's KL term in the generator's loss (the paper's lambda is 1, "
        "over 128 dimensions of a pretrained text embedding; see DEFAULT_KL_WEIGHT).",
    )
    parser.add_argument("--generator_learning_rate", type=float, default=2e-4)
    parser.add_argument("--discriminator_learning_rate", type=float, default=2e-4)
    parser.add_argument("--adam_beta1", type=float, default=0.5)
    parser.add_argument("--adam_beta2", type=float, default=0.999)
    parser.add_argument("--ema_decay", type=float, default=0.999, help="EMA of the generator's weights (0: off).")
    add_adversarial_run_arguments(parser)
    add_run_arguments(parser, family="stackgan")
    parser.set_defaults(checkpointing_steps=300, validation_steps=600)
    args = parser.parse_args(input_args)
    check_run_arguments(parser, args)
    check_flag_ranges(
        parser,
        args,
        {
            "stage1_resolution": (8, None, "closed"),
            "stage1_steps": (0, None, "closed"),
            "stage2_steps": (1, None, "closed"),
            "kl_weight": (0, None, "closed"),
            "generator_learning_rate": (0, None, "open"),
            "discriminator_learning_rate": (0, None, "open"),
            "ema_decay": (0, 1, "high_open"),
            "loss_limit": (0, None, "open"),
        },
    )
    if not is_power_of_two(args.resolution) or args.resolution < 16:
        parser.error(f"--resolution must be a power of two of at least 16 for StackGAN, got {args.resolution}")
    if args.stage1_resolution is None:
        args.stage1_resolution = args.resolution // 2
    if not is_power_of_two(args.stage1_resolution):
        parser.error(f"--stage1_resolution must be a power of two (8, 16, 32, ...), got {args.stage1_resolution}")
    if 2 * args.stage1_resolution > args.resolution:
        parser.error(
            f"--stage1_resolution {args.stage1_resolution} must be at most half of --resolution {args.resolution}: "
            "stage II refines stage I's images at a higher resolution"
        )
    if args.pretrained_model_name_or_path and args.text_encoder_name_or_path:
        parser.error(
            "--text_encoder_name_or_path: a --pretrained_model_name_or_path folder brings its own text encoder; "
            "give one or the other"
        )
    return args


def build_models(args, captions):
    """Tokenizer, text encoder, generator and discriminator of the run, checked against each other and the data."""
    if args.pretrained_model_name_or_path is not None:
        pipeline = hfgen.StackGANPipeline.from_pretrained(local_folder(args.pretrained_model_name_or_path))
        tokenizer, text_encoder, generator = pipeline.tokenizer, pipeline.text_encoder, pipeline.gan
        discriminator_dir = os.path.join(local_folder(args.pretrained_model_name_or_path), "discriminator")
        if os.path.isdir(discriminator_dir):
            discriminator = hfgen.StackGANDiscriminator.from_pretrained(discriminator_dir)
        else:
            logger.info("no discriminator/ next to the generator: starting a new discriminator")
            discriminator = hfgen.StackGANDiscriminator(generator.config)
    else:
        if args.text_encoder_name_or_path is not None:
            text_encoder, tokenizer = load_clip_text_encoder(local_folder(args.text_encoder_name_or_path))
        else:
            with tempfile.TemporaryDirectory() as folder:
                # unconditional data still gets a (tiny) vocabulary: the pipeline encodes its empty prompts
                vocabulary = captions.vocabulary() if captions is not None else []
                tokenizer = write_caption_tokenizer(vocabulary, folder, TEXT_MAX_LENGTH)
            text_encoder = build_caption_text_encoder(tokenizer, hidden_size=TEXT_HIDDEN_SIZE)
        if args.model_config_name_or_path is not None:
            config = hfgen.StackGANConfig.from_pretrained(args.model_config_name_or_path)
        else:
            config = hfgen.StackGANConfig(
                resolution=args.resolution,
                stage1_resolution=args.stage1_resolution,
                num_channels=1 if args.color_mode == "L" else 3,
                text_embedding_dim=text_encoder.config.hidden_size,
                **DEFAULT_ARCHITECTURE,
            )
        generator, discriminator = hfgen.StackGANGenerator(config), hfgen.StackGANDiscriminator(config)
    config = generator.config
    problems = []
    if config.num_channels != (1 if args.color_mode == "L" else 3):
        problems.append(f"it takes {config.num_channels}-channel images but --color_mode is {args.color_mode}")
    if (config.resolution, config.stage1_resolution) != (args.resolution, args.stage1_resolution):
        problems.append(
            f"its stages make {config.stage1_resolution} and {config.resolution} px images but --stage1_resolution "
            f"and --resolution are {args.stage1_resolution} and {args.resolution}"
        )
    if config.text_embedding_dim != text_encoder.config.hidden_size:
        problems.append(
            f"it reads {config.text_embedding_dim}-dimensional text embeddings but the text encoder's hidden_size is "
            f"{text_encoder.config.hidden_size}"
        )
    if problems:
        raise ValueError("the model does not fit the data and flags: " + "; ".join(problems))
    return tokenizer, text_encoder, generator, discriminator


def matching_aware_discriminator_loss(real_right, fake_right, real_wrong=None) -> torch.Tensor:
    """GAN-CLS (Reed et al. 2016, as StackGAN trains): non-saturating logistic loss with real images under their
    captions as positives; generated images under their captions and, when given, real images under wrong captions
    as negatives, the two weighted 1/2 each (StackGAN's reference code)."""
    loss = F.softplus(-real_right).mean()
    if real_wrong is None:
        return loss + F.softplus(fake_right).mean()
    return loss + 0.5 * (F.softplus(fake_right).mean() + F.softplus(real_wrong).mean())


def wrong_captions(batch, captions, texts: list[str]) -> list[str] | None:
    """Captions that do not fit the batch's images: for class captions, a caption of another class drawn at random
    (torch's global RNG, saved with checkpoints); otherwise the caption of the next image in the batch. None when every
    caption is the same (empty captions, or one class): a wrong caption would then be the right one."""
    if isinstance(captions, LabelCaptions) and len(captions.phrases) > 1:
        labels = batch["labels"].cpu()
        shifts = torch.randint(1, len(captions.phrases), labels.shape)
        return captions.captions((labels + shifts) % len(captions.phrases))
    if len(set(texts)) < 2:
        return None
    return texts[1:] + texts[:1]


def main(args):
    # A step uses one stage's networks: data-parallel training must not wait for the other stage's gradients.
    accelerator = make_accelerator(args, kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)

    # 1. data and captions: every image is decoded before anything else, so a broken file fails first
    data = load_run_data(args, accelerator, logger)
    captions = dataset_captions(data.evaluation.train, args.caption_column)
    if captions is None:
        logger.info("the data has neither labels nor --caption_column: training an unconditional model")

    # 2. models: built with the same seed everywhere, then each process gets its own stream of noise
    set_seed(args.seed)
    tokenizer, text_encoder, generator, discriminator = build_models(args, captions)
    if args.dry_run:
        print_dry_run(
            args,
            accelerator,
            model_config=generator.config.to_dict(),
            text_encoder_config=text_encoder.config.to_dict(),
            captions=type(captions).__name__ if captions is not None else None,
        )
        return None
    # The joint text encoder learns through the discriminator's matching loss only: to tell a real image's caption
    # from a wrong one, the discriminator needs embeddings that separate the captions. Through the generator's loss
    # it would be pushed the other way, towards embeddings that say nothing (the generator's task is easiest when all
    # captions look alike), which is how a jointly trained text encoder collapses. It is frozen with stage I, whose
    # input it is. A given --text_encoder_name_or_path stays frozen throughout.
    train_text = args.text_encoder_name_or_path is None
    text_encoder.requires_grad_(train_text)
    to_training_memory_format(args, generator, discriminator)
    set_seed(args.seed, device_specific=True)
    ema_generator = create_ema(generator) if args.ema_decay > 0 else None
    train_dataloader = make_train_dataloader(IndexedImages(data.train), args, collate_indexed)

    # 3. optimisation: one Adam per side over all its layers from the start (a stage's layers get no gradient, and so
    # no update, outside it); the joint text encoder is on the discriminator's side
    betas = (args.adam_beta1, args.adam_beta2)
    g_optimizer = torch.optim.Adam(generator.parameters(), lr=args.generator_learning_rate, betas=betas, fused=True)
    d_parameters = list(discriminator.parameters()) + (list(text_encoder.parameters()) if train_text else [])
    d_optimizer = torch.optim.Adam(d_parameters, lr=args.discriminator_learning_rate, betas=betas, fused=True)
    batches_per_epoch = -(-len(train_dataloader) // accelerator.num_processes)
    default_steps = args.stage1_steps + args.stage2_steps
    resolve_max_train_steps(args, batches_per_epoch, args.gradient_accumulation_steps, default_steps)
    if args.max_train_steps <= args.stage1_steps:
        raise ValueError(
            f"--max_train_steps {args.max_train_steps} ends before stage II starts (after --stage1_steps "
            f"{args.stage1_steps}): raise it, or lower --stage1_steps"
        )
    g_scheduler, d_scheduler = make_lr_schedulers(args, accelerator, g_optimizer, d_optimizer)
    generator, discriminator, g_optimizer, d_optimizer, train_dataloader, g_scheduler, d_scheduler = (
        accelerator.prepare(
            generator, discriminator, g_optimizer, d_optimizer, train_dataloader, g_scheduler, d_scheduler
        )
    )
    if train_text:
        text_encoder = accelerator.prepare(text_encoder)
    else:
        text_encoder.eval().to(accelerator.device)
    if ema_generator is not None:
        ema_generator.to(accelerator.device)
        accelerator.register_for_checkpointing(ema_generator)
    start_trackers(accelerator, args, "train_stackgan")

    # 4. resume: networks, optimizers, schedules, EMA and RNG states; the stage follows the step
    global_step = resume_run(accelerator, args.output_dir, args.resume_from_checkpoint, logger)

    logger.info(
        f"{len(data.train)} training images, captions {type(captions).__name__ if captions else 'empty'}, "
        f"{args.stage1_steps} stage-I steps at {args.stage1_resolution} px then "
        f"{args.max_train_steps - args.stage1_steps} stage-II steps at {args.resolution} px, batch "
        f"{args.train_batch_size} x {args.gradient_accumulation_steps} x {accelerator.num_processes} processes; "
        f"text encoder {'trained with the discriminator in stage I' if train_text else 'frozen'}"
    )
    progress = tqdm(
        range(args.max_train_steps), initial=global_step, desc="steps", disable=not accelerator.is_local_main_process
    )
    batches = endless_batches(accelerator, train_dataloader, global_step * args.gradient_accumulation_steps)
    unwrapped_generator = accelerator.unwrap_model(generator)
    unwrapped_discriminator = accelerator.unwrap_model(discriminator)
    text_model = accelerator.unwrap_model(text_encoder)
    config = unwrapped_generator.config

    def embed(texts: list[str], trained: bool) -> torch.Tensor:
        """The pooled text embeddings of `texts`; through the (data-parallel) text encoder when it is `trained` at
        this step, else without gradient."""
        input_ids = tokenizer(
            texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
        ).input_ids.to(accelerator.device)
        with contextlib.nullcontext() if trained else torch.no_grad():
            return (text_encoder if trained else text_model)(input_ids).pooler_output

    def next_micro_batch(stage: int, keep_graph: bool):
        """`(real, texts, wrong_texts, right, fake)`: real images at the stage's resolution, their captions and wrong
        ones (None without), the captions' embeddings (without gradient) and generated images for them (carrying the
        generator's graph when `keep_graph`, for the generator step to reuse)."""
        batch = next(batches)
        real = random_flip(batch["pixel_values"]) if args.random_flip else batch["pixel_values"]
        if stage == 1:
            real = to_stage1(real, config.stage1_resolution)
        texts = batch_captions(batch, captions)
        right = embed(texts, trained=False)
        z = torch.randn(real.shape[0], config.latent_dim, device=real.device)
        noise = torch.randn(real.shape[0], 2, config.condition_dim, device=real.device)
        with contextlib.nullcontext() if keep_graph else torch.no_grad():
            fake = (generator if keep_graph else unwrapped_generator)(right, z, noise, stage=stage)
        return real, texts, wrong_captions(batch, captions, texts), right, fake

    def d_main_loss(micro_batch, stage: int):
        """Real images under their captions against generated ones and against real images under wrong captions. Each
        kind is its own pass, as in StackGAN's reference code: the batch norms then normalise generated images alone,
        as they do in the generator's step. The captions are embedded here, inside the phase, so that a trained text
        encoder's gradients are accumulated and averaged with the discriminator's."""
        real, texts, wrong_texts, _, fake = micro_batch
        trained = train_text and stage == 1
        right = embed(texts, trained)
        real_right = discriminator(real, right, stage=stage).logits
        fake_right = discriminator(fake.sample.detach(), right, stage=stage).logits
        real_wrong = None
        if wrong_texts is not None:
            real_wrong = discriminator(real, embed(wrong_texts, trained), stage=stage).logits
        loss = matching_aware_discriminator_loss(real_right, fake_right, real_wrong)
        logs = {"d_loss": loss.detach(), "d_real": real_right.detach().mean(), "d_fake": fake_right.detach().mean()}
        if real_wrong is not None:
            logs["d_wrong"] = real_wrong.detach().mean()
        return loss, logs

    def g_main_loss(micro_batch, stage: int):
        """Make the discriminator, just updated, score the fakes as real images of their captions; keep the
        conditioning Gaussians near N(0, I)."""
        real, _, _, right, fake = micro_batch
        if not fake.sample.requires_grad:  # drawn without the generator's graph (gradient accumulation): again
            z = torch.randn(real.shape[0], config.latent_dim, device=real.device)
            noise = torch.randn(real.shape[0], 2, config.condition_dim, device=real.device)
            fake = generator(right, z, noise, stage=stage)
        logits = unwrapped_discriminator(fake.sample, right, stage=stage).logits
        adversarial = F.softplus(-logits).mean()
        loss = adversarial + args.kl_weight * fake.kl_loss
        return loss, {"g_loss": adversarial.detach(), "kl": fake.kl_loss.detach()}

    def guard(loss, phase_name: str):
        check_finite(loss, f"the {phase_name} loss", global_step, args.output_dir, args.loss_limit)

    def train_mode(stage: int) -> None:
        """Training mode for what the stage trains; stage I (and the text encoder it reads) stays in eval mode in
        stage II, so that its batch norms keep the statistics it was trained with."""
        generator.train()
        discriminator.train()
        text_model.train(train_text and stage == 1)
        if stage == 2:
            unwrapped_generator.stage1.eval()

    frozen = False
    while global_step < args.max_train_steps:
        stage = 1 if global_step < args.stage1_steps else 2
        if stage == 2 and not frozen:
            if ema_generator is not None and global_step == args.stage1_steps:
                # stage II learns to refine the averaged stage I, the one the saved model draws with
                unwrapped_generator.stage1.load_state_dict(ema_generator.stage1.state_dict())
            unwrapped_generator.stage1.requires_grad_(False)
            text_model.requires_grad_(False)
            frozen = True
        train_mode(stage)
        d_networks = [discriminator, text_encoder] if train_text and stage == 1 else [discriminator]
        d_main = Phase("D main", d_networks, d_optimizer)
        g_main = Phase("G main", generator, g_optimizer, held=unwrapped_discriminator)
        keep_graph = args.gradient_accumulation_steps == 1
        micro_batches = [next_micro_batch(stage, keep_graph) for _ in range(args.gradient_accumulation_steps)]
        logs = run_phase(
            d_main, accelerator, micro_batches, functools.partial(d_main_loss, stage=stage), args.max_grad_norm, guard
        )
        g_loss_of = functools.partial(g_main_loss, stage=stage)
        logs.update(run_phase(g_main, accelerator, micro_batches, g_loss_of, args.max_grad_norm, guard))
        g_scheduler.step()
        d_scheduler.step()
        if ema_generator is not None:
            update_ema(ema_generator, unwrapped_generator, args.ema_decay, global_step)

        global_step += 1
        progress.update(1)
        logs.update(stage=stage, lr_g=g_scheduler.get_last_lr()[0])
        progress.set_postfix(stage=stage, d_loss=f"{logs['d_loss']:.3f}", g_loss=f"{logs['g_loss']:.3f}")
        accelerator.log(logs, step=global_step)

        if global_step % args.checkpointing_steps == 0:
            save_checkpoint(accelerator, args.output_dir, global_step, args.checkpoints_total_limit)
        if global_step % args.validation_steps == 0 and global_step < args.max_train_steps:
            final_generator = unwrapped_generator if ema_generator is None else ema_generator
            validate(final_generator, tokenizer, text_model, captions, data, args, accelerator, global_step, (stage,))
    progress.close()

    # 5. the end of the run: final metrics of both stages (all processes); then, on the main process, the Hub-ready
    # folder (pipeline, generator, discriminator, sample grids, record of the run, model card) and the upload
    final_generator = unwrapped_generator if ema_generator is None else ema_generator
    run_facts = check_replicas(accelerator, generator, global_step, logger)
    metrics = validate(final_generator, tokenizer, text_model, captions, data, args, accelerator, global_step, (1, 2))
    if accelerator.is_main_process:
        references = measure_references(data.evaluation, args)
        pipeline = sampling_pipeline(tokenizer, text_model, final_generator)
        save_adversarial_weights(
            args.output_dir, pipeline, final_generator, unwrapped_discriminator if args.save_discriminator else None
        )
        # samples.png (stage II) and samples_stage1.png (stage I, the same seeds): 8 rows, a column per class
        columns = len(captions.phrases) if isinstance(captions, LabelCaptions) else 8
        prompts = grid_prompts(captions, 8 * columns)
        for stage, name in ((2, "samples.png"), (1, "samples_stage1.png")):
            seeded = torch.Generator(device="cpu").manual_seed(args.seed)
            samples = pipeline(prompt=prompts, generator=seeded, stage=stage).images
            save_card_grid(samples, args.output_dir, columns=columns, name=name)
        protocol = stackgan_protocol(data, captions, args, config.stage1_resolution)
        record = write_run_record(args, metrics, references, run_facts, protocol)
        write_model_card(
            args,
            "stackgan",
            record,
            stackgan_metric_names(protocol),
            tags=["gan", "stackgan", "text-to-image"],
            pipeline_tag="text-to-image",
            config=config,
            example_prompt=prompts[min(7, len(prompts) - 1)],
            class_prompts=isinstance(captions, LabelCaptions),
            text_encoder_trained=train_text,
            has_discriminator=args.save_discriminator,
            stage1_samples_image="samples_stage1.png",
        )
        print_run_summary(args.output_dir, data.evaluation, metrics)
        if args.push_to_hub:
            push_folder(args, "train_stackgan.py", logger)
    end_run(accelerator)
    return metrics


def sampling_pipeline(tokenizer, text_model, generator_model) -> hfgen.StackGANPipeline:
    pipeline = hfgen.StackGANPipeline(tokenizer=tokenizer, text_encoder=text_model, gan=generator_model)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@torch.no_grad()
def validate(generator_model, tokenizer, text_model, captions, data, args, accelerator, step: int, stages) -> dict:
    """A grid of prompted samples of the last of `stages` (main process) and the metrics of each (all processes) of
    `generator_model` and the text encoder in eval mode; logged."""
    was_training = generator_model.training, text_model.training
    generator_model.eval()
    text_model.eval()
    pipeline = sampling_pipeline(tokenizer, text_model, generator_model)
    if accelerator.is_main_process:
        prompts = grid_prompts(captions, args.num_validation_images)
        seeded = torch.Generator(device="cpu").manual_seed(args.seed)
        images = pipeline(prompt=prompts, generator=seeded, stage=stages[-1]).images
        columns = len(captions.phrases) if isinstance(captions, LabelCaptions) else None
        save_grid(images, os.path.join(args.output_dir, "validation"), "samples", accelerator, step, columns)
    metrics = measure_stackgan(pipeline, captions, data, args, accelerator, stages)
    generator_model.train(was_training[0])
    text_model.train(was_training[1])
    accelerator.log({f"eval/{name}": value for name, value in metrics.items()}, step=step)
    logger.info(f"step {step}: " + ", ".join(f"{name} {value:.4g}" for name, value in metrics.items()))
    return metrics


if __name__ == "__main__":
    run_script(main, parse_args())
