"""train_ddpm.py (DDPM and score_ve) and train_ldm.py run as users run them: `accelerate launch` subprocesses on tiny
configs and the built-in digits, two steps at a time."""

import json
import os
import shutil

import diffusers
import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import load_file

import hfgen
from hfgen.testing.pipeline_tester import seeded

from .conftest import dry_run, evaluate_saved_copy, import_script, parse_error
from .test_user_errors import assert_one_line_error, run_directly

TINY_DIFFUSION_RUN = [
    "--train_batch_size",
    "8",
    "--num_eval_samples",
    "16",
    "--num_validation_images",
    "4",
    "--num_inference_steps",
    "2",
    "--report_to",
    "none",
]
REFERENCE_RUN = ["--max_train_steps", "4", "--checkpointing_steps", "2", "--validation_steps", "2"]


# How close `hfgen evaluate` comes to the run's own numbers: the same samples, but the run computed in its own process
# (OMP_NUM_THREADS=1) and the test in this one with other thread counts, so float32 sums add up in another order (about
# 1e-7 relative), which FID's matrix square root carries into its hundreds (1e-5 absolute).
SAME_SAMPLES = dict(rel=1e-6, abs=1e-5)


@pytest.fixture(scope="module")
def tiny_unet_configs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("unet_configs")
    common = dict(
        sample_size=16,
        in_channels=1,
        out_channels=1,
        block_out_channels=[8, 16],
        layers_per_block=1,
        down_block_types=["DownBlock2D", "AttnDownBlock2D"],
        up_block_types=["AttnUpBlock2D", "UpBlock2D"],
        norm_num_groups=4,
        attention_head_dim=8,
    )
    diffusers.UNet2DModel(**common).save_config(folder / "ddpm")
    diffusers.UNet2DModel(**common, time_embedding_type="fourier").save_config(folder / "score")
    diffusers.UNet2DConditionModel(
        sample_size=4,
        in_channels=4,
        out_channels=4,
        block_out_channels=[16, 32],
        layers_per_block=1,
        down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
        up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"],
        cross_attention_dim=64,
        attention_head_dim=4,
        norm_num_groups=8,
    ).save_config(folder / "ldm")
    return folder


# micro-batches of 8 accumulated two at a time: what a resumed run must also get right
DDPM_ACCUMULATION = ["--gradient_accumulation_steps", "2"]


@pytest.fixture(scope="module")
def ddpm_run(tmp_path_factory, tiny_unet_configs, launch_script):
    """Four DDPM steps at 16 px (two micro-batches each), checkpoints every two: the uninterrupted reference run."""
    output_dir = tmp_path_factory.mktemp("ddpm") / "run"
    result = launch_script(
        "train_ddpm.py",
        "--output_dir",
        output_dir,
        "--model_config_name_or_path",
        tiny_unet_configs / "ddpm",
        "--resolution",
        "16",
        "--num_train_timesteps",
        "50",
        *TINY_DIFFUSION_RUN,
        *REFERENCE_RUN,
        *DDPM_ACCUMULATION,
    )
    return output_dir, result


def test_the_ddpm_folder_loads_in_diffusers_ddpm_ddim_and_hfgen(ddpm_run):
    output_dir, result = ddpm_run
    for name in ("model_index.json", "unet/diffusion_pytorch_model.safetensors", "scheduler/scheduler_config.json"):
        assert (output_dir / name).is_file(), name
    for name in ("README.md", "samples.png", "metrics.json", "training_args.json"):
        assert (output_dir / name).is_file(), name
    assert f"Hub-ready folder: {output_dir}" in result.stdout
    ddpm = diffusers.DDPMPipeline.from_pretrained(output_dir)
    ddim = diffusers.DDIMPipeline.from_pretrained(output_dir)
    ours = hfgen.DDPMPipeline.from_pretrained(output_dir)
    assert ddpm.scheduler.config.num_train_timesteps == 50
    for pipeline in (ddpm, ddim, ours):
        pipeline.set_progress_bar_config(disable=True)
    expected = ddpm(batch_size=2, num_inference_steps=4, generator=seeded(0), output_type="np").images
    got = ours(batch_size=2, num_inference_steps=4, generator=seeded(0), output_type="np").images
    assert expected.shape == (2, 16, 16, 1) and np.abs(expected - got).max() < 1e-6
    assert ddim(batch_size=2, num_inference_steps=4, output_type="np").images.shape == (2, 16, 16, 1)
    record = json.loads((output_dir / "metrics.json").read_text())
    assert record["step"] == 4 and {"fid", "kid_mean", "precision", "recall"} <= record["metrics"].keys()
    assert record["protocol"]["sampler"] == "DDIM (eta 0), 2 steps" and record["protocol"]["dataset"] == "hfgen/digits"
    card = ModelCard.load(output_dir / "README.md")
    assert "DDIMPipeline.from_pretrained" in card.text and "hfgen.DDPMPipeline.from_pretrained" in card.text
    assert card.data.eval_results and card.data.eval_results[0].dataset_name == "hfgen/digits (test)"
    assert (output_dir / "validation" / "step-000002-samples.png").is_file()


