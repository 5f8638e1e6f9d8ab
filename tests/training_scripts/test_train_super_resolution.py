"""train_super_resolution.py run as users run it: `accelerate launch` subprocesses on a tiny super-resolution UNet
(8 -> 16 px on the built-in digits) with a tiny base DDPM, four steps at a time; `hfgen evaluate`, `hfgen sample` and
the demo on the folder it writes; its one-line errors."""

import json
import shutil

import pytest
import torch
from diffusers import DDPMScheduler, UNet2DModel
from huggingface_hub import ModelCard
from safetensors.torch import load_file

import hfgen
from hfgen.data import images_as_tensor, load_digits_dataset
from hfgen.metrics import psnr, ssim
from hfgen.pipelines.cascade.resampling import downsample, residual_std, upsample
from hfgen.testing.pipeline_tester import seeded

from .conftest import dry_run, evaluate_saved_copy, import_script, parse_error

# How close `hfgen evaluate` comes to the run's own numbers (see test_train_diffusion.py): the same images, other
# thread counts.
SAME_SAMPLES = dict(rel=1e-5, abs=1e-4)

TINY_RUN = [
    "--resolution",
    "16",
    "--num_train_timesteps",
    "100",
    "--max_noise_level",
    "10",
    "--sampling_noise_level",
    "5",
    "--cascade_noise_level",
    "7",
    "--num_inference_steps",
    "2",
    "--base_num_inference_steps",
    "2",
    "--train_batch_size",
    "8",
    "--num_eval_samples",
    "16",
    "--report_to",
    "none",
    "--max_train_steps",
    "4",
    "--checkpointing_steps",
    "2",
    "--validation_steps",
    "2",
]


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory):
    """A tiny super-resolution UNet config (16 px) and a tiny base DDPM folder (8 px), as train_ddpm.py saves one."""
    folder = tmp_path_factory.mktemp("super_resolution")
    common = dict(
        block_out_channels=[8, 16],
        layers_per_block=1,
        down_block_types=["DownBlock2D", "DownBlock2D"],
        up_block_types=["UpBlock2D", "UpBlock2D"],
        norm_num_groups=4,
    )
    UNet2DModel(sample_size=16, in_channels=2, out_channels=1, class_embed_type="timestep", **common).save_config(
        folder / "unet"
    )
    torch.manual_seed(0)
    base = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, **common)
    hfgen.DDPMPipeline(unet=base, scheduler=DDPMScheduler(num_train_timesteps=50)).save_pretrained(folder / "base")
    return folder


def launch_run(launch_script, tiny_folders, output_dir, *extra):
    return launch_script(
        "train_super_resolution.py",
        "--output_dir",
        output_dir,
        "--model_config_name_or_path",
        tiny_folders / "unet",
        "--base_model_name_or_path",
        tiny_folders / "base",
        *TINY_RUN,
        *extra,
    )


@pytest.fixture(scope="module")
def cascade_run(tmp_path_factory, tiny_folders, launch_script):
    """Four steps of the super-resolution stage on a base: the uninterrupted reference run."""
    output_dir = tmp_path_factory.mktemp("cascade") / "run"
    result = launch_run(launch_script, tiny_folders, output_dir)
    return output_dir, result


