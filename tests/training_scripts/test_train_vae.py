"""train_vae.py run as users run it: `accelerate launch` subprocesses on a tiny config and the built-in digits."""

import json
import os
import shutil

import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import load_file

import hfgen

from .conftest import TINY_RUN, evaluate_saved_copy


@pytest.fixture(scope="module")
def tiny_config_dir(tiny_model_configs):
    """The shared tiny VAE config (conftest.py): 16 px greyscale to a 2 x 8 x 8 latent."""
    return str(tiny_model_configs / "vae")


@pytest.fixture(scope="module")
def run_script(launch_script):
    def run(output_dir, config_dir, *extra, num_processes=1, check=True):
        return launch_script(
            "train_vae.py",
            "--output_dir",
            output_dir,
            "--model_config_name_or_path",
            config_dir,
            *TINY_RUN,
            "--report_to",
            "none",
            *extra,
            num_processes=num_processes,
            check=check,
        )

    return run


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_config_dir, run_script):
    """Four steps, checkpoints every two, validation at step 2: the uninterrupted reference run."""
    output_dir = tmp_path_factory.mktemp("run") / "vae"
    result = run_script(
        output_dir,
        tiny_config_dir,
        "--max_train_steps",
        "4",
        "--checkpointing_steps",
        "2",
        "--validation_steps",
        "2",
        "--checkpoints_total_limit",
        "5",
        "--report_to",
        "tensorboard",
    )
    return output_dir, result


def test_run_writes_a_hub_ready_folder(trained_run):
    output_dir, result = trained_run
    for name in (
        "model_index.json",
        "vae/config.json",
        "vae/model.safetensors",
        "config.json",
        "model.safetensors",
        "README.md",
        "samples.png",
        "training_args.json",
        "metrics.json",
    ):
        assert (output_dir / name).is_file(), name
    assert f"Hub-ready folder: {output_dir}" in result.stdout
    assert '"psnr"' in result.stdout
    assert (output_dir / "validation" / "step-000002-samples.png").is_file()
    assert (output_dir / "validation" / "step-000002-reconstructions.png").is_file()
    assert any(
        name.startswith("events.out.tfevents") for _, _, files in os.walk(output_dir / "logs") for name in files
    )
    training_args = json.loads((output_dir / "training_args.json").read_text())
    assert training_args["max_train_steps"] == 4 and training_args["seed"] == 0


def test_saved_folder_loads_three_ways(trained_run):
    output_dir, _ = trained_run
    import transformers

    vae = hfgen.VAEModel.from_pretrained(output_dir)
    auto = transformers.AutoModel.from_pretrained(output_dir)
    pipeline = hfgen.VAEPipeline.from_pretrained(output_dir)
    images = torch.rand(2, 1, 16, 16) * 2 - 1
    expected = vae(images, sample_posterior=False).sample
    assert isinstance(auto, hfgen.VAEModel)
    torch.testing.assert_close(auto(images, sample_posterior=False).sample, expected)
    torch.testing.assert_close(pipeline.vae(images, sample_posterior=False).sample, expected)
    assert len(pipeline(batch_size=3, generator=torch.Generator().manual_seed(0)).images) == 3


def test_saved_folder_loads_with_diffusers_generic_loader_as_the_card_shows(trained_run):
    from diffusers import DiffusionPipeline

    output_dir, _ = trained_run
    card = (output_dir / "README.md").read_text()
    assert f'DiffusionPipeline.from_pretrained("{output_dir}", trust_remote_code=True)' in card
    generic = DiffusionPipeline.from_pretrained(output_dir, trust_remote_code=True)
    assert isinstance(generic, hfgen.VAEPipeline)
    direct = hfgen.VAEPipeline.from_pretrained(output_dir)
    seeded = {"batch_size": 2, "output_type": "np"}
    np_generic = generic(generator=torch.Generator().manual_seed(0), **seeded).images
    np_direct = direct(generator=torch.Generator().manual_seed(0), **seeded).images
    assert (np_generic == np_direct).all()


def test_metrics_are_measured_and_in_the_card(trained_run):
    output_dir, _ = trained_run
    record = json.loads((output_dir / "metrics.json").read_text())
    metrics = record["metrics"]
    for key in ("psnr", "ssim", "fid", "kid_mean", "precision", "recall", "inception_score_mean"):
        assert key in metrics and metrics[key] == metrics[key], key  # present and not NaN
    assert record["step"] == 4 and record["num_processes"] == 1
    assert set(record["references"]) == {"real_train_vs_evaluation", "train_mean_plus_noise"}
    assert record["protocol"]["num_fake_samples"] == 40
    card = ModelCard.load(output_dir / "README.md")
    assert card.data.library_name == "hfgen"
    card_values = {result.metric_type: result.metric_value for result in card.data.eval_results}
    assert card_values["psnr"] == pytest.approx(metrics["psnr"])
    assert card_values["fid"] == pytest.approx(metrics["fid"])
    assert "fid_real_train_vs_evaluation" in card_values


# How close `hfgen evaluate` comes to the run's own numbers: the same weights, images and samples, but the run computed
# in its own process (OMP_NUM_THREADS=1) and the test in this one with other thread counts, so float32 sums add up in
# another order (about 1e-7 relative), which FID's matrix square root carries into its hundreds (1e-5 absolute).
SAME_SAMPLES = dict(rel=1e-6, abs=1e-5)