def test_hfgen_evaluate_measures_the_ddpm_folder_as_the_run_did(ddpm_run, tmp_path, capsys):
    output_dir, _ = ddpm_run
    # no data flag: the run's digits, held-out split and DDIM steps, from training_args.json; the averaged weights,
    # which the folder holds
    printed, record = evaluate_saved_copy(output_dir, tmp_path / "ddpm", capsys)
    assert printed["metrics"] == pytest.approx(record["metrics"], **SAME_SAMPLES)
    assert printed["protocol"] == record["protocol"] and printed["protocol"]["sampler"] == "DDIM (eta 0), 2 steps"
    results = {
        result.metric_type: result for result in ModelCard.load(tmp_path / "ddpm" / "README.md").data.eval_results
    }
    assert results["fid"].metric_value == pytest.approx(record["metrics"]["fid"], **SAME_SAMPLES)
    assert results["fid"].dataset_split == record["protocol"]["split"] == "test"


def test_ddpm_resume_continues_exactly_including_the_ema(tmp_path, ddpm_run, tiny_unet_configs, launch_script):
    reference_dir, _ = ddpm_run
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copytree(reference_dir / "checkpoint-2", resumed_dir / "checkpoint-2")
    launch_script(
        "train_ddpm.py",
        "--output_dir",
        resumed_dir,
        "--model_config_name_or_path",
        tiny_unet_configs / "ddpm",
        "--resolution",
        "16",
        "--num_train_timesteps",
        "50",
        *TINY_DIFFUSION_RUN,
        *REFERENCE_RUN,
        *DDPM_ACCUMULATION,
        "--resume_from_checkpoint",
        "latest",
    )
    # the saved UNet is the EMA's average: equal only if the average, the weights and the noise all resumed exactly
    reference = load_file(reference_dir / "unet" / "diffusion_pytorch_model.safetensors")
    resumed = load_file(resumed_dir / "unet" / "diffusion_pytorch_model.safetensors")
    assert reference.keys() == resumed.keys()
    for name in reference:
        torch.testing.assert_close(resumed[name], reference[name], rtol=0, atol=1e-6, msg=name)
    reference_metrics = json.loads((reference_dir / "metrics.json").read_text())["metrics"]
    assert json.loads((resumed_dir / "metrics.json").read_text())["metrics"] == pytest.approx(reference_metrics)


