"""train_progan.py run as users run it: `accelerate launch` subprocesses on a tiny config, growing 8 -> 16 px on the
built-in digits; a run resumed in the middle of a fade-in; a user's folder; its one-line errors."""

import json
import os
import shutil

import pytest
import torch
import transformers
from huggingface_hub import ModelCard
from safetensors.torch import load_file

import hfgen
from hfgen.training.progressive import GrowingSchedule

from .conftest import TINY_RUN, dry_run, import_script, parse_error
from .test_secrets import FAKE_TOKEN, files_containing
from .test_train_gan import check_evaluate_matches_the_run, check_hub_folder
from .test_user_data import face_folder, tiny_backbone  # noqa: F401 (fixtures)

COMMON = [*TINY_RUN, "--report_to", "none"]
# 8 px for 1 step, then 16 px fading in over steps 1 and 2 (alpha 0, 0.5), then 16 px: the checkpoint at step 2 is
# taken in the middle of the fade-in.
GROWING = ["--start_resolution", "8", "--stable_steps", "1", "--fade_steps", "2"]
REFERENCE_RUN = [*GROWING, "--max_train_steps", "4", "--checkpointing_steps", "2", "--validation_steps", "2"]
REFERENCE_RUN += ["--checkpoints_total_limit", "5", "--augment", "ada", "--augment_probability", "0.5"]


@pytest.fixture(scope="module")
def progan_config(tmp_path_factory):
    folder = tmp_path_factory.mktemp("progan_config")
    hfgen.ProGANConfig(resolution=16, latent_dim=8, channel_base=64, channel_max=8, num_classes=10).save_pretrained(
        folder
    )
    return folder


@pytest.fixture(scope="module")
def progan_run(tmp_path_factory, progan_config, launch_script):
    """Conditional ProGAN growing 8 -> 16 px in 4 steps, with ADA and EMA; checkpoints every 2: the reference."""
    output_dir = tmp_path_factory.mktemp("progan") / "run"
    result = launch_script(
        "train_progan.py",
        "--output_dir",
        output_dir,
        "--model_config_name_or_path",
        progan_config,
        *COMMON,
        *REFERENCE_RUN,
    )
    return output_dir, result


def test_progan_run_writes_a_hub_ready_folder_that_loads_three_ways(progan_run):
    output_dir, result = progan_run
    record = check_hub_folder(output_dir, result, "gan")
    assert record["step"] == 4
    pipeline = hfgen.ProGANPipeline.from_pretrained(output_dir)
    generator = hfgen.ProGANGenerator.from_pretrained(output_dir).eval()
    auto = transformers.AutoModel.from_pretrained(output_dir).eval()
    discriminator = hfgen.ProGANDiscriminator.from_pretrained(output_dir, subfolder="discriminator").eval()
    z, labels = torch.randn(3, 8), torch.tensor([0, 4, 9])
    with torch.no_grad():
        images = generator(z, labels=labels).sample
        assert images.shape == (3, 1, 16, 16)  # a saved model draws fully grown
        assert torch.equal(auto(z, labels=labels).sample, images)
        assert discriminator(images, labels=labels).logits.shape == (3,)
    piped = pipeline(latents=z, class_labels=labels, output_type="pt").images
    torch.testing.assert_close(piped, (images * 0.5 + 0.5).clamp(0, 1), rtol=0, atol=1e-6)
    card = ModelCard.load(output_dir / "README.md")
    assert {"progan", "non-saturating", "conditional-gan"} <= set(card.data.tags)  # the default loss
    text = " ".join(card.text.split())
    assert "grew the networks from 8x8 to 16x16" in text and "hfgen.ProGANPipeline.from_pretrained" in text
    recorded = json.loads((output_dir / "training_args.json").read_text())
    assert (recorded["start_resolution"], recorded["stable_steps"], recorded["fade_steps"]) == (8, 1, 2)
    # the layers of every stage were trained at their stage: the 8 px RGB output during the 8 px stage and the
    # fade-in, the 16 px blocks from the fade-in on (the EMA generator moved away from its initialisation)
    initial = load_file(output_dir / "checkpoint-2" / "model.safetensors")  # the raw generator at step 2
    final = load_file(output_dir / "checkpoint-4" / "model.safetensors")
    assert not torch.equal(initial["blocks.1.conv1.weight"], final["blocks.1.conv1.weight"])


def test_a_run_resumed_in_the_middle_of_a_fade_in_continues_exactly(
    tmp_path, progan_run, progan_config, launch_script
):
    reference_dir, _ = progan_run
    schedule = GrowingSchedule(start_resolution=8, final_resolution=16, stable_steps=1, fade_steps=2)
    assert schedule.at(2) == (16, 0.5)  # the step the resumed run starts with
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copytree(reference_dir / "checkpoint-2", resumed_dir / "checkpoint-2")
    launch_script(
        "train_progan.py",
        "--output_dir",
        resumed_dir,
        "--model_config_name_or_path",
        progan_config,
        *COMMON,
        *REFERENCE_RUN,
        "--resume_from_checkpoint",
        "latest",
    )
    for name in ("model.safetensors", "discriminator/model.safetensors", "checkpoint-4/model.safetensors"):
        reference, resumed = load_file(reference_dir / name), load_file(resumed_dir / name)
        assert reference.keys() == resumed.keys()
        for key in reference:
            torch.testing.assert_close(resumed[key], reference[key], rtol=0, atol=0, msg=f"{name}: {key}")
    # the augmentation state came back too
    state = torch.load(resumed_dir / "checkpoint-4" / "custom_checkpoint_0.pkl", weights_only=True)
    reference_state = torch.load(reference_dir / "checkpoint-4" / "custom_checkpoint_0.pkl", weights_only=True)
    assert state == reference_state and state["steps"] == 4


