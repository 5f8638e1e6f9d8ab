"""The `hfgen` command: use a folder any hfgen script saved without writing Python.

    hfgen sample <folder or Hub id> --num_images 64 --seed 0 --output grid.png
    hfgen sample <CycleGAN / pix2pix folder> --images photos/ --output translated.png
    hfgen evaluate <folder or Hub id> --train_data_dir my_images/ [--metrics_model facebook/dinov2-small]
    hfgen demo <folder or Hub id> [--port 7860]          # the folder's Gradio demo, on localhost
    hfgen space <folder>                                 # app.py + requirements.txt: the folder runs as a Space
    hfgen convert stylegan network-snapshot.pkl <folder>  # NVIDIA's StyleGAN2-ADA / StyleGAN3 weights, no code run

`sample` draws images from a generator's pipeline folder and saves them as one grid; image `i` always comes from seed
`--seed + i`, so the first 16 of 64 images are the 16 of a `--num_images 16` call. A translator (CycleGAN, pix2pix)
or GroupViT maps `--images` instead, each input beside its output. `evaluate` measures any folder a script saved as
its script does, on the run's own held-out data (its `training_args.json`) unless other data is given: a generator's
FID, KID, precision / recall (with a feature extractor) and diversity ratio; each other family's own metrics from its
`evaluation` module (see `hfgen.families`). It prints the metrics as JSON; `--update_card` writes them into the
folder's model card.

A mistake (a folder that is not a pipeline, a flag the pipeline does not take) is one line on stderr and exit code 2.
"""

import argparse
import inspect
import json
import os
import sys

from .pipelines.sampling import image_grid, sample_images

# Flags of `sample` that pass straight to the pipeline call when it takes them (flag name = argument name).
PIPELINE_FLAGS = ("prompt", "negative_prompt", "num_inference_steps", "guidance_scale", "truncation_psi")


class CommandError(ValueError):
    """A user mistake, reported as one line."""


def sampling_arguments(pipeline, args: argparse.Namespace) -> dict:
    """The call arguments other than the batch and the generators, from the flags the pipeline takes; a flag it does
    not take, or a prompt or control image it needs and was not given, is a `CommandError`."""
    parameters = inspect.signature(type(pipeline).__call__).parameters
    name = type(pipeline).__name__
    # a pipeline whose prompt is optional takes a prompt or an input image (unCLIP: text-to-image or variations)
    either = "prompt" in parameters and parameters["prompt"].default is not inspect.Parameter.empty
    if "prompt" in parameters and not either and args.prompt is None:
        raise CommandError(f'{name} draws from a text prompt: pass --prompt "..."')
    if either and "image" in parameters and (args.prompt is None) == (not args.images):
        # the pipeline's own message names its arguments, not these flags
        raise CommandError(
            f'{name} draws from a prompt or varies an image: pass --prompt "..." or --images, one of them'
        )
    kwargs = {}
    for flag in PIPELINE_FLAGS:
        value = getattr(args, flag)
        if value is None:
            continue
        if flag not in parameters:
            raise CommandError(f"--{flag}: {name} takes no {flag}")
        kwargs[flag] = value
    if args.class_label is not None:
        if "class_labels" not in parameters:
            raise CommandError(f"--class_label: {name} takes no class labels")
        kwargs["class_labels"] = [args.class_label]
    if "mask_image" in parameters:  # inpainting: every sample repaints the white of the mask in the image
        if not args.images or len(args.images) != 2:
            raise CommandError(f"{name} repaints an image: pass --images <image file> <mask file> (white: repaint)")
        kwargs["image"], kwargs["mask_image"] = read_images(args.images)
    elif "image" in parameters and (args.images or not either):  # a control image (ControlNet), or the image
        # whose variations unCLIP draws: every sample is drawn under it
        if not args.images or len(args.images) != 1:
            raise CommandError(f"{name} draws under a control image: pass --images <one image file>")
        kwargs["image"] = read_images(args.images)[0]
    elif args.images:
        raise CommandError(f"--images: {name} takes no input images")
    return kwargs


