"""train_gan.py and train_stylegan.py run as users run them: `accelerate launch` subprocesses on tiny configs and
the built-in digits."""

import json
import os
import shutil

import pytest
import torch
import transformers
from huggingface_hub import ModelCard
from peft import PeftModel
from PIL import Image
from safetensors.torch import load_file

import hfgen

from .conftest import TINY_RUN, dry_run, evaluate_saved_copy, import_script, parse_error
from .test_train_diffusion import SAME_SAMPLES

COMMON = [*TINY_RUN, "--report_to", "none"]

# The reference runs and their resumed copies share these: 4 steps, checkpoints and validation every 2.
REFERENCE_RUN = ["--max_train_steps", "4", "--checkpointing_steps", "2", "--validation_steps", "2"]
REFERENCE_RUN += ["--checkpoints_total_limit", "5"]
# conditional DCGAN with ADA, EMA and lazy R1
GAN_RUN = [*REFERENCE_RUN, "--augment", "ada", "--r1_gamma", "1", "--r1_interval", "2"]
# conditional StyleGAN 2 with lazy R1 and path length every 2 steps, style mixing, ADA, EMA
STYLEGAN_RUN = [*REFERENCE_RUN, "--r1_interval", "2", "--pl_interval", "2", "--style_mixing_prob", "0.5"]
STYLEGAN_RUN += ["--augment", "ada", "--augment_probability", "0.5"]


@pytest.fixture(scope="module")
def configs(tiny_model_configs):
    """The shared tiny configs (conftest.py): gan/ (a DCGAN), mlp/ and stylegan/ are used here."""
    return tiny_model_configs


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory, configs, launch_script):
    """Conditional DCGAN, 4 steps with ADA, EMA and lazy R1; checkpoints every 2: the uninterrupted reference."""
    output_dir = tmp_path_factory.mktemp("gan") / "run"
    result = launch_script(
        "train_gan.py",
        "--output_dir",
        output_dir,
        "--model_config_name_or_path",
        configs / "gan",
        *COMMON,
        *GAN_RUN,
        "--report_to",
        "tensorboard",
        "--space",
    )
    return output_dir, result


@pytest.fixture(scope="module")
def stylegan_run(tmp_path_factory, configs, launch_script):
    """Conditional StyleGAN 2, 4 steps with lazy R1 and path length every 2 steps, style mixing, DiffAugment, EMA."""
    output_dir = tmp_path_factory.mktemp("stylegan") / "run"
    result = launch_script(
        "train_stylegan.py",
        "--output_dir",
        output_dir,
        "--model_config_name_or_path",
        configs / "stylegan",
        *COMMON,
        *STYLEGAN_RUN,
    )
    return output_dir, result


HUB_FILES = (
    "model_index.json",
    "config.json",
    "model.safetensors",
    "discriminator/config.json",
    "discriminator/model.safetensors",
    "README.md",
    "samples.png",
    "training_args.json",
    "metrics.json",
)


def check_hub_folder(output_dir, result, component):
    for name in HUB_FILES + (f"{component}/model.safetensors",):
        assert (output_dir / name).is_file(), name
    assert f"Hub-ready folder: {output_dir}" in result.stdout
    assert (output_dir / "validation" / "step-000002-samples.png").is_file()
    record = json.loads((output_dir / "metrics.json").read_text())
    metrics = record["metrics"]
    for key in ("fid", "kid_mean", "precision", "recall", "class_accuracy"):
        assert key in metrics
    assert 0 <= metrics["class_accuracy"] <= 1 and metrics["fid"] > 0
    assert set(record["references"]) == {"real_train_vs_evaluation", "train_mean_plus_noise"}
    card = ModelCard.load(output_dir / "README.md")
    reported = {result.metric_type: result.metric_value for result in card.data.eval_results}
    assert reported["class_accuracy"] == pytest.approx(metrics["class_accuracy"])
    assert reported["fid"] == pytest.approx(metrics["fid"])
    assert card.data.library_name == "hfgen"
    return record


