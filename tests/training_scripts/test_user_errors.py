"""Ordinary mistakes end in one line that names the flag, file or field and what to do; the script prints no
traceback of its own, exits non-zero, and leaves what an earlier run saved as it was."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from PIL import Image

from hfgen.training import list_checkpoints

from .conftest import REPO, SCRIPTS, TINY_RUN, script_path


def run_directly(script: str, *arguments) -> subprocess.CompletedProcess:
    """The script as a plain Python program (no launcher, whose own traceback would follow the script's message)."""
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    environment.pop("HFGEN_DEBUG", None)
    return subprocess.run(
        [sys.executable, script_path(script), *map(str, arguments)],
        capture_output=True,
        text=True,
        env=environment,
        cwd=REPO,
        timeout=600,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *expected: str) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    last_line = result.stderr.strip().splitlines()[-1]
    assert "error:" in last_line
    for text in expected:
        assert text in last_line, last_line
    return last_line


def folder_fingerprint(folder) -> dict:
    return {
        os.path.relpath(os.path.join(root, name), folder): hashlib.sha256(
            open(os.path.join(root, name), "rb").read()
        ).hexdigest()
        for root, _, names in os.walk(folder)
        for name in names
    }


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, launch_tiny):
    """A complete tiny VAE run, whose folder later mistakes must leave untouched."""
    output_dir = tmp_path_factory.mktemp("finished") / "vae"
    launch_tiny(
        "vae",
        output_dir,
        "--max_train_steps",
        "2",
        "--checkpointing_steps",
        "2",
        "--num_eval_samples",
        "20",
        "--report_to",
        "none",
    )
    return output_dir


@pytest.fixture
def folder_with_a_corrupt_image(tmp_path):
    folder = tmp_path / "my_images"
    folder.mkdir()
    for index in range(6):
        Image.new("RGB", (20, 20), (index * 40, 10, 200)).save(folder / f"good_{index}.png")
    (folder / "broken.png").write_bytes((folder / "good_0.png").read_bytes()[:40])  # a truncated PNG
    return folder


@pytest.mark.parametrize("family", ["vae", "gan", "stylegan"])
def test_a_corrupt_image_is_named_in_one_line_and_nothing_saved_is_lost(
    family, finished_run, folder_with_a_corrupt_image, tiny_model_configs
):
    before = folder_fingerprint(finished_run)
    result = run_directly(
        SCRIPTS[family],
        "--output_dir",
        finished_run,
        "--model_config_name_or_path",
        tiny_model_configs / family,
        *TINY_RUN,
        "--train_data_dir",
        folder_with_a_corrupt_image,
        "--color_mode",
        "L",
        "--unconditional" if family != "vae" else "--random_flip",
    )
    assert_one_line_error(result, "broken.png")
    assert folder_fingerprint(finished_run) == before


def test_dry_run_decodes_every_image(tmp_path, folder_with_a_corrupt_image, tiny_model_configs):
    result = run_directly(
        "train_vae.py",
        "--output_dir",
        tmp_path / "dry",
        "--model_config_name_or_path",
        tiny_model_configs / "vae",
        *TINY_RUN,
        "--train_data_dir",
        folder_with_a_corrupt_image,
        "--dry_run",
    )
    assert_one_line_error(result, "broken.png")


@pytest.mark.parametrize(
    "script,flag,value",
    [
        ("train_vae.py", "--resolution", 7),
        ("train_vae.py", "--resolution", 20),
        ("train_vae.py", "--learning_rate", -1),
        ("train_vae.py", "--adam_beta1", 1.5),
        ("train_gan.py", "--generator_learning_rate", -1),
        ("train_gan.py", "--resolution", 24),
        ("train_stylegan.py", "--discriminator_learning_rate", -0.8),
        ("train_stylegan.py", "--resolution", 12),
        ("train_stylegan.py", "--ema_decay", 1.0),
        ("train_stylegan.py", "--style_mixing_prob", 2),
        ("train_gan.py", "--augment_probability", -0.1),
        ("train_vae.py", "--max_grad_norm", "nan"),
        ("train_ddpm.py", "--snr_gamma", 0),
        ("train_ddpm.py", "--resolution", 30),
        ("train_ddpm.py", "--sigma_max", 0.001),
        ("train_ldm.py", "--cfg_dropout", 1.5),
        ("train_ldm.py", "--guidance_scale", -1),
        ("train_ldm.py", "--lora_rank", 0),
    ],
)
def test_a_bad_flag_value_names_the_flag(tmp_path, script, flag, value):
    result = run_directly(script, "--output_dir", tmp_path / "out", flag, value)
    assert result.returncode == 2
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("usage:") is False and flag in last_line, last_line
    assert not (tmp_path / "out").exists()