def test_the_folder_is_a_cascade_whose_super_resolution_stage_loads_alone(cascade_run, tiny_folders):
    output_dir, result = cascade_run
    for name in ("README.md", "samples.png", "metrics.json", "training_args.json", "base_unet/config.json"):
        assert (output_dir / name).is_file(), name
    assert f"Hub-ready folder: {output_dir}" in result.stdout
    assert (output_dir / "validation" / "step-000002-super_resolution.png").is_file()
    cascade = hfgen.CascadedDiffusionPipeline.from_pretrained(output_dir)
    assert cascade.config.low_resolution == 8 and type(cascade.scheduler).__name__ == "DDIMScheduler"
    # a residual model by default, its scale giving the residuals of the training digits unit variance, its sampler
    # unclipped (residuals at unit variance pass 1)
    assert json.loads((output_dir / "training_args.json").read_text())["prediction_target"] == "residual"
    train = load_digits_dataset(16)["train"]
    spread = residual_std(images_as_tensor(train, 16, "L", num_images=min(len(train), 1000)), 8)
    assert cascade.config.prediction_target == "residual"
    assert cascade.config.residual_scale == pytest.approx(1 / spread, rel=1e-5)
    assert not cascade.scheduler.config.clip_sample
    # the base is the given folder's UNet, unchanged
    base = load_file(tiny_folders / "base" / "unet" / "diffusion_pytorch_model.safetensors")
    saved = load_file(output_dir / "base_unet" / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(base[name], saved[name]) for name in base)
    cascade.set_progress_bar_config(disable=True)
    output = cascade(batch_size=2, generator=seeded(0), num_inference_steps=2, base_num_inference_steps=2)
    assert output.images[0].size == (16, 16) and output.low_res_images[0].size == (8, 8)
    stage = hfgen.SuperResolutionPipeline.from_pretrained(output_dir)
    stage.set_progress_bar_config(disable=True)
    assert stage(image=output.low_res_images[0], num_inference_steps=2).images[0].size == (16, 16)
    card = ModelCard.load(output_dir / "README.md")
    assert "hfgen.CascadedDiffusionPipeline.from_pretrained" in card.text and "8 px" in card.text
    assert card.data.pipeline_tag == "unconditional-image-generation"
    results = {result.metric_type: result for result in card.data.eval_results}
    assert {"psnr", "ssim", "fid", "bicubic_psnr", "bicubic_fid", "cascade_fid", "base_upsampled_fid"} <= set(results)
    assert results["psnr"].dataset_name == "hfgen/digits (test)"


def test_the_bicubic_baseline_is_the_held_out_digits_downsampled_and_upsampled(cascade_run):
    output_dir, _ = cascade_run
    record = json.loads((output_dir / "metrics.json").read_text())
    assert record["step"] == 4 and record["protocol"]["split"] == "test"
    assert record["protocol"]["sampler"] == "DDIM (eta 0), 2 steps, conditioning noise level 5"
    assert "super-resolved at conditioning noise level 7 (cascade_*)" in record["protocol"]["cascade"]
    # measured here from the data alone: the numbers the card sets the model against
    originals = images_as_tensor(load_digits_dataset(16)["test"], 16, "L")
    bicubic = upsample(downsample(originals, 8), 16)
    metrics = record["metrics"]
    assert metrics["bicubic_psnr"] == pytest.approx(psnr(bicubic, originals).item(), rel=1e-5)
    assert metrics["bicubic_ssim"] == pytest.approx(ssim(bicubic, originals).item(), rel=1e-5)
    # four steps of training add noise to the bicubic image, which the model must learn to beat
    assert metrics["psnr"] < metrics["bicubic_psnr"]
    for name in ("cascade_fid", "base_upsampled_fid", "cascade_kid_mean", "base_upsampled_precision"):
        assert name in metrics


def test_hfgen_evaluate_measures_the_cascade_folder_as_the_run_did(cascade_run, tmp_path, capsys):
    output_dir, _ = cascade_run
    printed, record = evaluate_saved_copy(output_dir, tmp_path / "cascade", capsys)
    assert printed["protocol"] == record["protocol"]
    assert printed["metrics"] == pytest.approx(record["metrics"], **SAME_SAMPLES)


def test_resume_continues_exactly_including_the_ema(tmp_path, cascade_run, tiny_folders, launch_script):
    reference_dir, _ = cascade_run
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copytree(reference_dir / "checkpoint-2", resumed_dir / "checkpoint-2")
    launch_run(launch_script, tiny_folders, resumed_dir, "--resume_from_checkpoint", "latest")
    # the saved UNet is the EMA's average: equal only if the average, the weights and the noise all resumed exactly
    reference = load_file(reference_dir / "unet" / "diffusion_pytorch_model.safetensors")
    resumed = load_file(resumed_dir / "unet" / "diffusion_pytorch_model.safetensors")
    for name in reference:
        torch.testing.assert_close(resumed[name], reference[name], rtol=0, atol=1e-6, msg=name)