def test_hfgen_evaluate_measures_the_saved_folder_as_the_run_did(trained_run, tmp_path, capsys):
    from hfgen.cli import main

    output_dir, _ = trained_run
    folder = tmp_path / "vae"
    # no data flag: the run's digits, held-out split, seed and sample count, from training_args.json
    printed, record = evaluate_saved_copy(output_dir, folder, capsys)
    assert printed["metrics"] == pytest.approx(record["metrics"], **SAME_SAMPLES)
    assert printed["protocol"] == record["protocol"]
    results = {result.metric_type: result for result in ModelCard.load(folder / "README.md").data.eval_results}
    assert results["psnr"].metric_value == pytest.approx(record["metrics"]["psnr"], **SAME_SAMPLES)
    assert results["fid"].dataset_split == record["protocol"]["split"] == "test"
    # on other data: the built-in faces, their own test split
    assert main(["evaluate", str(folder), "--dataset_name", "hfgen/faces"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert {"psnr", "ssim", "reconstruction_mse", "kl_per_image", "diversity_ratio"} <= printed["metrics"].keys()
    assert printed["protocol"]["dataset"] == "hfgen/faces" and printed["protocol"]["split"] == "test"


def test_checkpoints_are_complete_and_capped(tmp_path, tiny_config_dir, run_script):
    output_dir = tmp_path / "capped"
    run_script(
        output_dir,
        tiny_config_dir,
        "--max_train_steps",
        "3",
        "--checkpointing_steps",
        "1",
        "--checkpoints_total_limit",
        "2",
        "--num_eval_samples",
        "10",
    )
    names = sorted(name for name in os.listdir(output_dir) if name.startswith("checkpoint"))
    assert names == ["checkpoint-2", "checkpoint-3"]
    assert os.path.isfile(output_dir / "checkpoint-3" / "model.safetensors")
    assert os.path.isfile(output_dir / "checkpoint-3" / "optimizer.bin")


def test_resume_continues_exactly(tmp_path, trained_run, tiny_config_dir, run_script):
    reference_dir, _ = trained_run
    # A run stopped right after checkpoint 2 leaves exactly this folder; a half-written checkpoint (.tmp) beside it
    # must be ignored by `latest`.
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copytree(reference_dir / "checkpoint-2", resumed_dir / "checkpoint-2")
    (resumed_dir / "checkpoint-4.tmp").mkdir()
    run_script(
        resumed_dir,
        tiny_config_dir,
        "--max_train_steps",
        "4",
        "--checkpointing_steps",
        "2",
        "--validation_steps",
        "2",
        "--checkpoints_total_limit",
        "5",
        "--resume_from_checkpoint",
        "latest",
    )
    reference = load_file(reference_dir / "model.safetensors")
    resumed = load_file(resumed_dir / "model.safetensors")
    assert reference.keys() == resumed.keys()
    for name in reference:
        torch.testing.assert_close(resumed[name], reference[name], rtol=0, atol=1e-6, msg=name)
    # and the resumed run really trained: its weights moved away from checkpoint 2
    at_step_2 = load_file(reference_dir / "checkpoint-2" / "model.safetensors")
    assert any(not torch.equal(at_step_2[name], resumed[name]) for name in resumed)


def test_two_processes_stay_in_sync_and_write_one_folder(tmp_path, tiny_config_dir, run_script):
    output_dir = tmp_path / "ddp"
    run_script(output_dir, tiny_config_dir, "--max_train_steps", "3", "--checkpointing_steps", "100", num_processes=2)
    record = json.loads((output_dir / "metrics.json").read_text())
    assert record["num_processes"] == 2
    assert record["replica_max_abs_difference"] == 0.0
    assert record["step"] == 3
    assert sorted(os.listdir(output_dir)) == sorted(
        [
            "README.md",
            "config.json",
            "hfgen_pipeline.py",
            "metrics.json",
            "model.safetensors",
            "model_index.json",
            "samples.png",
            "training_args.json",
            "vae",
        ]
    )


def test_dry_run_prints_config_and_trains_nothing(tmp_path, tiny_config_dir, run_script):
    output_dir = tmp_path / "dry"
    result = run_script(output_dir, tiny_config_dir, "--dry_run", "--kl_weight", "4")
    printed = json.loads(result.stdout[result.stdout.index("{") :])
    assert printed["args"]["resolution"] == 16
    assert printed["model_config"]["kl_weight"] == 4.0
    assert printed["model_config"]["block_out_channels"] == [8, 16]
    assert not output_dir.exists()


def test_bad_data_fails_before_training(tmp_path, tiny_config_dir, run_script):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_script(
        tmp_path / "out", tiny_config_dir, "--train_data_dir", str(empty), "--color_mode", "L", check=False
    )
    assert result.returncode != 0
    assert "holds no images" in result.stderr and str(empty) in result.stderr
    assert (
        not any(name.startswith("checkpoint") for name in os.listdir(tmp_path / "out"))
        if (tmp_path / "out").exists()
        else True
    )


def test_push_to_hub_offline_keeps_the_saved_folder(tmp_path, tiny_config_dir, run_script):
    output_dir = tmp_path / "push"
    result = run_script(
        output_dir,
        tiny_config_dir,
        "--max_train_steps",
        "1",
        "--num_eval_samples",
        "10",
        "--push_to_hub",
        "--hub_model_id",
        "someone/vae-test",
        check=False,
    )
    # No network here: the push fails, loudly, after the folder is complete.
    assert result.returncode != 0
    assert "offline" in (result.stderr + result.stdout).lower()
    assert (output_dir / "model.safetensors").is_file() and (output_dir / "README.md").is_file()
    assert "someone/vae-test" in (output_dir / "README.md").read_text()
