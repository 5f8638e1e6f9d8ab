"""No secret reaches disk: a Hub token given on the command line stays out of every file a run writes (model card,
argument and run records, TensorBoard event files, checkpoints, validation grids)."""

import json
import os

import pytest

from .conftest import TINY_RUN, dry_run

FAKE_TOKEN = "hf_FakeTokenForTheRedactionTest123"


def files_containing(folder, secret: str) -> list[str]:
    found = []
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as file:
                if secret.encode() in file.read():
                    found.append(path)
    return found


@pytest.mark.parametrize("family", ["vae", "gan", "stylegan"])
def test_a_hub_token_never_reaches_any_file(tmp_path, family, launch_tiny):
    output_dir = tmp_path / family
    result = launch_tiny(
        family,
        output_dir,
        "--max_train_steps",
        "2",
        "--checkpointing_steps",
        "1",
        "--validation_steps",
        "1",
        "--num_eval_samples",
        "20",
        "--report_to",
        "tensorboard",
        "--hub_token",
        FAKE_TOKEN,
    )
    written = [os.path.join(root, name) for root, _, names in os.walk(output_dir) for name in names]
    # The run did write what the check reads: card, records, TensorBoard events and a checkpoint.
    assert any(path.endswith("README.md") for path in written)
    assert any("tfevents" in path for path in written)
    assert any("checkpoint-2" in path for path in written)
    assert files_containing(output_dir, FAKE_TOKEN) == []
    assert FAKE_TOKEN not in result.stdout + result.stderr
    recorded = json.loads((output_dir / "training_args.json").read_text())
    assert recorded["hub_token"] == "<redacted>"


def test_dry_run_prints_no_token(tmp_path, tiny_model_configs, capfd):
    output = dry_run(
        "train_gan.py", "--output_dir", tmp_path / "dry", "--model_config_name_or_path", tiny_model_configs / "gan",
        *TINY_RUN, "--hub_token", FAKE_TOKEN,
    )  # fmt: skip
    assert FAKE_TOKEN not in output + capfd.readouterr().err
    assert '"hub_token": "<redacted>"' in output
