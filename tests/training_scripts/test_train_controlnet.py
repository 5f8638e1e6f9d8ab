"""train_controlnet.py run as users run it: `accelerate launch` subprocesses on a tiny latent diffusion base (hfgen's
own, and a Stable-Diffusion-shaped one), control maps computed from the digits or read from a folder."""

import json
import shutil

import numpy as np
import pytest
import torch
from diffusers import ControlNetModel
from huggingface_hub import ModelCard
from PIL import Image
from safetensors.torch import load_file

import hfgen
from hfgen.data.control import control_maps
from hfgen.testing.pipeline_tester import seeded

from .conftest import evaluate_saved_copy, import_script, parse_error
from .test_train_diffusion import SAME_SAMPLES
from .test_user_errors import assert_one_line_error, run_directly

TINY_CONTROLNET_RUN = [
    "--train_batch_size",
    "8",
    "--num_eval_samples",
    "8",
    "--num_validation_images",
    "4",
    "--num_inference_steps",
    "2",
    "--report_to",
    "none",
]


@pytest.fixture(scope="module")
def controlnet_run(tmp_path_factory, tiny_ldm_folder, launch_script):
    """Four ControlNet steps on Canny maps of the digits, checkpoints every two: the uninterrupted reference run."""
    output_dir = tmp_path_factory.mktemp("controlnet") / "run"
    result = launch_script(
        "train_controlnet.py",
        "--pretrained_model_name_or_path",
        tiny_ldm_folder,
        "--output_dir",
        output_dir,
        "--max_train_steps",
        "4",
        "--checkpointing_steps",
        "2",
        "--validation_steps",
        "2",
        "--random_flip",
        *TINY_CONTROLNET_RUN,
    )
    return output_dir, result


def test_the_controlnet_folder_guides_the_base_pipeline(controlnet_run, tiny_ldm_folder, digit_batch):
    output_dir, result = controlnet_run
    assert (output_dir / "diffusion_pytorch_model.safetensors").is_file()
    assert (output_dir / "validation" / "step-000002-control_and_samples.png").is_file()
    record = json.loads((output_dir / "metrics.json").read_text())
    metrics = record["metrics"]
    assert 0 <= metrics["edge_f1"] <= 1 and 0 <= metrics["edge_f1_without_controlnet"] <= 1
    assert "class_accuracy" in metrics and "fid" in metrics
    assert record["protocol"]["dataset"] == "hfgen/digits" and "canny" in record["protocol"]["control"]
    card = (output_dir / "README.md").read_text()
    assert "edge agreement of the base model alone (F1)" in card and tiny_ldm_folder in card
    assert "controlnet=controlnet" in card and 'control_maps(images, "canny")' in card
    training_args = json.loads((output_dir / "training_args.json").read_text())
    assert training_args["resolution"] == 16 and training_args["color_mode"] == "L"
    assert training_args["prediction_type"] == "epsilon"  # the base's, recorded

    controlnet = ControlNetModel.from_pretrained(output_dir)
    pipeline = hfgen.LatentDiffusionControlNetPipeline.from_pretrained(tiny_ldm_folder, controlnet=controlnet)
    pipeline.set_progress_bar_config(disable=True)
    control = control_maps(digit_batch[:2], "canny")
    arguments = dict(prompt="a handwritten digit zero", image=control, num_inference_steps=2, output_type="pt")
    images = pipeline(**arguments, num_images_per_prompt=2, generator=seeded(0)).images
    assert images.shape == (2, 1, 16, 16)
    # the trained zero convolutions are no longer zero: the control changes the images
    base = pipeline(
        **arguments, num_images_per_prompt=2, controlnet_conditioning_scale=0.0, generator=seeded(0)
    ).images
    assert not torch.allclose(images, base, atol=1e-6)


def test_hfgen_evaluate_measures_the_controlnet_on_its_base_as_the_run_did(
    controlnet_run, tiny_ldm_folder, tmp_path, capsys
):
    from hfgen.cli import main

    output_dir, _ = controlnet_run
    folder = tmp_path / "controlnet"
    # no flag: the base, the data, the Canny maps and the sampling all come from the run's training_args.json
    printed, record = evaluate_saved_copy(output_dir, folder, capsys)
    assert printed["metrics"] == pytest.approx(record["metrics"], **SAME_SAMPLES)
    assert printed["protocol"] == record["protocol"]
    results = {result.metric_type: result for result in ModelCard.load(folder / "README.md").data.eval_results}
    assert results["edge_f1"].metric_value == pytest.approx(record["metrics"]["edge_f1"])
    assert "edge_f1_without_controlnet" in results and "fid" in results

    # what a ControlNet folder cannot give back by itself: the base it steers, recorded in training_args.json
    arguments = json.loads((folder / "training_args.json").read_text())
    (folder / "training_args.json").write_text(
        json.dumps({**arguments, "pretrained_model_name_or_path": str(tmp_path / "moved")})
    )
    assert main(["evaluate", str(folder)]) == 2
    error = capsys.readouterr().err
    assert "the base pipeline" in error and "cannot be loaded" in error
    (folder / "training_args.json").unlink()
    assert main(["evaluate", str(folder), "--dataset_name", "hfgen/digits"]) == 2
    error = capsys.readouterr().err
    assert "holds a ControlNet but not the base pipeline" in error and len(error.strip().splitlines()) == 1
    # nor does a pipeline folder holding base and ControlNet record the control maps it is measured on
    base = hfgen.LatentDiffusionPipeline.from_pretrained(tiny_ldm_folder)
    controlnet = ControlNetModel.from_pretrained(folder)
    hfgen.LatentDiffusionControlNetPipeline(**base.components, controlnet=controlnet).save_pretrained(tmp_path / "cn")
    assert main(["evaluate", str(tmp_path / "cn"), "--dataset_name", "hfgen/digits"]) == 2
    assert "without the control maps it is measured on" in capsys.readouterr().err


