"""train_clip.py run as users run it (`accelerate launch`, a few steps of tiny towers): a CLIP from scratch on the
built-in digits with its zero-shot classifier, exact resume, LoRA on a pretrained CLIP folder with a user's captioned
images, and one-line errors for wrong flags and data."""

import json
import shutil

import pytest
import torch
from peft import PeftModel
from PIL import Image, ImageDraw
from safetensors.torch import load_file
from transformers import AutoModelForImageClassification, CLIPConfig, CLIPModel, CLIPProcessor

import hfgen
from hfgen.models.clip_heads import build_clip_processor

from .conftest import dry_run, evaluate_saved_copy, import_script, parse_error
from .test_secrets import FAKE_TOKEN, files_containing

TINY_SCRATCH_CONFIG = dict(
    text_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2),
    vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, patch_size=4),
    projection_dim=8,
)


@pytest.fixture(scope="module")
def scratch_config(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip-config")
    CLIPConfig(**TINY_SCRATCH_CONFIG).save_pretrained(folder)
    return folder


def scratch_arguments(output_dir, config, *extra):
    return [
        "--output_dir",
        output_dir,
        "--train_from_scratch_config",
        config,
        "--resolution",
        "16",
        "--train_batch_size",
        "16",
        "--max_train_steps",
        "4",
        "--checkpointing_steps",
        "2",
        "--validation_steps",
        "2",
        "--probe_train_images",
        "64",
        *extra,
    ]


@pytest.fixture(scope="module")
def scratch_run(tmp_path_factory, launch_script, scratch_config):
    """Four steps of a tiny CLIP from scratch on the digits, checkpoints every two, a (fake) Hub token given."""
    output_dir = tmp_path_factory.mktemp("clip") / "run"
    result = launch_script(
        "train_clip.py", *scratch_arguments(output_dir, scratch_config, "--hub_token", FAKE_TOKEN, "--space")
    )
    return output_dir, result


def test_scratch_run_saves_clip_its_processor_and_a_zero_shot_classifier(scratch_run):
    output_dir, result = scratch_run
    model = CLIPModel.from_pretrained(output_dir)
    processor = CLIPProcessor.from_pretrained(output_dir)
    assert model.config.vision_config.image_size == 16 and model.config.text_config.vocab_size == len(
        processor.tokenizer
    )
    # the saved processor prepares what the model was trained on: a digit caption is one token per word
    assert len(processor.tokenizer("a handwritten digit seven").input_ids) == 6
    image = Image.new("L", (16, 16), 0)
    inputs = processor(text=["the digit one", "the digit two"], images=image, return_tensors="pt", padding=True)
    assert model(**inputs).logits_per_image.shape == (1, 2)

    classifier = AutoModelForImageClassification.from_pretrained(output_dir / "zero_shot")
    assert isinstance(classifier, hfgen.CLIPZeroShotClassifier)
    assert classifier.config.id2label[7] == "seven"
    with torch.no_grad():
        logits = classifier(inputs["pixel_values"]).logits
    assert logits.shape == (1, 10) and torch.isfinite(logits).all()

    record = json.loads((output_dir / "metrics.json").read_text())
    metrics, baselines = record["metrics"], record["baselines"]
    for name in ("zero_shot_accuracy", "linear_probe_accuracy", "image_to_text_recall@1", "text_to_image_recall@10"):
        assert 0 <= metrics[name] <= 1, name
    assert baselines["zero_shot_accuracy"] == {"chance": 0.1}
    # 40 distinct captions (4 templates x 10 classes), 4 matching each image: chance ranks one first 1 time in 10
    assert abs(baselines["image_to_text_recall@1"]["chance"] - 0.1) < 0.01
    assert record["protocol"]["dataset"] == "hfgen/digits" and record["protocol"]["split"] == "test"
    card = (output_dir / "README.md").read_text()
    assert "zero-shot accuracy" in card and "pipeline_tag: zero-shot-image-classification" in card
    assert 'subfolder="zero_shot"' in card
    assert (output_dir / "app.py").exists() and "sdk: gradio" in card  # --space: the folder runs as a Space
    assert (output_dir / "samples.png").exists()
    assert sorted(path.name for path in (output_dir / "validation").iterdir())[:1] == ["step-000002-retrieval.png"]
    assert not files_containing(output_dir, FAKE_TOKEN)
    assert "Hub-ready folder" in result.stdout and "zero_shot_accuracy" in result.stdout


def test_resuming_from_a_checkpoint_ends_where_the_uninterrupted_run_ends(
    scratch_run, launch_script, scratch_config, tmp_path
):
    output_dir, _ = scratch_run
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(output_dir / "checkpoint-2", resumed / "checkpoint-2")
    launch_script("train_clip.py", *scratch_arguments(resumed, scratch_config, "--resume_from_checkpoint", "latest"))
    expected, actual = load_file(output_dir / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert set(expected) == set(actual)
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    assert (
        json.loads((resumed / "metrics.json").read_text())["metrics"]
        == json.loads((output_dir / "metrics.json").read_text())["metrics"]
    )


def captioned_folder(folder) -> None:
    """A user's folder: 16 drawings of coloured shapes of mixed sizes and formats, each captioned in metadata.jsonl."""
    folder.mkdir()
    lines = []
    for index in range(16):
        colour, shape = ["red", "blue"][index % 2], ["square", "circle"][index // 2 % 2]
        image = Image.new("RGB", (20 + index, 18 + index), "white")
        draw = ImageDraw.Draw(image)
        box = (3, 3, 14 + index // 2, 14 + index // 2)
        (draw.rectangle if shape == "square" else draw.ellipse)(box, fill=colour)
        name = f"shape_{index}.{'png' if index % 3 else 'jpg'}"
        image.save(folder / name)
        lines.append(json.dumps({"file_name": name, "text": f"a {colour} {shape}"}))
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def pretrained_clip(tmp_path_factory):
    """A tiny pretrained CLIP folder (model and processor, 16 px), as users bring one."""
    folder = tmp_path_factory.mktemp("pretrained-clip")
    processor = build_clip_processor(
        ["a red square", "a blue circle", "a photo of"], folder / "vocab", image_size=16, max_length=16
    )
    tokenizer = processor.tokenizer
    config = CLIPConfig(**TINY_SCRATCH_CONFIG)
    config.vision_config.image_size = 16
    for key, value in dict(
        vocab_size=len(tokenizer),
        max_position_embeddings=16,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    ).items():
        setattr(config.text_config, key, value)
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder / "clip")
    processor.save_pretrained(folder / "clip")
    return folder / "clip"


def test_lora_on_a_pretrained_clip_with_a_users_captions(tmp_path, launch_script, pretrained_clip, capsys):
    data = tmp_path / "shapes"
    captioned_folder(data)
    output_dir = tmp_path / "lora"
    launch_script(
        "train_clip.py",
        "--model_name_or_path",
        pretrained_clip,
        "--use_lora",
        "--lora_rank",
        "2",
        "--train_data_dir",
        data,
        "--caption_column",
        "text",
        "--output_dir",
        output_dir,
        "--train_batch_size",
        "4",
        "--max_train_steps",
        "3",
        "--validation_steps",
        "3",
    )
    files = {path.name for path in output_dir.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "README.md"} <= files
    assert "model.safetensors" not in files and "zero_shot" not in files
    adapter = load_file(output_dir / "adapter_model.safetensors")
    assert adapter and all("lora_" in name for name in adapter)
    assert {name.split(".")[-2] for name in adapter} >= {"lora_A", "lora_B"}
    # the adapter loads on the base model and changes it
    base = CLIPModel.from_pretrained(pretrained_clip)
    adapted = PeftModel.from_pretrained(CLIPModel.from_pretrained(pretrained_clip), output_dir)
    pixels = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert not torch.allclose(
            base.get_image_features(pixel_values=pixels).pooler_output,
            adapted.get_image_features(pixel_values=pixels).pooler_output,
        )
    record = json.loads((output_dir / "metrics.json").read_text())
    # captions but no classes: retrieval is measured, zero-shot classification is not
    assert "image_to_text_recall@1" in record["metrics"] and "zero_shot_accuracy" not in record["metrics"]
    assert record["protocol"]["dataset"] == str(data)
    assert "the held-out images' own 'text' captions" in record["protocol"]["captions"]
    card = (output_dir / "README.md").read_text()
    assert f'PeftModel.from_pretrained(CLIPModel.from_pretrained("{pretrained_clip}")' in card
    # hfgen evaluate loads the adapter onto its base and measures it as the run did
    from hfgen.cli import main

    assert main(["evaluate", str(output_dir)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["metrics"] == pytest.approx(record["metrics"], abs=1e-4)


def test_hfgen_evaluate_measures_the_saved_folder_as_the_run_did(scratch_run, tmp_path, capsys):
    from huggingface_hub import ModelCard

    from hfgen.cli import main

    output_dir, _ = scratch_run
    folder = tmp_path / "clip"
    # no data flag: the run's own data, held-out split and settings, from training_args.json
    printed, record = evaluate_saved_copy(output_dir, folder, capsys)
    assert printed["metrics"] == pytest.approx(record["metrics"], abs=1e-5)
    assert printed["baselines"] == record["baselines"] and printed["protocol"] == record["protocol"]
    results = ModelCard.load(folder / "README.md").data.eval_results
    zero_shot = [result for result in results if result.metric_type == "zero_shot_accuracy"]
    assert zero_shot[0].metric_value == pytest.approx(record["metrics"]["zero_shot_accuracy"])
    assert zero_shot[0].dataset_split == "test" and "hfgen/digits" in zero_shot[0].dataset_name
    # on other data: a user's captioned folder, no classes, so retrieval alone
    data = tmp_path / "shapes"
    captioned_folder(data)
    assert main(["evaluate", str(folder), "--train_data_dir", str(data), "--caption_column", "text"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert "image_to_text_recall@1" in printed["metrics"] and "zero_shot_accuracy" not in printed["metrics"]
    assert printed["protocol"]["dataset"] == str(data)


@pytest.fixture(scope="module")
def train_clip():
    return import_script("train_clip.py")


def test_flag_errors_are_one_line(train_clip, tmp_path):
    assert "--use_lora adapts a pretrained model" in parse_error(train_clip, "--use_lora")
    assert "--train_from_scratch_config builds a new model" in parse_error(
        train_clip, "--model_name_or_path", "x", "--train_from_scratch_config", "y"
    )
    assert "exactly one {}" in parse_error(train_clip, "--templates", "a photo")
    assert "--lora_rank" in parse_error(train_clip, "--lora_rank", "0")
    assert "--probe_train_images" in parse_error(train_clip, "--probe_train_images", "0")


def test_default_learning_rates_and_dry_run(train_clip, tmp_path, scratch_config):
    assert train_clip.parse_args([]).learning_rate == 1e-3
    assert train_clip.parse_args(["--model_name_or_path", "x"]).learning_rate == 1e-5
    assert train_clip.parse_args(["--model_name_or_path", "x", "--use_lora"]).learning_rate == 1e-4
    report = json.loads(dry_run("train_clip.py", "--output_dir", tmp_path / "dry", "--resolution", "16"))
    assert report["model_config"]["vision_config"]["image_size"] == 16
    assert report["model_config"]["text_config"]["vocab_size"] > 256  # bytes plus the caption words
    assert report["data"] == {"train": 1437, "test": 360}
    assert not (tmp_path / "dry").exists()  # a dry run writes nothing


def test_data_and_model_errors_are_one_line(tmp_path):
    unlabelled = tmp_path / "unlabelled"
    unlabelled.mkdir()
    for index in range(8):
        Image.new("RGB", (16, 16), (index * 30, 0, 0)).save(unlabelled / f"{index}.png")
    with pytest.raises(ValueError, match="neither class labels nor captions"):
        dry_run("train_clip.py", "--train_data_dir", unlabelled, "--output_dir", tmp_path / "out")
    with pytest.raises(ValueError, match="is not a CLIPConfig folder"):
        dry_run("train_clip.py", "--train_from_scratch_config", tmp_path / "missing", "--output_dir", tmp_path / "o")
    with pytest.raises(ValueError, match="--model_name_or_path .* is not a CLIPModel folder"):
        dry_run("train_clip.py", "--model_name_or_path", unlabelled, "--output_dir", tmp_path / "o")