def test_hfgen_evaluate_and_sample_use_the_progan_folder(progan_run, tmp_path, capsys):
    from hfgen.cli import main

    output_dir, _ = progan_run
    check_evaluate_matches_the_run(output_dir, tmp_path / "progan", capsys)
    assert main(["sample", str(output_dir), "--num_images", "4", "--output", str(tmp_path / "grid.png")]) == 0
    assert (tmp_path / "grid.png").is_file()
    # the generator saved alone is used in its family's pipeline (hfgen.pipelines.progan.FOLDER_ARCHITECTURES)
    hfgen.ProGANGenerator.from_pretrained(output_dir).save_pretrained(tmp_path / "alone")
    assert main(["sample", str(tmp_path / "alone"), "--num_images", "2", "--output", str(tmp_path / "alone.png")]) == 0
    assert (tmp_path / "alone.png").is_file()


def test_an_unconditional_two_process_run_on_a_user_folder_measures_that_data_and_writes_no_token(
    tmp_path,
    launch_script,
    face_folder,  # noqa: F811 (test_user_data's fixtures)
    tiny_backbone,  # noqa: F811
):
    output_dir = tmp_path / "faces"
    launch_script(
        "train_progan.py",
        "--output_dir",
        output_dir,
        "--train_data_dir",
        face_folder,
        *TINY_RUN,
        "--train_batch_size",
        "8",  # 24 training images: three batches, shared by the two processes
        "--num_eval_samples",
        "16",
        "--validation_split",
        "6",
        "--metrics_model",
        tiny_backbone,
        "--stable_steps",
        "1",
        "--fade_steps",
        "1",
        "--max_train_steps",
        "5",  # 4 -> 8 -> 16 px, fully grown at step 4
        "--checkpointing_steps",
        "5",
        "--report_to",
        "tensorboard",
        "--hub_token",
        FAKE_TOKEN,
        num_processes=2,  # each process uses only its stage's layers: data-parallel training must not wait for others
    )
    record = json.loads((output_dir / "metrics.json").read_text())
    assert record["num_processes"] == 2 and record["replica_max_abs_difference"] == 0.0
    assert record["protocol"]["dataset"] == str(face_folder)
    assert record["protocol"]["split"].startswith("train[held-out 6 of 30 images")
    assert str(tiny_backbone) in record["protocol"]["feature_extractor"]
    assert {"fid", "kid_mean", "precision", "recall", "diversity_ratio"} <= set(record["metrics"])
    assert "class_accuracy" not in record["metrics"]
    assert json.loads((output_dir / "config.json").read_text())["num_classes"] == 0
    assert "digits" not in (output_dir / "README.md").read_text().lower()
    assert files_containing(output_dir, FAKE_TOKEN) == []
    assert any("tfevents" in name for _, _, names in os.walk(output_dir) for name in names)
    assert json.loads((output_dir / "training_args.json").read_text())["hub_token"] == "<redacted>"


def test_bad_flags_are_one_line_errors_naming_the_flag(tmp_path, progan_config):
    script = import_script("train_progan.py")
    assert "--resolution must be a power of two" in parse_error(script, "--resolution", 24)
    assert "--start_resolution 32 is above --resolution 16" in parse_error(script, "--start_resolution", 32)
    assert "--start_resolution must be a power of two" in parse_error(script, "--start_resolution", 6)
    assert "--start_resolution must lie in [4, inf]" in parse_error(script, "--start_resolution", 2)
    assert "--fade_steps must lie in [0, inf]" in parse_error(script, "--fade_steps", -1)
    assert "--stable_steps must lie in [1, inf]" in parse_error(script, "--stable_steps", 0)
    assert "--final_steps must lie in [1, inf]" in parse_error(script, "--final_steps", 0)
    assert "--r1_gamma must lie in [0, inf]" in parse_error(script, "--r1_gamma", -1)
    # ADA reads the sign of D's scores of real images, which a WGAN critic leaves arbitrary
    assert "with --loss wgan-gp use --augment diffaugment or none" in parse_error(
        script, "--loss", "wgan-gp", "--augment", "ada"
    )
    # a run too short to grow to its resolution stops before training, naming the flags to change
    from accelerate.state import AcceleratorState

    args = script.parse_args(
        ["--output_dir", str(tmp_path / "short"), "--model_config_name_or_path", str(progan_config), *COMMON]
        + ["--stable_steps", "2", "--fade_steps", "2", "--max_train_steps", "8"]
    )
    try:
        with pytest.raises(ValueError, match="--max_train_steps 8 ends before the networks have grown from 4 to 16"):
            script.main(args)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    assert not (tmp_path / "short" / "checkpoint-1").exists()


def test_dry_run_prints_the_resolved_schedule_and_trains_nothing(tmp_path):
    output = dry_run("train_progan.py", "--output_dir", tmp_path / "dry", "--dataset_name", "hfgen/faces")
    printed = json.loads(output[output.index("{") :])
    assert printed["num_classes"] == 0
    assert printed["args"]["start_resolution"] == 4 and printed["model_config"]["resolution"] == 16
    assert not (tmp_path / "dry").exists()