def test_ddpm_continues_from_its_folder_with_other_objectives_and_weighting(tmp_path, ddpm_run, launch_script):
    output_dir, _ = ddpm_run
    continued = tmp_path / "continued"
    launch_script(
        "train_ddpm.py",
        "--output_dir",
        continued,
        "--pretrained_model_name_or_path",
        output_dir,
        "--resolution",
        "16",
        "--prediction_type",
        "v_prediction",
        "--snr_gamma",
        "5",
        "--noise_offset",
        "0.05",
        "--no-use_ema",
        "--gradient_checkpointing",
        "--max_train_steps",
        "2",
        *TINY_DIFFUSION_RUN,
    )
    scheduler = json.loads((continued / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["prediction_type"] == "v_prediction" and scheduler["num_train_timesteps"] == 50
    arguments = json.loads((continued / "training_args.json").read_text())
    assert arguments["snr_gamma"] == 5 and arguments["use_ema"] is False and arguments["gradient_checkpointing"]


@pytest.fixture(scope="module")
def score_run(tmp_path_factory, tiny_unet_configs, launch_script):
    """Two score-matching steps at 16 px with the noise ladder measured on the digits."""
    output_dir = tmp_path_factory.mktemp("score") / "run"
    result = launch_script(
        "train_ddpm.py",
        "--objective",
        "score_ve",
        "--output_dir",
        output_dir,
        "--model_config_name_or_path",
        tiny_unet_configs / "score",
        "--resolution",
        "16",
        "--max_train_steps",
        "2",
        *TINY_DIFFUSION_RUN,
    )
    return output_dir, result


def test_score_ve_trains_a_score_network_with_its_noise_ladder(score_run):
    output_dir, result = score_run
    pipeline = hfgen.ScoreSdePipeline.from_pretrained(output_dir)
    # sigma_max: the largest distance between two 16 px digits in [-1, 1], well above 1 and below the diagonal 32
    assert 5 < pipeline.scheduler.config.sigma_max < 32 and pipeline.scheduler.config.sigma_min == 0.01
    pipeline.set_progress_bar_config(disable=True)
    images = pipeline(batch_size=2, num_inference_steps=3, generator=seeded(0), output_type="pt").images
    assert images.shape == (2, 1, 16, 16) and torch.isfinite(images).all()
    assert "predictor-corrector" in json.loads((output_dir / "metrics.json").read_text())["protocol"]["sampler"]
    assert "ScoreSdePipeline.from_pretrained" in (output_dir / "README.md").read_text()
    assert "fid" in result.stdout
    with pytest.raises(ValueError, match="is a ScoreSdePipeline folder .model_index.json., not a DDPMPipeline one"):
        hfgen.DDPMPipeline.from_pretrained(output_dir)


def test_hfgen_evaluate_measures_the_score_folder_as_the_run_did(score_run, tmp_path, capsys):
    from hfgen.cli import main

    output_dir, _ = score_run
    # predictor-corrector on the folder's noise ladder, the run's noise levels from training_args.json
    printed, record = evaluate_saved_copy(output_dir, tmp_path / "score", capsys)
    assert printed["metrics"] == pytest.approx(record["metrics"], **SAME_SAMPLES)
    assert printed["protocol"] == record["protocol"]
    assert printed["protocol"]["sampler"] == (
        "predictor-corrector (reverse diffusion + 1 Langevin step, snr 0.16), 2 noise levels"
    )
    # on other data: the built-in faces, their own test split
    assert main(["evaluate", str(tmp_path / "score"), "--dataset_name", "hfgen/faces"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["protocol"]["dataset"] == "hfgen/faces" and "diversity_ratio" in printed["metrics"]


def test_wrong_combinations_are_one_line(tmp_path, tiny_unet_configs, tiny_model_configs):
    wrong = tmp_path / "wrong"
    result = run_directly(
        "train_ddpm.py",
        "--output_dir",
        wrong,
        "--model_config_name_or_path",
        tiny_unet_configs / "score",
        "--resolution",
        "16",
    )
    assert_one_line_error(result, "the UNet's time_embedding_type is 'fourier', but --objective ddpm needs positional")
    # the rest without starting a process: the flag checks, and the first-stage check main() runs first
    error = parse_error(
        import_script("train_ddpm.py"), "--output_dir", wrong, "--objective", "score_ve", "--snr_gamma", 5
    )
    assert "--snr_gamma" in error and "DDPM flags" in error
    ldm = import_script("train_ldm.py")
    error = parse_error(ldm, "--output_dir", wrong, "--use_lora")
    assert "--use_lora adapts an existing model" in error and "--pretrained_model_name_or_path" in error
    args = ldm.parse_args(["--output_dir", str(wrong), "--vae_name_or_path", str(tiny_model_configs / "gan")])
    with pytest.raises(ValueError, match="--vae_name_or_path .* holds no hfgen VAEModel, AutoencoderKL or VQModel"):
        ldm.default_color_mode(args)
    assert not wrong.exists()


# --- latent diffusion ---


LDM_TINY = ["--resolution", "16", "--first_stage_steps", "2", "--num_train_timesteps", "50", *TINY_DIFFUSION_RUN]


@pytest.fixture(scope="module")
def ldm_run(tmp_path_factory, tiny_unet_configs, launch_script):
    """Four LDM steps on the digits with a first stage trained for two steps and a text encoder from scratch."""
    output_dir = tmp_path_factory.mktemp("ldm") / "run"
    result = launch_script(
        "train_ldm.py",
        "--output_dir",
        output_dir,
        "--unet_config_name_or_path",
        tiny_unet_configs / "ldm",
        *LDM_TINY,
        *REFERENCE_RUN,
    )
    return output_dir, result


def test_the_ldm_folder_generates_from_prompts(ldm_run):
    output_dir, result = ldm_run
    pipeline = hfgen.LatentDiffusionPipeline.from_pretrained(output_dir)
    pipeline.set_progress_bar_config(disable=True)
    assert isinstance(pipeline.vae, hfgen.VAEModel) and pipeline.vae.config.scaling_factor != 1.0
    output = pipeline(
        prompt="a handwritten digit seven", guidance_scale=3.0, num_inference_steps=3, generator=seeded(0)
    )
    assert len(output.images) == 1 and output.images[0].size == (16, 16) and output.images[0].mode == "L"
    tokens = pipeline.tokenizer.convert_ids_to_tokens(pipeline.tokenizer("a handwritten digit seven").input_ids)
    assert tokens[1:5] == ["a</w>", "handwritten</w>", "digit</w>", "seven</w>"]
    record = json.loads((output_dir / "metrics.json").read_text())
    metrics = record["metrics"]
    assert {"fid", "class_accuracy", "class_accuracy_without_guidance", "fid_without_guidance"} <= metrics.keys()
    assert "guidance scale 3.0" in record["protocol"]["sampler"]
    assert "a handwritten digit" in record["protocol"]["prompts"]
    card = (output_dir / "README.md").read_text()
    assert "LatentDiffusionPipeline.from_pretrained" in card and "prompt accuracy" in card
    assert (output_dir / "first_stage" / "model.safetensors").is_file()


def test_hfgen_evaluate_measures_the_ldm_folder_as_the_run_did(ldm_run, tmp_path, capsys):
    output_dir, _ = ldm_run
    # no data flag: the run's digits, held-out split, prompts, guidance and steps, from training_args.json
    printed, record = evaluate_saved_copy(output_dir, tmp_path / "ldm", capsys)
    assert printed["metrics"] == pytest.approx(record["metrics"], **SAME_SAMPLES)
    assert printed["protocol"] == record["protocol"]
    results = ModelCard.load(tmp_path / "ldm" / "README.md").data.eval_results
    by_name = {result.metric_type: result for result in results}
    assert by_name["fid"].metric_value == pytest.approx(record["metrics"]["fid"], **SAME_SAMPLES)
    assert {"class_accuracy", "fid_without_guidance", "class_accuracy_without_guidance"} <= by_name.keys()
    assert by_name["fid"].dataset_split == record["protocol"]["split"]


def test_ldm_on_two_processes_keeps_the_replicas_and_the_first_stage_in_step(
    tmp_path, tiny_unet_configs, launch_script
):
    output_dir = tmp_path / "two"
    launch_script(
        "train_ldm.py",
        "--output_dir",
        output_dir,
        "--unet_config_name_or_path",
        tiny_unet_configs / "ldm",
        "--max_train_steps",
        "2",
        *LDM_TINY,
        num_processes=2,
    )
    record = json.loads((output_dir / "metrics.json").read_text())
    assert record["num_processes"] == 2 and record["replica_max_abs_difference"] == 0
    facts = json.loads((output_dir / "first_stage" / "first_stage_facts.json").read_text())
    assert facts["resolution"] == 16 and facts["steps"] == 2
    pipeline = hfgen.LatentDiffusionPipeline.from_pretrained(output_dir)
    first_stage = hfgen.VAEModel.from_pretrained(output_dir / "first_stage")
    assert torch.equal(pipeline.vae.encoder.conv_in.weight, first_stage.encoder.conv_in.weight)
    # a rerun in the same folder with another resolution does not reuse that first stage silently
    result = run_directly(
        "train_ldm.py",
        "--output_dir",
        output_dir,
        "--unet_config_name_or_path",
        tiny_unet_configs / "ldm",
        *LDM_TINY,
        "--resolution",
        "32",
    )
    assert_one_line_error(result, "holds a first stage trained with", "use another --output_dir")


def test_ldm_resume_continues_exactly_including_the_ema(tmp_path, ldm_run, tiny_unet_configs, launch_script):
    reference_dir, _ = ldm_run
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copytree(reference_dir / "checkpoint-2", resumed_dir / "checkpoint-2")
    shutil.copytree(reference_dir / "first_stage", resumed_dir / "first_stage")
    launch_script(
        "train_ldm.py",
        "--output_dir",
        resumed_dir,
        "--unet_config_name_or_path",
        tiny_unet_configs / "ldm",
        *LDM_TINY,
        *REFERENCE_RUN,
        "--resume_from_checkpoint",
        "latest",
    )
    for component, name in (("unet", "diffusion_pytorch_model.safetensors"), ("text_encoder", "model.safetensors")):
        reference = load_file(reference_dir / component / name)
        resumed = load_file(resumed_dir / component / name)
        for key in reference:
            torch.testing.assert_close(resumed[key], reference[key], rtol=0, atol=1e-6, msg=key)


def test_ldm_on_a_given_hfgen_vae_with_a_clip_score(tmp_path, tiny_unet_configs, tiny_clip_folder, launch_script):
    torch.manual_seed(0)
    vae = hfgen.VAEModel(
        hfgen.VAEConfig(
            in_channels=1, sample_size=16, block_out_channels=[8, 16, 16], latent_channels=4, norm_num_groups=4
        )
    )
    vae.save_pretrained(tmp_path / "vae")
    output_dir = tmp_path / "ldm"
    launch_script(
        "train_ldm.py",
        "--output_dir",
        output_dir,
        "--vae_name_or_path",
        tmp_path / "vae",
        "--clip_model_name_or_path",
        tiny_clip_folder,
        "--unet_config_name_or_path",
        tiny_unet_configs / "ldm",
        "--max_train_steps",
        "2",
        *LDM_TINY,
    )
    assert not (output_dir / "first_stage").exists()
    metrics = json.loads((output_dir / "metrics.json").read_text())["metrics"]
    assert 0 <= metrics["clip_score"] <= 100
    assert "CLIP score" in (output_dir / "README.md").read_text()
    loaded = hfgen.LatentDiffusionPipeline.from_pretrained(output_dir)
    assert torch.equal(loaded.vae.encoder.conv_in.weight, vae.encoder.conv_in.weight)
    assert loaded.vae.config.scaling_factor != 1.0  # an unscaled VAE is scaled to unit-variance latents


def test_fine_tuning_a_stable_diffusion_folder_fully_and_with_lora(
    tmp_path, tiny_stable_diffusion_folder, launch_script, capsys
):
    from diffusers import StableDiffusionPipeline
    from safetensors import safe_open

    full = tmp_path / "full"
    launch_script(
        "train_ldm.py",
        "--pretrained_model_name_or_path",
        tiny_stable_diffusion_folder,
        "--output_dir",
        full,
        "--max_train_steps",
        "2",
        "--resolution",
        "32",
        *TINY_DIFFUSION_RUN,
    )
    tuned = hfgen.LatentDiffusionPipeline.from_pretrained(full)
    assert type(tuned.vae) is diffusers.AutoencoderKL and tuned.vae.config.in_channels == 3  # RGB from the base
    assert json.loads((full / "training_args.json").read_text())["color_mode"] == "RGB"

    lora = tmp_path / "lora"
    launch_script(
        "train_ldm.py",
        "--pretrained_model_name_or_path",
        tiny_stable_diffusion_folder,
        "--output_dir",
        lora,
        "--use_lora",
        "--lora_rank",
        "2",
        "--learning_rate",
        "0.05",
        "--max_train_steps",
        "2",
        "--resolution",
        "32",
        *TINY_DIFFUSION_RUN,
    )
    assert not (lora / "unet").exists() and (lora / "pytorch_lora_weights.safetensors").is_file()
    with safe_open(lora / "pytorch_lora_weights.safetensors", "pt") as weights:
        keys = list(weights.keys())
    assert keys and all(".lora." in key and key.startswith("unet.") for key in keys)
    base = StableDiffusionPipeline.from_pretrained(tiny_stable_diffusion_folder)
    base.set_progress_bar_config(disable=True)
    arguments = dict(prompt="a handwritten digit two", num_inference_steps=3, output_type="np")
    before = base(**arguments, generator=seeded(0)).images
    base.load_lora_weights(lora)
    after = base(**arguments, generator=seeded(0)).images
    assert np.abs(after - before).max() > 1e-4  # the adapters trained
    card = (lora / "README.md").read_text()
    assert "load_lora_weights" in card and tiny_stable_diffusion_folder in card
    # hfgen evaluate loads the LoRA file on the base its training_args.json names, and measures it as the run did
    printed, record = evaluate_saved_copy(lora, tmp_path / "lora-copy", capsys)
    assert printed["metrics"] == pytest.approx(record["metrics"], **SAME_SAMPLES)
    assert printed["protocol"] == record["protocol"]


@pytest.mark.parametrize("script", ["train_ddpm.py", "train_ldm.py"])
def test_a_hub_token_never_reaches_any_file(tmp_path, script, tiny_unet_configs, launch_script):
    from .test_secrets import FAKE_TOKEN, files_containing

    output_dir = tmp_path / "run"
    config = ["--model_config_name_or_path", tiny_unet_configs / "ddpm", "--resolution", "16"]
    if script == "train_ldm.py":
        config = ["--unet_config_name_or_path", tiny_unet_configs / "ldm", *LDM_TINY[:-2]]  # without --report_to none
    arguments = [*TINY_DIFFUSION_RUN[:-2], "--max_train_steps", "2", "--checkpointing_steps", "1"]
    result = launch_script(
        script, "--output_dir", output_dir, *config, *arguments, "--validation_steps", "1", "--hub_token", FAKE_TOKEN
    )
    written = [os.path.join(root, name) for root, _, names in os.walk(output_dir) for name in names]
    assert any("tfevents" in path for path in written) and any("checkpoint-2" in path for path in written)
    assert files_containing(output_dir, FAKE_TOKEN) == []
    assert FAKE_TOKEN not in result.stdout + result.stderr
    dry = dry_run(script, "--output_dir", tmp_path / "dry", *config, "--hub_token", FAKE_TOKEN)
    assert FAKE_TOKEN not in dry and '"hub_token": "<redacted>"' in dry
    assert not (tmp_path / "dry").exists()


def test_ldm_on_unlabelled_images_trains_an_unconditional_model(tmp_path, tiny_unet_configs, launch_script):
    output_dir = tmp_path / "faces"
    launch_script(
        "train_ldm.py",
        "--dataset_name",
        "hfgen/faces",
        "--color_mode",
        "L",
        "--gradient_checkpointing",
        "--output_dir",
        output_dir,
        "--unet_config_name_or_path",
        tiny_unet_configs / "ldm",
        "--max_train_steps",
        "2",
        *LDM_TINY,
    )
    pipeline = hfgen.LatentDiffusionPipeline.from_pretrained(output_dir)
    pipeline.set_progress_bar_config(disable=True)
    images = pipeline(prompt="", guidance_scale=1.0, num_inference_steps=2, output_type="pt").images
    assert images.shape == (1, 1, 16, 16)
    record = json.loads((output_dir / "metrics.json").read_text())
    assert record["protocol"]["dataset"] == "hfgen/faces" and "class_accuracy" not in record["metrics"]
    assert "prompts" not in record["protocol"] and "Prompt accuracy" not in (output_dir / "README.md").read_text()