def read_images(paths: list[str]) -> list:
    """The images of `paths` (files, or folders whose image files are taken in name order), decoded; a file that is
    not an image is a `CommandError` naming it."""
    from PIL import Image, UnidentifiedImageError

    files = []
    for path in paths:
        if os.path.isdir(path):
            names = sorted(name for name in os.listdir(path) if not name.startswith("."))
            files.extend(os.path.join(path, name) for name in names if os.path.isfile(os.path.join(path, name)))
        else:
            files.append(path)
    if not files:
        raise CommandError(f"--images {' '.join(paths)}: no image files there")
    images = []
    for file in files:
        try:
            with Image.open(file) as image:
                images.append(image.convert("RGB"))
        except (OSError, UnidentifiedImageError) as error:
            raise CommandError(f"--images: {file} is not a readable image ({error})") from None
    return images


def translate_images(pipeline, args: argparse.Namespace) -> list:
    """For the pipelines that map input images to images (CycleGAN, pix2pix; GroupViT's label maps): each `--images`
    input and its output, side by side (the input cropped to the generator's stride, as the pipeline needs, and
    shown at the output's size)."""
    parameters = inspect.signature(type(pipeline).__call__).parameters
    name = type(pipeline).__name__
    if not args.images:
        raise CommandError(f"{name} maps input images: pass --images <files or a folder>")
    for flag in (*PIPELINE_FLAGS, "class_label"):
        if getattr(args, flag) is not None:
            raise CommandError(f"--{flag}: {name} takes no {flag}")
    kwargs = {}
    for flag in ("direction", "class_names"):
        value = getattr(args, flag)
        if value is not None and flag not in parameters:
            raise CommandError(f"--{flag}: {name} takes no {flag}")
        if value is not None:
            kwargs[flag] = (
                value if flag == "direction" else [name.strip() for name in value.split(",") if name.strip()]
            )
        elif flag in parameters and parameters[flag].default is inspect.Parameter.empty:
            raise CommandError(f'{name} needs --{flag} (e.g. --class_names "cat, dog")')
    strides = [getattr(getattr(part, "config", None), "generator_stride", 1) for part in pipeline.components.values()]
    stride = max(strides + [1])
    pairs = []
    for image in read_images(args.images):
        width, height = (image.width // stride) * stride, (image.height // stride) * stride
        if not width or not height:
            raise CommandError(
                f"--images: an image of {image.width}x{image.height} is smaller than the stride {stride}"
            )
        image = image.crop((0, 0, width, height))
        output = pipeline(image, **kwargs).images[0]
        pairs.extend([image.resize(output.size).convert(output.mode), output])
    return pairs


def run_sample(args: argparse.Namespace) -> None:
    from .families import load_folder_pipeline
    from .models.modeling_utils import folder_architecture

    pipeline = load_folder_pipeline(args.folder)
    if pipeline is None:
        architecture = folder_architecture(args.folder)
        raise CommandError(
            f"{args.folder} holds a {architecture}, which draws no images from noise: hfgen sample takes the folders "
            f"of generators and translators; `hfgen demo` and `hfgen evaluate` take this one"
        )
    pipeline.set_progress_bar_config(disable=True)
    parameters = inspect.signature(type(pipeline).__call__).parameters
    if "images" in parameters:
        images = translate_images(pipeline, args)
        image_grid(images, columns=2).save(output_path(args.output))
        print(f"{len(images) // 2} images and their {type(pipeline).__name__} outputs: {os.path.abspath(args.output)}")
        return
    kwargs = sampling_arguments(pipeline, args)
    images = sample_images(pipeline, args.num_images, args.seed, args.batch_size, kwargs)
    image_grid(images, args.columns).save(output_path(args.output))
    seeds = f"seeds {args.seed} to {args.seed + len(images) - 1}"
    print(f"{len(images)} images from {type(pipeline).__name__} ({seeds}): {os.path.abspath(args.output)}")


def output_path(path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return path


# What a folder is measured with when neither its training record nor the command line says otherwise (a family's
# own defaults come between).
RUN_DEFAULTS = dict(
    dataset_name=None,
    train_data_dir=None,
    dataset_config_name=None,
    cache_dir=None,
    class_filter=None,
    validation_split=None,
    seed=0,
    metrics_model=None,
    num_eval_samples=1000,
)
# The flags of `evaluate` that replace the recorded value when given.
RUN_OVERRIDES = (
    "validation_split",
    "seed",
    "metrics_model",
    "num_eval_samples",
    "caption_column",
    "question_column",
    "answer_column",
    "query_template",
)


def run_arguments(folder: str, args: argparse.Namespace, family_defaults: dict) -> argparse.Namespace:
    """The flags the folder is measured with: the run's own (its data, held-out split, seed and the family's
    settings, from `training_args.json`) over the family's defaults, and over both what the command line gives; new
    data (`--dataset_name` / `--train_data_dir`) replaces the recorded data."""
    from .families import recorded_arguments

    recorded = recorded_arguments(folder)
    run = {**RUN_DEFAULTS, **family_defaults, **recorded}
    if args.dataset_name is not None or args.train_data_dir is not None:
        run.update(dataset_name=args.dataset_name, train_data_dir=args.train_data_dir)
        # the run's held-out split and class choices were made for its own data
        run.update(dataset_config_name=None, class_filter=None, class_names=None, validation_split=None)
    elif not recorded and run["dataset_name"] is None and run["train_data_dir"] is None:
        raise CommandError(
            "give the data to measure against: --dataset_name or --train_data_dir (the folder has no "
            "training_args.json recording the data it was trained on)"
        )
    for flag in RUN_OVERRIDES:
        if getattr(args, flag, None) is not None:
            run[flag] = getattr(args, flag)
    return argparse.Namespace(**run)


def run_evaluate(args: argparse.Namespace) -> None:
    from accelerate import Accelerator
    from huggingface_hub import ModelCard

    from .families import folder_family
    from .model_card import card_metrics

    if args.update_card and not os.path.isfile(os.path.join(args.folder, "README.md")):
        raise CommandError(f"--update_card: {args.folder} has no README.md (model card) to update")
    held, module = folder_family(args.folder, "evaluation")
    if module is None:
        name = held if isinstance(held, str) else held.__name__
        raise CommandError(f"{name} folders have no evaluation yet: no hfgen training script saves them")
    run = run_arguments(args.folder, args, module.EVALUATION_DEFAULTS)
    result = module.evaluate_folder(args.folder, run, Accelerator())
    printed = {"metrics": result.metrics, "protocol": result.protocol}
    if result.baselines:
        printed["baselines"] = result.baselines
    print(json.dumps(printed, indent=2))
    if args.update_card:
        path = os.path.join(args.folder, "README.md")
        card = ModelCard.load(path)
        task = card.data.pipeline_tag or result.task
        card.data.eval_results = [
            metric.to_eval_result(task)
            for metric in card_metrics(result.metrics, None, result.protocol, result.metric_names)
        ]
        card.data.model_name = card.data.model_name or os.path.basename(os.path.abspath(args.folder))
        card.save(path)
        print(f"model-index of {path} rewritten with these metrics")


def run_convert(args: argparse.Namespace) -> None:
    from .models.stylegan.conversion import save_converted_folder

    pipeline, source = save_converted_folder(args.checkpoint, args.folder, args.network)
    config = pipeline.stylegan.config
    print(
        f"{os.path.abspath(args.folder)}: a {config.resolution}px StyleGAN "
        f"{3 if config.generator_architecture == 'alias_free' else 2} converted from {args.checkpoint}"
        "; load it with hfgen.StyleGANPipeline.from_pretrained"
    )
    if source["discriminator"] is not None:
        print(
            "its discriminator is in discriminator/: train_stylegan.py --pretrained_model_name_or_path fine-tunes both"
        )
    else:
        print(f"its discriminator was not converted ({source['discriminator_note']}): fine-tuning starts a new one")


def run_demo(args: argparse.Namespace) -> None:
    from .demo import build_demo

    demo = build_demo(args.folder)
    print(
        f"demo of {args.folder} on http://{args.host}:{args.port}" + (" and a public share link" if args.share else "")
    )
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, quiet=True)


def run_space(args: argparse.Namespace) -> None:
    from .demo import folder_demo_module
    from .training.hub import write_space_files

    folder_demo_module(args.folder)
    write_space_files(args.folder)
    print(
        f"{os.path.abspath(args.folder)} now holds app.py and requirements.txt: push it to a Space repo (Gradio SDK)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hfgen", description="Use a folder an hfgen script saved.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    sample = commands.add_parser(
        "sample",
        help="Draw images from a generator's folder (or translate --images) into one grid.",
        description="Draw images from a generator's pipeline folder and save them as one grid image; a translator "
        "(CycleGAN, pix2pix) or GroupViT maps --images instead, each beside its output.",
    )
    sample.add_argument("folder", help="A pipeline folder saved by an hfgen script, or its Hub id.")
    sample.add_argument("--num_images", type=positive_int, default=16)
    sample.add_argument("--seed", type=int, default=0, help="Image i is drawn with seed --seed + i.")
    sample.add_argument("--output", default="samples.png", help="Where the grid goes (PNG).")
    sample.add_argument("--columns", type=positive_int, default=None, help="Default: a square grid.")
    sample.add_argument("--batch_size", type=positive_int, default=16, help="Images per pipeline call.")
    sample.add_argument("--class_label", type=int, default=None, help="Class of every image (conditional models).")
    sample.add_argument("--prompt", default=None, help="Text prompt (latent diffusion).")
    sample.add_argument("--negative_prompt", default=None)
    sample.add_argument("--num_inference_steps", type=positive_int, default=None, help="Denoising steps (diffusion).")
    sample.add_argument("--guidance_scale", type=float, default=None)
    sample.add_argument("--truncation_psi", type=float, default=None, help="StyleGAN truncation (1: none).")
    sample.add_argument(
        "--images",
        nargs="+",
        default=None,
        help="Input images (files or folders): translated by CycleGAN / pix2pix (each beside its translation), "
        "segmented by GroupViT, the control image of a ControlNet pipeline, or an image and its mask (white: "
        "repaint) for an inpainting pipeline.",
    )
    sample.add_argument("--direction", choices=["a_to_b", "b_to_a"], default=None, help="CycleGAN's direction.")
    sample.add_argument("--class_names", default=None, help='Comma-separated classes for GroupViT ("cat, dog").')
    sample.set_defaults(run=run_sample)

    from .data import parse_validation_split

    evaluate = commands.add_parser(
        "evaluate",
        help="Measure a saved folder on held-out images as its training script does; print the metrics as JSON.",
        description="Measure a folder an hfgen script saved as the script measures it, on the run's own held-out "
        "images (its training_args.json) or on other data: FID, KID, Inception Score, precision / recall and the "
        "diversity ratio for generators; each family's own metrics for the others (retrieval and zero-shot accuracy, "
        "caption scores, VQA accuracy, mAP, mIoU, translation and prompt metrics).",
    )
    evaluate.add_argument("folder", help="A folder saved by an hfgen script (pipeline or model), or its Hub id.")
    evaluate.add_argument(
        "--dataset_name", default=None, help="A `datasets` name (hfgen/digits is built in). Default: the run's data."
    )
    evaluate.add_argument("--train_data_dir", default=None, help="A folder of images (class subfolders allowed).")
    evaluate.add_argument(
        "--validation_split",
        type=parse_validation_split,
        default=None,
        help="Images held out to measure against: a fraction or a count. Default: the run's, else the data's own "
        "validation / test split, else 10%% of the images.",
    )
    evaluate.add_argument(
        "--metrics_model",
        default=None,
        help="A transformers vision backbone (folder or Hub id) for FID and its kin on your data.",
    )
    evaluate.add_argument(
        "--num_eval_samples", type=positive_int, default=None, help="Images generated (default: the run's, else 1000)."
    )
    evaluate.add_argument(
        "--seed",
        type=int,
        default=None,
        help="Seed of the held-out split and the samples (default: the run's, else 0).",
    )
    evaluate.add_argument(
        "--caption_column",
        default=None,
        help="The column of the data's captions, for image-text models on other data (default: the run's).",
    )
    evaluate.add_argument("--question_column", default=None, help="VQA folders on other data: the questions' column.")
    evaluate.add_argument("--answer_column", default=None, help="VQA folders on other data: the answers' column.")
    evaluate.add_argument(
        "--query_template",
        default=None,
        help="OWL-ViT folders: the text query of each class, {} for its name (default: the run's, e.g. \"a photo of "
        'a {}").',
    )
    evaluate.add_argument(
        "--update_card", action="store_true", help="Write the metrics into the folder's model card (model-index)."
    )
    evaluate.set_defaults(run=run_evaluate)

    demo = commands.add_parser(
        "demo",
        help="Open the folder's Gradio demo in the browser (localhost).",
        description="Serve the Gradio demo of a folder an hfgen script saved: sampling by seed, class, truncation or "
        "steps for generators, translation, segmentation, zero-shot labels, captions, answers or boxes of an "
        "uploaded image for the others. Needs pip install 'hfgen[demo]'.",
    )
    demo.add_argument("folder", help="A folder saved by an hfgen script (pipeline or model), or its Hub id.")
    demo.add_argument("--port", type=positive_int, default=7860)
    demo.add_argument("--host", default="127.0.0.1", help="Interface to serve on (default: this machine only).")
    demo.add_argument("--share", action="store_true", help="Also open a public gradio.live link (off by default).")
    demo.set_defaults(run=run_demo)

    convert = commands.add_parser(
        "convert",
        help="Convert published weights into an hfgen folder (StyleGAN2-ADA / StyleGAN3 pickles, rosinality "
        "checkpoints).",
        description="Convert an NVIDIA StyleGAN2-ADA or StyleGAN3 network-snapshot.pkl or a rosinality "
        "stylegan2-pytorch .pt checkpoint into an hfgen StyleGAN pipeline folder. No code from the file runs: it is "
        "read with a restricted unpickler, and a file that would call anything but tensor and container rebuilders is "
        "refused.",
    )
    convert.add_argument("family", choices=["stylegan"], help="What the checkpoint holds.")
    convert.add_argument("checkpoint", help="The network-snapshot.pkl or .pt checkpoint.")
    convert.add_argument("folder", help="A new folder for the converted pipeline (nothing is overwritten).")
    convert.add_argument(
        "--network",
        default=None,
        help="Which of the file's generators (default: G_ema for NVIDIA, g_ema for rosinality).",
    )
    convert.set_defaults(run=run_convert)

    space = commands.add_parser(
        "space",
        help="Write app.py and requirements.txt so the folder runs as a Hugging Face Space.",
        description="Make a folder a Gradio Space: app.py (its demo), requirements.txt, and the Space "
        "fields of its card.",
    )
    space.add_argument("folder", help="A folder saved by an hfgen script (pipeline or model).")
    space.set_defaults(run=run_space)
    return parser


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    import diffusers
    import transformers

    # a command prints its result, not the loading bars of every component
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except (CommandError, ValueError, OSError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"hfgen {args.command}: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