def check_evaluate_matches_the_run(output_dir, folder, capsys) -> None:
    """`hfgen evaluate --update_card` on a copy of the run's folder, with no data flag (the run's digits, held-out
    split, seed and sample count, from training_args.json), prints the run's own metrics and protocol and writes the
    metrics into the card's model-index."""
    printed, record = evaluate_saved_copy(output_dir, folder, capsys)
    assert printed["metrics"] == pytest.approx(record["metrics"], **SAME_SAMPLES)
    assert printed["protocol"] == record["protocol"]
    by_name = {result.metric_type: result for result in ModelCard.load(folder / "README.md").data.eval_results}
    for name in ("fid", "class_accuracy"):
        assert by_name[name].metric_value == pytest.approx(record["metrics"][name], **SAME_SAMPLES)
    assert by_name["fid"].dataset_split == record["protocol"]["split"]


def evaluate_adapter_folder(folder, capsys) -> dict:
    """`hfgen evaluate` on a LoRA run's folder (its adapter alone, loaded unmerged on its base): the printed JSON."""
    from hfgen.cli import main

    assert main(["evaluate", str(folder)]) == 0
    return json.loads(capsys.readouterr().out)


def test_push_uploads_the_hub_ready_folder_and_nothing_else(gan_run, monkeypatch):
    """push_folder with huggingface_hub's calls intercepted: what would be uploaded, read with the same filter
    upload_folder applies."""
    import argparse

    import huggingface_hub
    from huggingface_hub.utils import filter_repo_objects

    from hfgen.training.hub import push_folder

    output_dir, _ = gan_run
    calls = {}

    def create_repo(repo_id, exist_ok, token):
        calls["repo"] = (repo_id, token)
        return argparse.Namespace(repo_id=f"someone/{repo_id}")

    def upload_folder(repo_id, folder_path, token, commit_message, ignore_patterns):
        files = [
            os.path.relpath(os.path.join(root, name), folder_path)
            for root, _, names in os.walk(folder_path)
            for name in names
        ]
        calls["upload"] = (repo_id, token, sorted(filter_repo_objects(files, ignore_patterns=ignore_patterns)))

    monkeypatch.setattr(huggingface_hub, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub, "upload_folder", upload_folder)
    token = "hf_FakeTokenForThePushTest456"
    args = argparse.Namespace(output_dir=str(output_dir), hub_model_id=None, hub_token=token, logging_dir="logs")
    assert push_folder(args, "train_gan.py") == "someone/run"
    repo_id, sent_token, uploaded = calls["upload"]
    assert calls["repo"] == ("run", token) and (repo_id, sent_token) == ("someone/run", token)
    expected = set(HUB_FILES) | {"gan/model.safetensors", "training_curves.png", "app.py", "requirements.txt"}
    assert expected <= set(uploaded), sorted(expected - set(uploaded))
    assert not [name for name in uploaded if name.startswith(("checkpoint-", "logs", "validation"))]
    assert not [name for name in uploaded if token.encode() in (output_dir / name).read_bytes()]


def test_gan_run_writes_a_hub_ready_folder_that_loads_three_ways(gan_run):
    output_dir, result = gan_run
    check_hub_folder(output_dir, result, "gan")
    # --space: the folder runs as a Gradio Space of its demo
    assert "build_demo" in (output_dir / "app.py").read_text() and (output_dir / "requirements.txt").exists()
    assert "sdk: gradio" in (output_dir / "README.md").read_text()
    assert (output_dir / "training_curves.png").exists()
    assert any(
        name.startswith("events.out.tfevents") for _, _, files in os.walk(output_dir / "logs") for name in files
    )
    pipeline = hfgen.GANPipeline.from_pretrained(output_dir)
    generator = hfgen.GANGenerator.from_pretrained(output_dir).eval()
    auto = transformers.AutoModel.from_pretrained(output_dir).eval()
    discriminator = hfgen.GANDiscriminator.from_pretrained(output_dir, subfolder="discriminator")
    z, labels = torch.randn(3, 8), torch.tensor([0, 4, 9])
    with torch.no_grad():
        images = generator(z, labels=labels).sample
        assert torch.equal(auto(z, labels=labels).sample, images)
        assert discriminator(images, labels=labels).logits.shape == (3,)
    piped = pipeline(latents=z, class_labels=labels, output_type="pt").images
    assert torch.allclose(piped, (images * 0.5 + 0.5).clamp(0, 1), atol=1e-6)
    # One generator forward in training mode per iteration: the generator step reuses the discriminator step's fakes
    # (batch norm counts the batches it sees; the saved EMA generator copies the counts).
    weights = load_file(output_dir / "model.safetensors")
    assert weights["blocks.0.norm.num_batches_tracked"].item() == 4