def test_controlnet_resume_continues_exactly_including_the_ema(
    tmp_path, controlnet_run, tiny_ldm_folder, launch_script
):
    reference_dir, _ = controlnet_run
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copytree(reference_dir / "checkpoint-2", resumed_dir / "checkpoint-2")
    launch_script(
        "train_controlnet.py",
        "--pretrained_model_name_or_path",
        tiny_ldm_folder,
        "--output_dir",
        resumed_dir,
        "--max_train_steps",
        "4",
        "--checkpointing_steps",
        "2",
        "--validation_steps",
        "2",
        "--random_flip",
        *TINY_CONTROLNET_RUN,
        "--resume_from_checkpoint",
        "latest",
    )
    reference = load_file(reference_dir / "diffusion_pytorch_model.safetensors")
    resumed = load_file(resumed_dir / "diffusion_pytorch_model.safetensors")
    for key in reference:
        torch.testing.assert_close(resumed[key], reference[key], rtol=0, atol=1e-6, msg=key)


def test_control_images_from_a_folder_on_unlabelled_images(tmp_path, tiny_ldm_folder, launch_script, digit_batch):
    """A user's folder of RGB images with their masks in a parallel folder: no labels, so empty captions."""
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    pixels = ((digit_batch + 1) * 127.5).round().to(torch.uint8)[:, 0].numpy()
    for index, array in enumerate(pixels):
        Image.fromarray(np.stack([array, 255 - array, array], axis=-1)).save(images / f"{index}.png")
        Image.fromarray(np.where(array > 127, 255, 0).astype(np.uint8)).save(masks / f"{index}.png")
    output_dir = tmp_path / "run"
    launch_script(
        "train_controlnet.py",
        "--pretrained_model_name_or_path",
        tiny_ldm_folder,
        "--train_data_dir",
        images,
        "--conditioning_data_dir",
        masks,
        "--control_type",
        "mask",
        "--output_dir",
        output_dir,
        "--max_train_steps",
        "2",
        "--validation_split",
        "4",
        *TINY_CONTROLNET_RUN,
    )
    record = json.loads((output_dir / "metrics.json").read_text())
    assert record["protocol"]["dataset"] == str(images) and "read from the data" in record["protocol"]["control"]
    assert 0 <= record["metrics"]["mask_iou"] <= 1 and "mask_iou_without_controlnet" in record["metrics"]
    assert "fid" not in record["metrics"]  # no extractor for a user's folder without --metrics_model
    assert "class_accuracy" not in record["metrics"]

    (masks / "3.png").unlink()
    from hfgen.pipelines.latent_diffusion.evaluation import conditioning_images

    args = import_script("train_controlnet.py").parse_args(
        [
            f"--pretrained_model_name_or_path={tiny_ldm_folder}",
            f"--train_data_dir={images}",
            f"--conditioning_data_dir={masks}",
        ]
    )
    split = hfgen.data.load_image_dataset(train_data_dir=str(images), resolution=16)["train"]
    with pytest.raises(ValueError, match="--conditioning_data_dir has no control image .*3.png"):
        conditioning_images(split, args)


def test_a_stable_diffusion_base_gives_a_controlnet_diffusers_loads(
    tmp_path, tiny_stable_diffusion_folder, launch_script
):
    from diffusers import StableDiffusionControlNetPipeline

    output_dir = tmp_path / "run"
    launch_script(
        "train_controlnet.py",
        "--pretrained_model_name_or_path",
        tiny_stable_diffusion_folder,
        "--output_dir",
        output_dir,
        "--max_train_steps",
        "1",
        "--control_type",
        "sobel",
        "--no-use_ema",
        *TINY_CONTROLNET_RUN,
    )
    training_args = json.loads((output_dir / "training_args.json").read_text())
    assert training_args["resolution"] == 32 and training_args["color_mode"] == "RGB"
    controlnet = ControlNetModel.from_pretrained(output_dir)
    pipeline = StableDiffusionControlNetPipeline.from_pretrained(tiny_stable_diffusion_folder, controlnet=controlnet)
    pipeline.set_progress_bar_config(disable=True)
    control = torch.rand(1, 3, 32, 32, generator=seeded(0))
    images = pipeline(
        "a handwritten digit two", image=control, num_inference_steps=2, output_type="np", generator=seeded(0)
    ).images
    assert images.shape == (1, 32, 32, 3) and np.isfinite(images).all()


