"""The `hfgen` command on tiny saved folders: `sample` (a grid, image i from seed + i), `evaluate` (the scripts'
metrics as JSON, the card's model-index rewritten), the installed entry point, and one-line errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from PIL import Image

from hfgen import GANConfig, GANGenerator, GANPipeline
from hfgen.cli import main


@pytest.fixture(scope="module")
def gan_folder(tmp_path_factory):
    """A tiny class-conditional GAN pipeline folder (16 px, grey), with a card, as train_gan.py leaves one."""
    folder = tmp_path_factory.mktemp("cli") / "gan"
    torch.manual_seed(0)
    config = GANConfig(latent_dim=8, image_size=16, generator_channels=4, max_channels=16, num_classes=10)
    generator = GANGenerator(config).eval()
    with torch.no_grad():
        for parameter in generator.parameters():
            if parameter.ndim > 1:
                parameter.normal_(0.0, 0.2)  # wide enough that different seeds draw visibly different images
    GANPipeline(gan=generator).save_pretrained(folder)
    ModelCard("---\nlibrary_name: hfgen\npipeline_tag: unconditional-image-generation\n---\n# gan\n").save(
        folder / "README.md"
    )
    return folder


def tiles(path, size: int = 16) -> list[np.ndarray]:
    grid = np.asarray(Image.open(path))
    rows, columns = grid.shape[0] // size, grid.shape[1] // size
    return [grid[r * size : (r + 1) * size, c * size : (c + 1) * size] for r in range(rows) for c in range(columns)]


def test_sample_draws_image_i_from_seed_plus_i(gan_folder, tmp_path, capsys):
    assert (
        main(["sample", str(gan_folder), "--num_images", "5", "--seed", "3", "--output", str(tmp_path / "a.png")]) == 0
    )
    assert "5 images from GANPipeline (seeds 3 to 7)" in capsys.readouterr().out
    assert Image.open(tmp_path / "a.png").size == (3 * 16, 2 * 16)  # a square-ish grid, a blank after the last image
    five = tiles(tmp_path / "a.png")
    arguments = ["--num_images", "2", "--seed", "4", "--batch_size", "1", "--columns", "2"]
    assert main(["sample", str(gan_folder), *arguments, "--output", str(tmp_path / "b.png")]) == 0
    two = tiles(tmp_path / "b.png")
    assert np.array_equal(two[0], five[1]) and np.array_equal(two[1], five[2])
    assert not np.array_equal(five[0], five[1])
    # every image of one class
    main(["sample", str(gan_folder), "--num_images", "2", "--class_label", "7", "--output", str(tmp_path / "c.png")])
    pipeline = GANPipeline.from_pretrained(gan_folder)
    expected = pipeline(class_labels=[7], generator=[torch.Generator().manual_seed(1)], output_type="np").images[0]
    assert np.abs(tiles(tmp_path / "c.png")[1][..., 0] / 255 - expected[..., 0]).max() <= 1 / 255 + 1e-6


def test_evaluate_prints_the_scripts_metrics_and_updates_the_card(gan_folder, tmp_path, capsys):
    images = tmp_path / "mine"
    images.mkdir()
    for index in range(12):
        Image.fromarray((np.random.default_rng(index).random((20, 20)) * 255).astype(np.uint8)).save(
            images / f"{index}.png"
        )
    arguments = ["evaluate", str(gan_folder), "--train_data_dir", str(images), "--num_eval_samples", "8"]
    assert main([*arguments, "--update_card"]) == 0
    printed = json.loads(capsys.readouterr().out.split("\nmodel-index")[0])
    # no feature extractor for a user's folder without --metrics_model: the diversity ratio alone, said so
    assert set(printed["metrics"]) == {"diversity_ratio"} and printed["metrics"]["diversity_ratio"] > 0
    assert printed["protocol"]["dataset"] == str(images) and "held-out" in printed["protocol"]["split"]
    results = ModelCard.load(gan_folder / "README.md").data.eval_results
    assert [(result.metric_type, result.dataset_split) for result in results] == [
        ("diversity_ratio", printed["protocol"]["split"])
    ]
    assert results[0].metric_value == pytest.approx(printed["metrics"]["diversity_ratio"])


def test_evaluate_on_the_built_in_digits_reads_them_with_the_digits_classifier(gan_folder, capsys):
    arguments = ["--dataset_name", "hfgen/digits", "--num_eval_samples", "20", "--batch_size", "7"]
    assert main(["evaluate", str(gan_folder), *arguments]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert {"fid", "kid_mean", "precision", "recall", "class_accuracy", "diversity_ratio"} <= set(printed["metrics"])
    assert printed["protocol"]["split"] == "test" and printed["protocol"]["num_fake_samples"] == 20


def test_mistakes_are_one_line_with_exit_code_2(gan_folder, tmp_path, capsys):
    def error(*arguments) -> str:
        assert main(list(arguments)) == 2
        message = capsys.readouterr().err.strip()
        assert "\n" not in message and "Traceback" not in message
        return message

    assert "--prompt: GANPipeline takes no prompt" in error("sample", str(gan_folder), "--prompt", "a cat")
    assert "--truncation_psi: GANPipeline takes no truncation_psi" in error(
        "sample", str(gan_folder), "--truncation_psi", "0.7"
    )
    model_only = tmp_path / "model"
    GANPipeline.from_pretrained(gan_folder).gan.save_pretrained(model_only)
    assert "holds a single model (config.json) and no model_index.json" in error("sample", str(model_only))
    assert "--dataset_name or --train_data_dir" in error("evaluate", str(gan_folder))
    assert "has no README.md" in error("evaluate", str(model_only), "--dataset_name", "x", "--update_card")
    with pytest.raises(SystemExit):
        main(["sample", str(gan_folder), "--num_images", "0"])
    assert "must be a positive integer" in capsys.readouterr().err


def test_the_installed_command_has_help_for_each_sub_command(capsys):
    command = os.path.join(os.path.dirname(sys.executable), "hfgen")
    assert os.path.isfile(command), (
        "pip install -e . installs the `hfgen` console script (pyproject [project.scripts])"
    )
    result = subprocess.run([command, "--help"], capture_output=True, text=True, check=True)
    assert "usage: hfgen" in result.stdout and "sample" in result.stdout and "evaluate" in result.stdout
    for sub_command, flag in (("sample", "--num_images"), ("evaluate", "--update_card")):
        with pytest.raises(SystemExit) as exit_info:
            main([sub_command, "--help"])
        assert exit_info.value.code == 0 and flag in capsys.readouterr().out
