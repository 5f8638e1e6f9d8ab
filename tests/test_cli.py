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

from hfgen import GANConfig, GANDiscriminator, GANGenerator, GANPipeline
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


def test_a_generator_saved_alone_samples_in_its_pipeline(gan_folder, tmp_path, capsys):
    GANPipeline.from_pretrained(gan_folder).gan.save_pretrained(tmp_path / "generator")
    for folder, output in ((gan_folder, "pipeline.png"), (tmp_path / "generator", "alone.png")):
        assert main(["sample", str(folder), "--num_images", "3", "--output", str(tmp_path / output)]) == 0
    assert "3 images from GANPipeline" in capsys.readouterr().out
    assert np.array_equal(
        np.asarray(Image.open(tmp_path / "pipeline.png")), np.asarray(Image.open(tmp_path / "alone.png"))
    )


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
    arguments = ["--dataset_name", "hfgen/digits", "--num_eval_samples", "20"]
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
    discriminator = tmp_path / "discriminator"
    GANDiscriminator(GANConfig(latent_dim=8, image_size=16, generator_channels=4, max_channels=16)).save_pretrained(
        discriminator
    )
    assert "holds a GANDiscriminator, which draws no images from noise" in error("sample", str(discriminator))
    assert "--images: GANPipeline takes no input images" in error("sample", str(gan_folder), "--images", str(tmp_path))
    assert "--dataset_name or --train_data_dir" in error("evaluate", str(gan_folder))
    assert "has no README.md" in error("evaluate", str(model_only), "--dataset_name", "x", "--update_card")
    with pytest.raises(SystemExit):
        main(["sample", str(gan_folder), "--num_images", "0"])
    assert "must be a positive integer" in capsys.readouterr().err


@pytest.fixture(scope="module")
def cyclegan_folder(tmp_path_factory):
    from hfgen import CycleGANConfig, CycleGANGenerator, CycleGANPipeline

    folder = tmp_path_factory.mktemp("cli") / "cyclegan"
    config = CycleGANConfig(in_channels=3, out_channels=3, generator_channels=4, num_residual_blocks=1)
    torch.manual_seed(0)
    CycleGANPipeline(CycleGANGenerator(config).eval(), CycleGANGenerator(config.reversed()).eval()).save_pretrained(
        folder
    )
    return folder


def test_sample_translates_input_images_beside_them(cyclegan_folder, tmp_path, capsys):
    from hfgen import CycleGANPipeline

    photos = tmp_path / "photos"
    photos.mkdir()
    for index, size in enumerate([(18, 17), (16, 16)]):  # the first is cropped to the generator's stride 4: 16 x 16
        array = (np.random.default_rng(index).random((size[1], size[0], 3)) * 255).astype(np.uint8)
        Image.fromarray(array).save(photos / f"{index}.png")
    for direction in ("a_to_b", "b_to_a"):
        output = tmp_path / f"{direction}.png"
        assert (
            main(
                [
                    "sample",
                    str(cyclegan_folder),
                    "--images",
                    str(photos),
                    "--direction",
                    direction,
                    "--output",
                    str(output),
                ]
            )
            == 0
        )
        assert f"2 images and their CycleGANPipeline outputs: {output}" in capsys.readouterr().out
    grid = np.asarray(Image.open(tmp_path / "a_to_b.png").convert("RGB"))
    assert grid.shape == (2 * 16, 2 * 16, 3)  # one row per input: the input, then its translation
    pipeline = CycleGANPipeline.from_pretrained(cyclegan_folder)
    first = Image.open(photos / "0.png").convert("RGB").crop((0, 0, 16, 16))
    assert np.array_equal(grid[:16, :16], np.asarray(first))
    expected = np.asarray(pipeline(first, direction="a_to_b").images[0].convert("RGB")).astype(int)
    assert np.abs(grid[:16, 16:].astype(int) - expected).max() <= 1
    assert not np.array_equal(
        np.asarray(Image.open(tmp_path / "b_to_a.png")), np.asarray(Image.open(tmp_path / "a_to_b.png"))
    )
    (photos / "notes.txt").write_text("not an image")
    assert main(["sample", str(cyclegan_folder), "--images", str(photos)]) == 2
    assert "notes.txt is not a readable image" in capsys.readouterr().err
    assert main(["sample", str(cyclegan_folder)]) == 2
    assert "CycleGANPipeline maps input images: pass --images" in capsys.readouterr().err


def test_sample_segments_input_images_into_the_classes_named(tiny_groupvit_pipeline, tmp_path, capsys):
    tiny_groupvit_pipeline.save_pretrained(tmp_path / "groupvit")
    upload = tmp_path / "canvas.png"
    Image.fromarray((np.random.default_rng(4).random((32, 32, 3)) * 255).astype(np.uint8)).save(upload)
    assert main(["sample", str(tmp_path / "groupvit"), "--images", str(upload)]) == 2
    assert '--class_names (e.g. --class_names "cat, dog")' in capsys.readouterr().err
    output = tmp_path / "labels.png"
    command = ["sample", str(tmp_path / "groupvit"), "--images", str(upload), "--class_names", "one, digit"]
    assert main([*command, "--output", str(output)]) == 0
    expected = tiny_groupvit_pipeline(Image.open(upload).convert("RGB"), ["one", "digit"]).images[0]
    grid = np.asarray(Image.open(output).convert("RGB"))
    assert grid.shape == (32, 64, 3) and np.array_equal(grid[:, 32:], np.asarray(expected.convert("RGB")))


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


def test_a_damaged_or_unreachable_folder_is_one_line(tiny_clip_folder, tmp_path, capsys):
    import shutil

    broken = tmp_path / "clip"
    shutil.copytree(tiny_clip_folder, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    assert main(["evaluate", str(broken), "--dataset_name", "hfgen/digits"]) == 2
    error = capsys.readouterr().err
    assert f"{weights} is truncated or corrupt" in error and error.count("\n") == 1
    assert main(["demo", "someone/not-on-this-machine"]) == 2  # offline: the Hub cannot be read
    error = capsys.readouterr().err
    assert "someone/not-on-this-machine is not a local folder, and no Hub repo of that name" in error
    assert error.count("\n") == 1