def test_wrong_controlnet_flags_are_one_line(tmp_path, tiny_ldm_folder, tiny_model_configs):
    wrong = tmp_path / "wrong"
    base = ["--pretrained_model_name_or_path", tiny_ldm_folder, "--output_dir", wrong]
    result = run_directly("train_controlnet.py", *base, "--resolution", "32")
    assert_one_line_error(result, "--resolution 32 but the base model makes 16px images")
    script = import_script("train_controlnet.py")
    error = parse_error(script, *base, "--canny_low_threshold", "0.5")
    assert "--canny_low_threshold must not be above --canny_high_threshold" in error
    error = parse_error(script, *base, "--conditioning_data_dir", tmp_path)
    assert "--conditioning_data_dir pairs control images with the files of --train_data_dir" in error
    args = script.parse_args(["--pretrained_model_name_or_path", str(tiny_model_configs / "vae")])
    with pytest.raises(ValueError, match="holds a single model.*LatentDiffusionPipeline.from_pretrained cannot load"):
        script.load_models(args)
    assert not wrong.exists()


def test_control_images_and_captions_from_dataset_columns(tmp_path, tiny_ldm_folder, launch_script, digit_batch):
    """An imagefolder whose metadata.jsonl pairs each image with a control image and a caption (datasets reads
    `conditioning_image_file_name` as an image column), as ControlNet datasets on the Hub are laid out."""
    folder = tmp_path / "data" / "train"
    (folder / "edges").mkdir(parents=True)
    rows = []
    pixels = ((digit_batch + 1) * 127.5).round().to(torch.uint8)[:, 0].numpy()
    edges = (control_maps(digit_batch, "sobel")[:, 0] * 255).to(torch.uint8).numpy()
    for index, (array, edge) in enumerate(zip(pixels, edges, strict=True)):
        Image.fromarray(array).save(folder / f"{index}.png")
        Image.fromarray(edge).save(folder / "edges" / f"{index}.png")
        rows.append(
            {
                "file_name": f"{index}.png",
                "conditioning_image_file_name": f"edges/{index}.png",
                "text": f"digit {index}",
            }
        )
    (folder / "metadata.jsonl").write_text("\n".join(json.dumps(row) for row in rows))
    output_dir = tmp_path / "run"
    launch_script(
        "train_controlnet.py",
        "--pretrained_model_name_or_path",
        tiny_ldm_folder,
        "--train_data_dir",
        tmp_path / "data",
        "--conditioning_image_column",
        "conditioning_image",
        "--caption_column",
        "text",
        "--control_type",
        "sobel",
        "--output_dir",
        output_dir,
        "--max_train_steps",
        "1",
        "--validation_split",
        "4",
        *TINY_CONTROLNET_RUN,
    )
    record = json.loads((output_dir / "metrics.json").read_text())
    assert "edge_f1" in record["metrics"] and "edge_f1_without_controlnet" in record["metrics"]
    assert "read from the data" in record["protocol"]["control"]
    assert "digit" in (output_dir / "README.md").read_text()  # the example prompt comes from the caption column


def test_the_controlnet_folder_samples_and_serves_on_its_recorded_base(controlnet_run, tmp_path, capsys):
    from PIL import Image

    from hfgen.cli import main
    from hfgen.demo import build_demo
    from hfgen.families import load_folder_pipeline

    output_dir, _ = controlnet_run
    pipeline = load_folder_pipeline(str(output_dir))
    assert isinstance(pipeline, hfgen.LatentDiffusionControlNetPipeline)
    control = tmp_path / "control.png"
    Image.new("L", (16, 16), 0).save(control)
    arguments = ["--prompt", "a handwritten digit one", "--num_inference_steps", "2", "--num_images", "2"]
    command = ["sample", str(output_dir), *arguments, "--images", str(control), "--output", str(tmp_path / "g.png")]
    assert main(command) == 0
    assert "2 images from LatentDiffusionControlNetPipeline (seeds 0 to 1)" in capsys.readouterr().out
    side = pipeline.image_size[0]
    assert Image.open(tmp_path / "g.png").size == (2 * side, side)
    # the demo is latent diffusion's, with the control image input
    assert type(build_demo(str(output_dir))).__name__ == "Blocks"