def test_hfgen_evaluate_measures_the_gan_folder_as_the_run_did(gan_run, tmp_path, capsys):
    from hfgen.cli import main

    output_dir, _ = gan_run
    check_evaluate_matches_the_run(output_dir, tmp_path / "gan", capsys)
    # on other data: a user's folder of unlabelled images, without a feature extractor, so the diversity ratio alone
    data = tmp_path / "squares"
    data.mkdir()
    for index in range(12):
        image = Image.new("L", (20, 20), 0)
        image.paste(255, (index % 6, index // 2, index % 6 + 8, index // 2 + 8))
        image.save(data / f"square_{index}.png")
    assert main(["evaluate", str(tmp_path / "gan"), "--train_data_dir", str(data)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed["metrics"]) == {"diversity_ratio"} and printed["protocol"]["dataset"] == str(data)


def test_gan_resume_continues_exactly(tmp_path, gan_run, configs, launch_script):
    reference_dir, _ = gan_run
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copytree(reference_dir / "checkpoint-2", resumed_dir / "checkpoint-2")
    (resumed_dir / "checkpoint-4.tmp").mkdir()  # a half-written checkpoint that `latest` must skip
    launch_script(
        "train_gan.py",
        "--output_dir",
        resumed_dir,
        "--model_config_name_or_path",
        configs / "gan",
        *COMMON,
        *GAN_RUN,
        "--resume_from_checkpoint",
        "latest",
    )
    for name in ("model.safetensors", "discriminator/model.safetensors"):  # the EMA generator, and D
        reference, resumed = load_file(reference_dir / name), load_file(resumed_dir / name)
        assert reference.keys() == resumed.keys()
        for key in reference:
            torch.testing.assert_close(resumed[key], reference[key], rtol=0, atol=1e-6, msg=f"{name}: {key}")
    at_step_2 = load_file(reference_dir / "checkpoint-2" / "model.safetensors")
    final_raw = load_file(resumed_dir / "checkpoint-4" / "model.safetensors")
    assert any(not torch.equal(at_step_2[key], final_raw[key]) for key in final_raw)
    # the augmentation state came back too
    state = torch.load(resumed_dir / "checkpoint-4" / "custom_checkpoint_0.pkl", weights_only=True)
    reference_state = torch.load(reference_dir / "checkpoint-4" / "custom_checkpoint_0.pkl", weights_only=True)
    assert state == reference_state and state["steps"] == 4


def test_wgan_gp_mlp_unconditional_with_critic_steps_and_accumulation(tmp_path, configs, launch_script):
    output_dir = tmp_path / "wgan"
    result = launch_script(
        "train_gan.py",
        "--output_dir",
        output_dir,
        "--model_config_name_or_path",
        configs / "mlp",
        *COMMON,
        "--unconditional",
        "--loss",
        "wgan-gp",
        "--d_steps_per_g_step",
        "2",
        "--gradient_accumulation_steps",
        "2",
        "--max_train_steps",
        "2",
        "--ema_decay",
        "0",
        "--no-save_discriminator",
    )
    assert not (output_dir / "discriminator").exists()
    assert "class_accuracy" not in json.loads((output_dir / "metrics.json").read_text())["metrics"]
    generator = hfgen.GANGenerator.from_pretrained(output_dir)
    assert generator.config.architecture == "mlp" and generator.config.num_classes == 0
    assert "wgan-gp" in ModelCard.load(output_dir / "README.md").data.tags
    assert "2 D + 1 G update(s)" in result.stderr


def test_wgan_gp_refuses_a_batch_norm_critic(tmp_path, configs, launch_script):
    result = launch_script(
        "train_gan.py",
        "--output_dir",
        tmp_path / "bad",
        "--model_config_name_or_path",
        configs / "gan",
        *COMMON,
        "--loss",
        "wgan-gp",
        "--max_train_steps",
        "1",
        check=False,
    )
    assert result.returncode != 0
    assert "--loss wgan-gp needs a critic without batch norm" in result.stderr


def test_wgan_gp_refuses_ada_whose_statistic_a_critic_does_not_give():
    error = parse_error(import_script("train_gan.py"), "--loss", "wgan-gp", "--augment", "ada")
    assert "with --loss wgan-gp use --augment diffaugment or none" in error


def test_gan_lora_fine_tunes_on_one_class_and_saves_only_the_adapter(tmp_path, gan_run, launch_script, capsys):
    base_dir, _ = gan_run
    output_dir = tmp_path / "lora"
    launch_script(
        "train_gan.py",
        "--output_dir",
        output_dir,
        "--pretrained_model_name_or_path",
        base_dir,
        *COMMON,
        "--lora_rank",
        "4",
        "--class_filter",
        "7",
        "--max_train_steps",
        "3",
        "--generator_learning_rate",
        "1e-2",
    )
    files = set(os.listdir(output_dir))
    assert {"adapter_model.safetensors", "adapter_config.json", "README.md", "samples.png"} <= files
    assert not {"model.safetensors", "model_index.json", "discriminator"} & files
    assert "lora" in ModelCard.load(output_dir / "README.md").data.tags
    base = hfgen.GANGenerator.from_pretrained(base_dir).eval()
    tuned = PeftModel.from_pretrained(hfgen.GANGenerator.from_pretrained(base_dir), output_dir).eval()
    z, labels = torch.randn(4, 8), torch.full((4,), 7)
    with torch.no_grad():
        assert not torch.allclose(tuned(z, labels=labels).sample, base(z, labels=labels).sample, atol=1e-4)
    # the adapter, unmerged on its base, measured as the run measured it (on the held-out sevens)
    measured = evaluate_adapter_folder(output_dir, capsys)
    record = json.loads((output_dir / "metrics.json").read_text())
    assert measured["metrics"] == pytest.approx(record["metrics"], **SAME_SAMPLES)
    assert measured["protocol"] == record["protocol"]


def test_a_diverging_run_stops_clearly_and_keeps_its_checkpoint(tmp_path, gan_run, configs, launch_script):
    reference_dir, _ = gan_run
    run_dir = tmp_path / "diverging"
    run_dir.mkdir()
    shutil.copytree(reference_dir / "checkpoint-2", run_dir / "checkpoint-2")
    before = load_file(run_dir / "checkpoint-2" / "model.safetensors")
    result = launch_script(
        "train_gan.py",
        "--output_dir",
        run_dir,
        "--model_config_name_or_path",
        configs / "gan",
        *COMMON,
        "--max_train_steps",
        "4",
        "--checkpointing_steps",
        "1",
        "--augment",
        "ada",
        "--resume_from_checkpoint",
        "latest",
        "--loss_limit",
        "1e-9",
        check=False,
    )
    assert result.returncode != 0
    assert "the run diverged" in result.stderr and "last complete checkpoint" in result.stderr
    assert not [name for name in os.listdir(run_dir) if name.startswith("checkpoint-") and name != "checkpoint-2"]
    after = load_file(run_dir / "checkpoint-2" / "model.safetensors")
    assert all(torch.equal(before[key], after[key]) for key in before)


def test_stylegan_run_writes_a_hub_ready_folder_that_loads_three_ways(stylegan_run):
    output_dir, result = stylegan_run
    check_hub_folder(output_dir, result, "stylegan")
    pipeline = hfgen.StyleGANPipeline.from_pretrained(output_dir)
    generator = hfgen.StyleGANGenerator.from_pretrained(output_dir).eval()
    auto = transformers.AutoModel.from_pretrained(output_dir).eval()
    assert isinstance(auto, hfgen.StyleGANGenerator)
    assert generator.mapping.w_avg.abs().sum() > 0  # the tracked average was saved
    z, labels = torch.randn(2, 8), torch.tensor([1, 2])
    with torch.no_grad():
        images = generator(z, labels=labels, noise_mode="const", truncation_psi=0.5).sample
        assert torch.equal(auto(z, labels=labels, noise_mode="const", truncation_psi=0.5).sample, images)
    piped = pipeline(latents=z, class_labels=labels, noise_mode="const", truncation_psi=0.5, output_type="pt").images
    assert torch.allclose(piped, (images * 0.5 + 0.5).clamp(0, 1), atol=1e-6)
    assert "stylegan2" in ModelCard.load(output_dir / "README.md").data.tags


def test_hfgen_evaluate_measures_the_stylegan_folder_as_the_run_did(stylegan_run, tmp_path, capsys):
    output_dir, _ = stylegan_run
    check_evaluate_matches_the_run(output_dir, tmp_path / "stylegan", capsys)


def test_stylegan_resume_continues_exactly(tmp_path, stylegan_run, configs, launch_script):
    reference_dir, _ = stylegan_run
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copytree(reference_dir / "checkpoint-2", resumed_dir / "checkpoint-2")
    launch_script(
        "train_stylegan.py",
        "--output_dir",
        resumed_dir,
        "--model_config_name_or_path",
        configs / "stylegan",
        *COMMON,
        *STYLEGAN_RUN,
        "--resume_from_checkpoint",
        "latest",
    )
    for name in ("model.safetensors", "discriminator/model.safetensors"):
        reference, resumed = load_file(reference_dir / name), load_file(resumed_dir / name)
        for key in reference:
            torch.testing.assert_close(resumed[key], reference[key], rtol=0, atol=1e-6, msg=f"{name}: {key}")


def test_stylegan_two_processes_stay_in_sync_and_write_one_folder(tmp_path, configs, launch_script):
    output_dir = tmp_path / "ddp"
    launch_script(
        "train_stylegan.py",
        "--output_dir",
        output_dir,
        "--model_config_name_or_path",
        configs / "stylegan",
        *COMMON,
        "--max_train_steps",
        "3",
        "--checkpointing_steps",
        "100",
        "--r1_interval",
        "2",
        "--pl_interval",
        "2",
        "--augment",
        "ada",
        num_processes=2,
    )
    record = json.loads((output_dir / "metrics.json").read_text())
    assert record["num_processes"] == 2
    assert record["replica_max_abs_difference"] == 0.0
    assert sorted(p for p in os.listdir(output_dir) if p not in ("logs", "validation")) == sorted(
        [
            "README.md",
            "config.json",
            "discriminator",
            "hfgen_pipeline.py",
            "metrics.json",
            "model.safetensors",
            "model_index.json",
            "samples.png",
            "stylegan",
            "training_args.json",
        ]
    )


def test_stylegan_lora_and_adain_variant(tmp_path, stylegan_run, launch_script, capsys):
    base_dir, _ = stylegan_run
    output_dir = tmp_path / "lora"
    launch_script(
        "train_stylegan.py",
        "--output_dir",
        output_dir,
        "--pretrained_model_name_or_path",
        base_dir,
        *COMMON,
        "--lora_rank",
        "2",
        "--class_filter",
        "3",
        "--max_train_steps",
        "2",
        "--generator_learning_rate",
        "1e-2",
    )
    assert {"adapter_model.safetensors", "adapter_config.json"} <= set(os.listdir(output_dir))
    assert not (output_dir / "model.safetensors").exists()
    base = hfgen.StyleGANGenerator.from_pretrained(base_dir).eval()
    tuned = PeftModel.from_pretrained(hfgen.StyleGANGenerator.from_pretrained(base_dir), output_dir).eval()
    z, labels = torch.randn(2, 8), torch.full((2,), 3)
    with torch.no_grad():
        assert not torch.allclose(
            tuned(z, labels=labels, noise_mode="const").sample,
            base(z, labels=labels, noise_mode="const").sample,
            atol=1e-5,
        )
    measured = evaluate_adapter_folder(output_dir, capsys)
    record = json.loads((output_dir / "metrics.json").read_text())
    assert measured["metrics"] == pytest.approx(record["metrics"], **SAME_SAMPLES)
    assert measured["protocol"] == record["protocol"]


@pytest.mark.parametrize("script", ["train_gan.py", "train_stylegan.py"])
def test_dry_run_prints_config_and_trains_nothing(tmp_path, script):
    extra = (
        ["--style_block", "adain", "--generator_architecture", "plain"]
        if script == "train_stylegan.py"
        else ["--architecture", "mlp"]
    )
    output = dry_run(script, "--output_dir", tmp_path / "dry", *extra)
    printed = json.loads(output[output.index("{") :])
    assert printed["num_classes"] == 10
    if script == "train_stylegan.py":
        assert printed["model_config"]["style_block"] == "adain"
    else:
        assert printed["model_config"]["architecture"] == "mlp"
    assert not (tmp_path / "dry").exists()


def test_wgan_gp_two_processes_with_accumulation_stay_in_sync(tmp_path, configs, launch_script):
    # The gradient penalty's double backward, critic steps, micro-batches and ADA's reduced statistic under DDP.
    output_dir = tmp_path / "ddp"
    launch_script(
        "train_gan.py",
        "--output_dir",
        output_dir,
        "--model_config_name_or_path",
        configs / "mlp",
        *COMMON,
        "--unconditional",
        "--loss",
        "wgan-gp",
        "--d_steps_per_g_step",
        "2",
        "--gradient_accumulation_steps",
        "2",
        "--max_train_steps",
        "3",
        "--augment",
        "diffaugment",
        num_processes=2,
    )
    record = json.loads((output_dir / "metrics.json").read_text())
    assert record["num_processes"] == 2 and record["replica_max_abs_difference"] == 0.0
    assert (output_dir / "model_index.json").is_file() and (
        output_dir / "discriminator" / "model.safetensors"
    ).is_file()


def test_stylegan_regularisers_default_to_the_small_image_setting_up_to_32_px():
    import importlib.util

    from .conftest import script_path

    spec = importlib.util.spec_from_file_location("train_stylegan", script_path("train_stylegan.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    small = script.parse_args(["--output_dir", "unused"])
    assert (small.pl_weight, small.style_mixing_prob) == (0.0, 0.0)
    large = script.parse_args(["--output_dir", "unused", "--resolution", "64"])
    assert (large.pl_weight, large.style_mixing_prob) == (2.0, 0.9)
    chosen = script.parse_args(["--output_dir", "unused", "--pl_weight", "1", "--style_mixing_prob", "0.5"])
    assert (chosen.pl_weight, chosen.style_mixing_prob) == (1.0, 0.5)


def test_stylegan3_two_steps_write_a_folder_that_samples(tmp_path, launch_script):
    # A tiny alias-free (StyleGAN3-T) generator with StyleGAN 2's discriminator, 2 steps on the digits.
    config_dir = tmp_path / "config"
    hfgen.StyleGANConfig(
        resolution=16,
        latent_dim=8,
        w_dim=8,
        mapping_layers=2,
        channel_base=32,
        channel_max=8,
        num_classes=10,
        generator_architecture="alias_free",
        use_noise=False,
        num_synthesis_layers=3,
        margin_size=2,
    ).save_pretrained(config_dir)
    output_dir = tmp_path / "run"
    launch_script(
        "train_stylegan.py",
        "--output_dir",
        output_dir,
        "--model_config_name_or_path",
        config_dir,
        *COMMON,
        "--max_train_steps",
        "2",
    )
    pipeline = hfgen.StyleGANPipeline.from_pretrained(output_dir)
    assert pipeline.stylegan.config.generator_architecture == "alias_free"
    # trained: the magnitude averages moved from 1
    assert all(layer.magnitude_ema.item() != 1.0 for layer in pipeline.stylegan.synthesis.layers)
    images = pipeline(batch_size=2, class_labels=3, generator=torch.Generator().manual_seed(0)).images
    assert images[0].size == (16, 16)
    assert "stylegan3" in ModelCard.load(output_dir / "README.md").data.tags
    assert "fid" in json.loads((output_dir / "metrics.json").read_text())["metrics"]


def test_stylegan3_flags_build_stylegan3s_defaults(tmp_path):
    output = dry_run(
        "train_stylegan.py",
        "--output_dir",
        tmp_path / "dry",
        "--generator_architecture",
        "alias_free",
        "--equivariance",
        "rotation",
        "--resolution",
        "64",
    )
    printed = json.loads(output[output.index("{") :])
    config = printed["model_config"]
    assert (config["generator_architecture"], config["equivariance"], config["use_noise"]) == (
        "alias_free",
        "rotation",
        False,
    )
    assert config["mapping_layers"] == 2 and config["magnitude_ema_beta"] == pytest.approx(0.5 ** (64 / 20000))
    script = import_script("train_stylegan.py")
    args = script.parse_args(
        ["--output_dir", "unused", "--generator_architecture", "alias_free", "--resolution", "64"]
    )
    assert (args.pl_weight, args.style_mixing_prob) == (0.0, 0.0)  # StyleGAN 3 trains without them at any size
