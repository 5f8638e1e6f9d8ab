"""train_vqgan.py run as users run it: `accelerate launch` subprocesses on a tiny VQModel at 16 px on the built-in
digits (EMA codebook, dead-code restarts, the PatchGAN from step 2, then the GPT-2 prior); a run resumed from a
checkpoint; a user's folder with a perceptual model; `hfgen evaluate` on the folder; its one-line errors."""

import json
import shutil

import pytest
import torch
from diffusers import VQModel
from huggingface_hub import ModelCard
from safetensors.torch import load_file
from transformers import GPT2LMHeadModel

import hfgen
from hfgen.models.vqgan import prior_config

from .conftest import SCRIPTS, evaluate_saved_copy, import_script, parse_error
from .test_user_data import face_folder, tiny_backbone  # noqa: F401 (fixtures)

# 4 autoencoder steps (the discriminator from step 2), then 3 prior steps: checkpoints at 2 (adversarial phase), 4
# (the autoencoder's end) and 6 (in the prior's phase)
REFERENCE_RUN = ["--max_train_steps", "4", "--prior_train_steps", "3", "--discriminator_start", "2"]
REFERENCE_RUN += ["--checkpointing_steps", "2", "--validation_steps", "2", "--checkpoints_total_limit", "5"]
REFERENCE_RUN += ["--codebook_ema", "--dead_code_steps", "1", "--report_to", "none"]
RECONSTRUCTION_METRICS = {"psnr", "ssim", "rfid", "codebook_perplexity", "unused_code_share"}
# the same weights and images, measured in another process with other thread counts (see test_train_vae.py)
SAME_SAMPLES = dict(rel=1e-6, abs=1e-5)


