"""Every script on a user's own folder: metrics on a held-out part of that folder, labelled as that data, with
`--metrics_model` for FID / KID / precision / recall and a one-line note without it."""

import json

import pytest
import torch
from huggingface_hub import ModelCard
from transformers import Dinov2Config, Dinov2Model

from hfgen.data import BUILTIN_FACES, load_image_dataset


@pytest.fixture(scope="module")
def face_folder(tmp_path_factory):
    """30 of the built-in faces written out as a user's folder of PNGs, with no labels."""
    folder = tmp_path_factory.mktemp("my_faces")
    for index, image in enumerate(load_image_dataset(BUILTIN_FACES, resolution=32)["train"]["image"][:30]):
        image.save(folder / f"face_{index:02d}.png")
    return folder


@pytest.fixture(scope="module")
def tiny_backbone(tmp_path_factory):
    """A tiny random DINOv2 saved to a folder: what --metrics_model loads (a real one needs a download)."""
    folder = tmp_path_factory.mktemp("tiny_dinov2")
    torch.manual_seed(0)
    Dinov2Model(
        Dinov2Config(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            image_size=32,
            patch_size=8,
        )
    ).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("family", ["vae", "gan", "stylegan"])
def test_metrics_on_a_user_folder_are_measured_and_labelled_as_that_data(
    tmp_path, family, face_folder, tiny_backbone, launch_tiny
):
    output_dir = tmp_path / family
    result = launch_tiny(
        family,
        output_dir,
        "--train_data_dir",
        face_folder,
        "--max_train_steps",
        "2",
        "--num_eval_samples",
        "16",
        "--validation_split",
        "6",
        "--metrics_model",
        tiny_backbone,
        "--report_to",
        "none",
        "--validation_steps",
        "1",
        unconditional=True,
    )
    record = json.loads((output_dir / "metrics.json").read_text())
    protocol, metrics = record["protocol"], record["metrics"]
    assert protocol["dataset"] == str(face_folder)
    assert protocol["split"].startswith("train[held-out 6 of 30 images")
    assert protocol["num_real_samples"] == 6
    assert str(tiny_backbone) in protocol["feature_extractor"]
    for key in ("fid", "kid_mean", "precision", "recall", "diversity_ratio"):
        assert key in metrics, key
    assert "inception_score_mean" not in metrics  # a backbone gives features, not class logits
    assert "class_accuracy" not in metrics
    if family == "vae":
        assert metrics["psnr"] > 0 and 0 < metrics["ssim"] <= 1
    assert set(record["references"]) == {"real_train_vs_evaluation", "train_mean_plus_noise"}
    assert json.loads((output_dir / "config.json").read_text()).get("num_classes", 0) == 0
    card_text = (output_dir / "README.md").read_text()
    assert "digits" not in card_text.lower()
    card = ModelCard.load(output_dir / "README.md")
    reported = {entry.metric_type: entry for entry in card.data.eval_results}
    assert reported["fid"].metric_value == pytest.approx(metrics["fid"])
    assert reported["fid"].dataset_type == "imagefolder" and reported["fid"].dataset_name.startswith(str(face_folder))
    assert reported["fid"].dataset_split == protocol["split"]
    assert reported["fid"].metric_name == f"FID ({tiny_backbone})"  # never read as an Inception FID
    assert f"metrics ({face_folder}, train[held-out 6 of 30" in result.stdout
    recorded = json.loads((output_dir / "training_args.json").read_text())
    # greyscale images train a greyscale model without --color_mode; 24 training images turn ADA on
    assert recorded["color_mode"] == "L"
    if family != "vae":
        assert recorded["augment"] == "ada" and recorded["augment_probability"] == 0.0


def test_without_an_extractor_the_run_says_so_and_reports_what_it_can(tmp_path, face_folder, launch_tiny):
    output_dir = tmp_path / "vae"
    result = launch_tiny(
        "vae",
        output_dir,
        "--train_data_dir",
        face_folder,
        "--max_train_steps",
        "2",
        "--num_eval_samples",
        "16",
        "--report_to",
        "none",
    )
    record = json.loads((output_dir / "metrics.json").read_text())
    assert {"psnr", "ssim", "diversity_ratio"} <= set(record["metrics"]) and "fid" not in record["metrics"]
    assert "references" not in record
    assert "--metrics_model" in record["protocol"]["distribution_metrics"]
    assert record["protocol"]["split"].startswith("train[held-out 4 of 30 images")  # the default: 10%, at least 4
    assert "pass --metrics_model" in result.stdout
    card = (output_dir / "README.md").read_text()
    assert "pass --metrics_model" in card and "digits" not in card.lower()


def test_the_builtin_faces_train_every_family(tmp_path, launch_tiny):
    output_dir = tmp_path / "faces"
    launch_tiny(
        "stylegan",
        output_dir,
        "--dataset_name",
        BUILTIN_FACES,
        "--max_train_steps",
        "2",
        "--num_eval_samples",
        "16",
        "--report_to",
        "none",
        unconditional=True,
    )
    record = json.loads((output_dir / "metrics.json").read_text())
    assert record["protocol"]["dataset"] == BUILTIN_FACES and record["protocol"]["split"] == "test"
    assert record["protocol"]["num_real_samples"] == 20