def test_hfgen_sample_super_resolves_an_image_file_and_the_demo_builds(cascade_run, tmp_path, capsys):
    from PIL import Image

    from hfgen.cli import main
    from hfgen.demo import build_demo
    from hfgen.pipelines.cascade.demo import super_resolve_upload

    output_dir, _ = cascade_run
    stage_dir = tmp_path / "stage"
    stage = hfgen.SuperResolutionPipeline.from_pretrained(output_dir)
    stage.set_progress_bar_config(disable=True)
    stage.save_pretrained(stage_dir)
    low_res = Image.fromarray((torch.rand(8, 8, generator=seeded(0)) * 255).byte().numpy(), mode="L")
    low_res.save(tmp_path / "small.png")
    assert main(["sample", str(stage_dir), "--images", str(tmp_path / "small.png"), "--num_images", "3",
                 "--output", str(tmp_path / "grid.png")]) == 0  # fmt: skip
    assert "3 images from SuperResolutionPipeline" in capsys.readouterr().out
    # seed i's super-resolution of the file: the grid's image i
    grid = Image.open(tmp_path / "grid.png")
    expected = stage(image=low_res, generator=seeded(1), num_inference_steps=50).images[0]
    assert list(grid.crop((16, 0, 32, 16)).getdata()) == list(expected.convert(grid.mode).getdata())
    # the demo brings an upload of any size to the model's low resolution
    upload = Image.new("RGB", (40, 30), "white")
    shown, bicubic, result = super_resolve_upload(stage, upload, seed=0, noise_level=0, num_inference_steps=2)
    assert shown.size == bicubic.size == result.size == (16, 16)
    assert set(bicubic.getdata()) == {255}  # white stays white
    for folder in (output_dir, stage_dir):
        assert type(build_demo(str(folder))).__name__ == "Blocks"


def test_a_users_folder_and_the_one_line_errors(tmp_path, tiny_folders):
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(12):
        Image.new("RGB", (20 + index, 24), (10 * index, 80, 200)).save(folder / f"{index}.png")
    printed = dry_run(
        "train_super_resolution.py",
        "--train_data_dir", folder, "--resolution", "32", "--low_resolution", "8", "--output_dir", tmp_path / "out",
    )  # fmt: skip
    report = json.loads(printed)
    assert report["unet_config"]["in_channels"] == 6 and report["unet_config"]["class_embed_type"] == "timestep"
    assert report["args"]["low_resolution"] == 8 and report["args"]["train_data_dir"] == str(folder)
    assert report["args"]["prediction_target"] == "residual" and report["residual_scale"] > 1
    assert report["scheduler_config"]["clip_sample"] is False
    script = import_script("train_super_resolution.py")
    assert "--low_resolution 32 must be smaller than --resolution 32" in parse_error(
        script, "--resolution", "32", "--low_resolution", "32"
    )
    for flag in ("--sampling_noise_level", "--cascade_noise_level"):
        assert f"{flag} 1000 is beyond the schedule's --num_train_timesteps 1000" in parse_error(script, flag, "1000")
    # a base of another size is refused before any training
    with pytest.raises(ValueError, match=r"makes 8px 1-channel images, but this model super-resolves 16px") as error:
        dry_run(
            "train_super_resolution.py",
            "--base_model_name_or_path", tiny_folders / "base", "--output_dir", tmp_path / "other",
        )  # fmt: skip
    assert "pass --low_resolution 8" in str(error.value) and "\n" not in str(error.value)


def test_an_image_model_and_a_pretrained_folders_own_target(tmp_path, cascade_run):
    output_dir, _ = cascade_run
    image_run = json.loads(
        dry_run("train_super_resolution.py", "--prediction_target", "image", "--output_dir", tmp_path)
    )
    assert image_run["residual_scale"] is None and image_run["scheduler_config"]["clip_sample"] is True
    # continuing a residual model keeps its scale, and refuses to turn it into an image model
    continued = json.loads(
        dry_run(
            "train_super_resolution.py", "--pretrained_model_name_or_path", output_dir, "--resolution", "16",
            "--output_dir", tmp_path / "continued",
        )
    )  # fmt: skip
    assert continued["args"]["prediction_target"] == "residual"
    assert continued["residual_scale"] == hfgen.SuperResolutionPipeline.load_config(output_dir)["residual_scale"]
    with pytest.raises(
        ValueError, match="holds a model that predicts the residual, so it cannot continue as --prediction_target"
    ):
        dry_run(
            "train_super_resolution.py", "--pretrained_model_name_or_path", output_dir, "--resolution", "16",
            "--prediction_target", "image", "--output_dir", tmp_path / "other",
        )  # fmt: skip