@pytest.fixture(scope="module")
def tiny_prior_config(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_prior")
    prior_config(num_codes=16, num_tokens=64, hidden_size=16, num_layers=1, num_heads=2).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def vqgan_run(tmp_path_factory, launch_tiny, tiny_prior_config):
    output_dir = tmp_path_factory.mktemp("vqgan") / "run"
    result = launch_tiny("vqgan", output_dir, "--prior_config_name_or_path", tiny_prior_config, *REFERENCE_RUN)
    return output_dir, result


def test_run_writes_a_hub_ready_folder_diffusers_and_hfgen_load(vqgan_run):
    output_dir, result = vqgan_run
    assert SCRIPTS["vqgan"] == "train_vqgan.py"
    assert f"Hub-ready folder: {output_dir}" in result.stdout
    for name in ("model_index.json", "vqvae/diffusion_pytorch_model.safetensors", "prior/model.safetensors"):
        assert (output_dir / name).is_file(), name
    assert (output_dir / "discriminator" / "model.safetensors").is_file()  # for fine-tuning
    assert (output_dir / "validation" / "step-000002-reconstructions.png").is_file()
    assert {path.name for path in output_dir.glob("checkpoint-*")} == {"checkpoint-2", "checkpoint-4", "checkpoint-6"}
    pipeline = hfgen.VQGANPipeline.from_pretrained(output_dir)
    vqvae = VQModel.from_pretrained(output_dir, subfolder="vqvae")
    prior = GPT2LMHeadModel.from_pretrained(output_dir, subfolder="prior")
    assert isinstance(pipeline.prior, GPT2LMHeadModel) and prior.config.bos_token_id == 16
    assert torch.equal(pipeline.vqvae.quantize.embedding.weight, vqvae.quantize.embedding.weight)
    # scaled for latent diffusion: 1 / the standard deviation of the training images' latents, not diffusers' default
    assert vqvae.config.scaling_factor > 0 and vqvae.config.scaling_factor != pytest.approx(0.18215)
    images = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = vqvae(images * 2 - 1).sample  # diffusers' own encode, quantise, decode
    reconstructed = pipeline.reconstruct(images, output_type="pt").images
    torch.testing.assert_close(reconstructed, (expected * 0.5 + 0.5).clamp(0, 1), rtol=0, atol=1e-5)
    assert pipeline(batch_size=2, generator=torch.Generator().manual_seed(0), output_type="pt").codes.shape == (
        2,
        8,
        8,
    )
    # the EMA codebook moved (it takes no gradient, so only the EMA updates and restarts can have moved it)
    initial = load_file(output_dir / "checkpoint-2" / "model.safetensors")["vqvae.quantize.embedding.weight"]
    assert not torch.equal(initial, vqvae.quantize.embedding.weight)

    record = json.loads((output_dir / "metrics.json").read_text())
    metrics = record["metrics"]
    assert RECONSTRUCTION_METRICS | {"fid", "kid_mean", "precision", "recall", "diversity_ratio"} <= metrics.keys()
    assert 1 <= metrics["codebook_perplexity"] <= 16 and 0 <= metrics["unused_code_share"] < 1
    assert record["step"] == 7 and record["protocol"]["dataset"] == "hfgen/digits"
    card = ModelCard.load(output_dir / "README.md")
    reported = {result.metric_type: result.metric_value for result in card.data.eval_results}
    for name in RECONSTRUCTION_METRICS | {"fid"}:
        assert reported[name] == pytest.approx(metrics[name])
    assert {"vqgan", "codebook-ema"} <= set(card.data.tags)
    text = " ".join(card.text.split())
    assert "codebook updates by exponential moving averages" in text and "GPT-2" in text
    assert "after 7 optimizer steps in all (4 of the autoencoder, then 3 of the prior)" in text
    recorded = json.loads((output_dir / "training_args.json").read_text())
    assert recorded["discriminator_start"] == 2 and recorded["codebook_ema"] is True


@pytest.mark.parametrize("checkpoint", ["checkpoint-2", "checkpoint-6"])
def test_a_resumed_run_ends_with_the_same_weights(checkpoint, vqgan_run, tmp_path, launch_tiny, tiny_prior_config):
    reference, _ = vqgan_run
    output_dir = tmp_path / "resumed"
    output_dir.mkdir()
    # from the middle of the adversarial phase (models, optimizers, EMA statistics, dead-code counters, data order),
    # or of the prior's (its dropout masks too)
    shutil.copytree(reference / checkpoint, output_dir / checkpoint)
    launch_tiny(
        "vqgan",
        output_dir,
        "--prior_config_name_or_path",
        tiny_prior_config,
        *REFERENCE_RUN,
        "--resume_from_checkpoint",
        "latest",
    )
    for name in ("vqvae/diffusion_pytorch_model.safetensors", "prior/model.safetensors"):
        expected, resumed = load_file(reference / name), load_file(output_dir / name)
        assert expected.keys() == resumed.keys()
        for key in expected:
            assert torch.equal(expected[key], resumed[key]), f"{name}: {key}"


def test_hfgen_evaluate_measures_the_saved_folder_as_the_run_did(vqgan_run, tmp_path, capsys):
    output_dir, _ = vqgan_run
    printed, record = evaluate_saved_copy(output_dir, tmp_path / "vqgan", capsys)
    assert printed["metrics"] == pytest.approx(record["metrics"], **SAME_SAMPLES)
    assert printed["protocol"] == record["protocol"]


def test_a_user_folder_with_a_perceptual_model_and_no_prior(tmp_path, face_folder, tiny_backbone, launch_script):  # noqa: F811
    output_dir = tmp_path / "faces"
    launch_script(
        "train_vqgan.py",
        "--output_dir",
        output_dir,
        "--train_data_dir",
        face_folder,
        "--resolution",
        "16",
        "--train_batch_size",
        "8",
        "--max_train_steps",
        "2",
        "--prior_train_steps",
        "0",
        "--perceptual_model",
        tiny_backbone,
        "--metrics_model",
        tiny_backbone,
        "--report_to",
        "none",
    )
    record = json.loads((output_dir / "metrics.json").read_text())
    # measured on the user's held-out images, through the backbone they named; no prior, so no sample metrics
    assert record["protocol"]["dataset"] == str(face_folder) and "held-out" in record["protocol"]["split"]
    assert record["metrics"].keys() >= RECONSTRUCTION_METRICS and "fid" not in record["metrics"]
    recorded = json.loads((output_dir / "training_args.json").read_text())
    assert recorded["perceptual_model"] == str(tiny_backbone)
    pipeline = hfgen.VQGANPipeline.from_pretrained(output_dir)
    assert pipeline.prior is None and pipeline.vqvae.config.in_channels == (1 if recorded["color_mode"] == "L" else 3)
    assert "This folder has no prior" in " ".join(ModelCard.load(output_dir / "README.md").text.split())


def test_user_errors_are_one_line(tmp_path, tiny_model_configs):
    script = import_script("train_vqgan.py")
    assert "--sample_top_k must lie in [1, inf]" in parse_error(script, "--sample_top_k", "0")
    assert "--codebook_ema_decay must lie in (0, 1)" in parse_error(script, "--codebook_ema_decay", "1")
    assert "--resolution must be a multiple of 4" in parse_error(script, "--resolution", "18")
    empty = tmp_path / "empty"
    empty.mkdir()
    args = script.parse_args(["--pretrained_model_name_or_path", str(empty), "--resolution", "16", "--dry_run"])
    args.color_mode = "L"
    with pytest.raises(ValueError, match="--pretrained_model_name_or_path .* holds no VQModel"):
        script.build_vqvae(args)
    args = script.parse_args(["--model_config_name_or_path", str(tiny_model_configs / "vqgan"), "--resolution", "32"])
    args.color_mode = "L"
    with pytest.raises(ValueError, match="sample_size is 16 but --resolution is 32: pass --resolution 16"):
        script.build_vqvae(args)


def test_two_processes_keep_one_codebook(tmp_path, launch_tiny, tiny_prior_config):
    # the EMA statistics are summed over the processes and the restarts drawn alike on each, outside the gradient
    # all-reduce: the replicas (codebook included) must still end identical
    output_dir = tmp_path / "two"
    launch_tiny(
        "vqgan",
        output_dir,
        "--prior_config_name_or_path",
        tiny_prior_config,
        *REFERENCE_RUN[:6],
        "--codebook_ema",
        "--dead_code_steps",
        "1",
        "--report_to",
        "none",
        "--validation_steps",
        "100",
        num_processes=2,
    )
    record = json.loads((output_dir / "metrics.json").read_text())
    assert record["num_processes"] == 2 and record["replica_max_abs_difference"] == 0