# Every script resumes through hfgen.training.runs.resume_run: one family's script checks the message.
@pytest.mark.parametrize("family", ["gan"])
def test_resuming_from_a_folder_without_a_checkpoint_says_what_to_pass(
    tmp_path, family, tiny_model_configs, finished_run
):
    empty = tmp_path / "nothing_here"
    empty.mkdir()
    result = run_directly(
        SCRIPTS[family],
        "--output_dir",
        tmp_path / "out",
        "--model_config_name_or_path",
        tiny_model_configs / family,
        *TINY_RUN,
        "--resume_from_checkpoint",
        empty,
    )
    assert_one_line_error(result, "--resume_from_checkpoint", str(empty), "latest")
    # the finished run's folder holds a checkpoint: the message points at it
    result = run_directly(
        SCRIPTS[family],
        "--output_dir",
        tmp_path / "out",
        "--model_config_name_or_path",
        tiny_model_configs / family,
        *TINY_RUN,
        "--resume_from_checkpoint",
        finished_run,
    )
    assert_one_line_error(result, "checkpoint-2")


def test_resuming_from_another_models_checkpoint_is_one_line(tmp_path, tiny_model_configs, finished_run):
    before = folder_fingerprint(finished_run)
    result = run_directly(
        "train_gan.py",
        "--output_dir",
        tmp_path / "out",
        "--model_config_name_or_path",
        tiny_model_configs / "gan",
        *TINY_RUN,
        "--resume_from_checkpoint",
        finished_run / "checkpoint-2",
    )
    assert_one_line_error(result, "cannot resume from", "checkpoint-2")
    assert folder_fingerprint(finished_run) == before


def test_ctrl_c_says_how_to_resume_and_the_run_continues(tmp_path, tiny_model_configs):
    output_dir = tmp_path / "interrupted"
    run = ["--output_dir", output_dir, "--model_config_name_or_path", tiny_model_configs / "vae", *TINY_RUN]
    run += ["--checkpointing_steps", "2", "--report_to", "none"]
    arguments = [*run, "--max_train_steps", "100000"]  # far more than the test waits for
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    log_path = tmp_path / "stderr.log"  # a file, not a pipe: a full pipe would stall the run while the test waits
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, script_path("train_vae.py"), *map(str, arguments)],
            stderr=log,
            stdout=subprocess.DEVNULL,
            env=environment,
            cwd=REPO,
        )
        deadline = time.monotonic() + 300
        # Older checkpoints are removed as new ones come (--checkpoints_total_limit), so wait for any complete one.
        while not list_checkpoints(output_dir) and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
    stderr = log_path.read_text()
    assert process.returncode == 130, stderr[-2000:]
    last_line = stderr.strip().splitlines()[-1]
    assert "interrupted" in last_line and "--resume_from_checkpoint latest" in last_line
    assert "Traceback" not in stderr
    result = run_directly("train_vae.py", *run, "--max_train_steps", "6", "--resume_from_checkpoint", "latest")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resuming from" in result.stderr and (output_dir / "model.safetensors").is_file()


def test_a_config_with_a_negative_size_names_the_field(tmp_path, tiny_model_configs):
    config = json.loads((tiny_model_configs / "vae" / "config.json").read_text())
    config["latent_channels"] = -2
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text(json.dumps(config))
    result = run_directly(
        "train_vae.py", "--output_dir", tmp_path / "out", "--model_config_name_or_path", tmp_path / "bad", *TINY_RUN
    )
    assert_one_line_error(result, "latent_channels", "-2")


def test_a_truncated_weights_file_and_a_wrong_folder_are_named(tmp_path, finished_run, tiny_model_configs):
    broken = tmp_path / "broken"
    shutil.copytree(finished_run, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    result = run_directly(
        "train_vae.py", "--output_dir", tmp_path / "out", "--pretrained_model_name_or_path", broken, *TINY_RUN
    )
    assert_one_line_error(result, str(weights), "truncated")
    # a VAE folder given to the GAN script is not silently a random GAN
    result = run_directly(
        "train_gan.py", "--output_dir", tmp_path / "out", "--pretrained_model_name_or_path", finished_run, *TINY_RUN
    )
    assert_one_line_error(result, str(finished_run), "hfgen_vae")


@pytest.mark.parametrize(
    "script,default_shown",
    [
        ("train_vae.py", "--learning_rate LEARNING_RATE"),
        ("train_gan.py", "--loss"),
        ("train_stylegan.py", "--pl_weight"),
        ("train_ddpm.py", "--snr_gamma"),
        ("train_ldm.py", "--cfg_dropout"),
    ],
)
def test_help_shows_every_default(script, default_shown):
    result = run_directly(script, "--help")
    assert result.returncode == 0
    assert default_shown in result.stdout
    # every flag shows its default, those without a help text too (argparse alone prints nothing for them)
    help_text = " ".join(result.stdout.split())
    option_lines = [line for line in result.stdout.splitlines() if line.startswith("  --")]
    assert help_text.count("(default:") == len(option_lines) >= 35
    assert "--seed SEED (default: 0)" in help_text


def test_lora_on_transposed_convolutions_names_the_upsampling(tmp_path, tiny_model_configs):
    import hfgen

    config = hfgen.GANConfig.from_pretrained(tiny_model_configs / "gan", generator_upsampling="transposed")
    hfgen.GANGenerator(config).save_pretrained(tmp_path / "paper-dcgan")
    result = run_directly(
        "train_gan.py",
        "--output_dir",
        tmp_path / "out",
        "--pretrained_model_name_or_path",
        tmp_path / "paper-dcgan",
        "--lora_rank",
        "4",
        *TINY_RUN,
    )
    assert_one_line_error(result, "--lora_rank", "transposed convolutions", "--generator_upsampling pixel_shuffle")
