"""train_digits_classifier.py run as users run it (one short epoch), and `hfgen evaluate` on the folders it writes, the
one shipped in the package among them."""

import json
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

import hfgen.metrics
from hfgen.cli import main

from .conftest import evaluate_saved_copy


def card_accuracy(folder) -> float:
    (result,) = ModelCard.load(folder / "README.md").data.eval_results
    assert result.metric_type == "accuracy" and result.dataset_split == "test"
    return result.metric_value


def test_hfgen_evaluate_gives_back_the_accuracy_of_the_shipped_classifier(tmp_path, capsys):
    shipped = Path(hfgen.metrics.__file__).parent / "digits_classifier"
    recorded = card_accuracy(shipped)
    # its training_args.json names no data: the script trains and tests on the built-in digits alone
    printed, _ = evaluate_saved_copy(shipped, tmp_path / "classifier", capsys)
    # a count of right answers over the same 360 test images: the same weights give the same count
    assert printed["metrics"] == {"accuracy": recorded}
    assert printed["protocol"]["dataset"] == "hfgen/digits" and printed["protocol"]["split"] == "test"
    assert printed["protocol"]["num_images"] == 360
    assert card_accuracy(tmp_path / "classifier") == recorded


def test_a_short_run_records_what_hfgen_evaluate_gives_back(tmp_path, capsys, launch_script):
    output_dir = tmp_path / "run"
    launch_script(
        "train_digits_classifier.py",
        "--output_dir",
        output_dir,
        "--num_train_epochs",
        "1",
        "--min_test_accuracy",
        "0",
        "--space",
    )
    assert (output_dir / "app.py").exists() and "sdk: gradio" in (output_dir / "README.md").read_text()
    record = json.loads((output_dir / "metrics.json").read_text())
    assert record["metrics"]["accuracy"] == pytest.approx(card_accuracy(output_dir))
    printed, _ = evaluate_saved_copy(output_dir, tmp_path / "classifier", capsys)
    assert printed["metrics"] == record["metrics"] and printed["protocol"] == record["protocol"]
    # on other data: images without labels are refused in one line
    assert main(["evaluate", str(tmp_path / "classifier"), "--dataset_name", "hfgen/faces"]) == 2
    assert "has no labels" in capsys.readouterr().err
