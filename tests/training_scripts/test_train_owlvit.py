"""train_owlvit_detection.py run as users run it (`accelerate launch`, a few steps of tiny detectors): an OWL-ViT from
scratch on small built-in canvases, its exact resume, LoRA on a pretrained OWL-ViT folder with a user's boxes, and
`hfgen evaluate` on the saved folders; and, in this process, the flags, the data checks, and the evaluation through
transformers' post-processing."""

import json
import shutil

import pytest
import torch
from peft import PeftModel
from PIL import Image
from safetensors.torch import load_file
from transformers import (
    AutoModelForZeroShotObjectDetection,
    CLIPConfig,
    OwlViTConfig,
    OwlViTForObjectDetection,
    OwlViTProcessor,
)

import hfgen
from hfgen.metrics.detection import box_convert
from hfgen.models.owlvit_heads import build_owl_processor, owl_image_processor
from hfgen.models.owlvit_heads import evaluation as owl_evaluation

from .conftest import dry_run, hfgen_evaluate, import_script, parse_error, shapes_folder
from .test_secrets import FAKE_TOKEN, files_containing

TOWER = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
TINY_SCRATCH_CONFIG = dict(text_config=TOWER, vision_config=dict(TOWER, patch_size=8), projection_dim=16)


@pytest.fixture(scope="module")
def scratch_config(tmp_path_factory):
    folder = tmp_path_factory.mktemp("owlvit-config")
    OwlViTConfig(**TINY_SCRATCH_CONFIG).save_pretrained(folder)
    return folder


def scratch_arguments(output_dir, config, *extra):
    """A tiny OWL-ViT (16 box predictions at 32 px) on 24 + 8 canvases of 32 px, four steps of batch 8."""
    return [
        "--output_dir", output_dir, "--train_from_scratch_config", config, "--resolution", "32",
        "--canvas_size", "32", "--num_train_canvases", "24", "--num_test_canvases", "8", "--train_batch_size", "8",
        "--max_train_steps", "4", "--checkpointing_steps", "2", "--validation_steps", "2",
        "--num_validation_images", "4", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def scratch_run(tmp_path_factory, launch_script, scratch_config):
    """Four steps from scratch, checkpoints every two, a (fake) Hub token given."""
    output_dir = tmp_path_factory.mktemp("owlvit") / "run"
    arguments = scratch_arguments(output_dir, scratch_config, "--hub_token", FAKE_TOKEN, "--space")
    return output_dir, launch_script("train_owlvit_detection.py", *arguments)


def test_scratch_run_saves_a_transformers_detector_that_hfgen_trains_further(scratch_run):
    output_dir, result = scratch_run
    detector = AutoModelForZeroShotObjectDetection.from_pretrained(output_dir)
    processor = OwlViTProcessor.from_pretrained(output_dir)
    assert type(detector) is OwlViTForObjectDetection and detector.config.vision_config.image_size == 32
    assert detector.config.text_config.vocab_size == len(processor.tokenizer)
    # the training queries travel with the detector (the demo starts from them), and the folder runs as a Space
    assert detector.config.id2label[7] == "a photo of the digit seven" and len(detector.config.id2label) == 10
    assert (output_dir / "app.py").exists() and "sdk: gradio" in (output_dir / "README.md").read_text()
    # the saved processor reads the queries it was trained with: one token per word between start and end
    queries = ["a photo of the digit seven", "a photo of the digit one"]
    assert len(processor.tokenizer(queries[0]).input_ids) == 8
    image = Image.new("RGB", (32, 32), 0)
    inputs = processor(text=[queries], images=image, return_tensors="pt")
    with torch.no_grad():
        output = detector(**inputs)
    detections = processor.post_process_grounded_object_detection(output, threshold=0.0, target_sizes=[(32, 32)])
    assert detections[0]["boxes"].shape == (16, 4)
    # hfgen wraps it again, with the loss it was trained with
    model = hfgen.OwlViTForOpenVocabularyDetection.from_owlvit(detector)
    labels = [{"class_labels": torch.tensor([0]), "boxes": torch.tensor([[0.5, 0.5, 0.3, 0.4]])}]
    assert torch.isfinite(model(**inputs, labels=labels).loss)

    record = json.loads((output_dir / "metrics.json").read_text())
    metrics, baselines = record["metrics"], record["baselines"]
    for name in ("map", "map_50", "map_75"):
        assert 0 <= metrics[name] <= 1, name
    assert set(metrics["ap_50_per_class"]) <= {
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
    }
    assert set(baselines["map_50"]) == {"random_boxes", "true_boxes_any_class"}
    # perfect boxes with every class at random scores: about one in ten detections is right, at any IoU
    assert 0.05 < baselines["map"]["true_boxes_any_class"] < 0.5
    assert baselines["map_50"]["random_boxes"] < baselines["map_50"]["true_boxes_any_class"]
    assert record["protocol"]["dataset"] == "hfgen/digit-canvases" and record["protocol"]["split"] == "test"
    assert record["protocol"]["num_images"] == 8
    card = (output_dir / "README.md").read_text()
    assert "mAP@0.5" in card and "pipeline_tag: zero-shot-object-detection" in card
    assert "true_boxes_any_class" in card and "OwlViTForObjectDetection.from_pretrained" in card
    assert (output_dir / "samples.png").exists()
    assert sorted(path.name for path in (output_dir / "validation").iterdir())[:1] == ["step-000002-detections.png"]
    assert any("tfevents" in path.name for path in (output_dir / "logs").rglob("*"))
    assert not files_containing(output_dir, FAKE_TOKEN)
    assert FAKE_TOKEN not in result.stdout + result.stderr
    assert "Hub-ready folder" in result.stdout and "map_50" in result.stdout


def same_metrics(measured: dict, recorded: dict, abs: float) -> bool:
    """Whether two metrics.json `metrics` agree to `abs`, the AP of each class too (pytest.approx reads one level)."""
    per_class = "ap_50_per_class"
    return measured[per_class] == pytest.approx(recorded[per_class], abs=abs) and {
        name: value for name, value in measured.items() if name != per_class
    } == pytest.approx({name: value for name, value in recorded.items() if name != per_class}, abs=abs)


def test_hfgen_evaluate_measures_the_saved_folder_as_the_run_did(scratch_run, tmp_path, capsys):
    from huggingface_hub import ModelCard

    output_dir, _ = scratch_run
    folder = tmp_path / "owlvit"
    shutil.copytree(output_dir, folder)
    # no data flag: the run's own canvases (size and counts from training_args.json), split, seed and queries
    printed = hfgen_evaluate(capsys, folder, "--update_card")
    record = json.loads((output_dir / "metrics.json").read_text())
    assert same_metrics(printed["metrics"], record["metrics"], abs=1e-6)
    assert printed["baselines"] == record["baselines"] and printed["protocol"] == record["protocol"]
    results = ModelCard.load(folder / "README.md").data.eval_results
    map_50 = [result for result in results if result.metric_type == "map_50"]
    assert map_50[0].metric_value == pytest.approx(record["metrics"]["map_50"])
    assert map_50[0].dataset_split == "test" and "hfgen/digit-canvases" in map_50[0].dataset_name
    assert map_50[0].task_type == "zero-shot-object-detection"
    # on other data: a user's folder of COCO boxes, its own classes read with the run's query template
    data = tmp_path / "shapes"
    shapes_folder(data)
    printed = hfgen_evaluate(capsys, folder, "--train_data_dir", data, "--validation_split", "6")
    assert set(printed["metrics"]["ap_50_per_class"]) <= {"circle", "square"}
    assert printed["protocol"]["dataset"] == str(data) and printed["protocol"]["split"].startswith("train[held-out 6")
    assert "'a photo of the digit {}'" in printed["protocol"]["queries"] and "canvases" not in printed["protocol"]
    assert set(printed["baselines"]["map"]) == {"random_boxes", "true_boxes_any_class"}


def test_resuming_from_a_checkpoint_ends_where_the_uninterrupted_run_ends(
    scratch_run, launch_script, scratch_config, tmp_path
):
    output_dir, _ = scratch_run
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(output_dir / "checkpoint-2", resumed / "checkpoint-2")
    arguments = scratch_arguments(resumed, scratch_config, "--resume_from_checkpoint", "latest", "--report_to", "none")
    launch_script("train_owlvit_detection.py", *arguments)
    expected, actual = load_file(output_dir / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert set(expected) == set(actual)
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    assert (
        json.loads((resumed / "metrics.json").read_text())["metrics"]
        == json.loads((output_dir / "metrics.json").read_text())["metrics"]
    )


@pytest.fixture(scope="module")
def pretrained_owlvit(tmp_path_factory):
    """A tiny pretrained OWL-ViT folder (detector and processor, 32 px), as users bring one."""
    folder = tmp_path_factory.mktemp("pretrained-owlvit")
    processor = build_owl_processor(
        ["a photo of a square", "a photo of a circle"], folder / "vocab", image_size=32, max_length=16
    )
    tokenizer = processor.tokenizer
    text = dict(
        TOWER,
        vocab_size=len(tokenizer),
        max_position_embeddings=16,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = OwlViTConfig(text_config=text, vision_config=dict(TOWER, patch_size=8, image_size=32), projection_dim=16)
    torch.manual_seed(0)
    OwlViTForObjectDetection(config).save_pretrained(folder / "owlvit")
    processor.save_pretrained(folder / "owlvit")
    return folder / "owlvit"


def test_lora_on_a_pretrained_owlvit_with_a_users_boxes(tmp_path, launch_script, pretrained_owlvit, capsys):
    data = tmp_path / "shapes"
    shapes_folder(data)
    output_dir = tmp_path / "lora"
    launch_script(
        "train_owlvit_detection.py",
        "--model_name_or_path", pretrained_owlvit, "--use_lora", "--lora_rank", "2", "--train_data_dir", data,
        "--output_dir", output_dir, "--train_batch_size", "4", "--max_train_steps", "3", "--validation_steps", "3",
        "--report_to", "none",
    )  # fmt: skip
    files = {path.name for path in output_dir.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "README.md"} <= files
    assert "model.safetensors" not in files
    adapter = load_file(output_dir / "adapter_model.safetensors")
    assert adapter and all("lora_" in name for name in adapter)
    # the adapter loads onto the base detector alone, and changes it
    base = OwlViTForObjectDetection.from_pretrained(pretrained_owlvit)
    adapted = PeftModel.from_pretrained(OwlViTForObjectDetection.from_pretrained(pretrained_owlvit), output_dir)
    processor = OwlViTProcessor.from_pretrained(output_dir)
    inputs = processor(text=[["a photo of a circle"]], images=Image.new("RGB", (32, 32), "white"), return_tensors="pt")
    with torch.no_grad():
        assert not torch.allclose(base(**inputs).pred_boxes, adapted(**inputs).pred_boxes)
    record = json.loads((output_dir / "metrics.json").read_text())
    assert record["protocol"]["dataset"] == str(data) and record["protocol"]["split"].startswith("train[held-out 4")
    assert set(record["metrics"]["ap_50_per_class"]) <= {"circle", "square"}
    assert "'a photo of a {}'" in record["protocol"]["queries"]
    card = (output_dir / "README.md").read_text()
    assert "PeftModel.from_pretrained" in card and str(pretrained_owlvit) in card
    # hfgen evaluate loads the adapter onto its base (merged) and measures it as the run did, on the run's own data
    printed = hfgen_evaluate(capsys, output_dir)
    assert same_metrics(printed["metrics"], record["metrics"], abs=1e-5)
    assert printed["baselines"] == record["baselines"] and printed["protocol"] == record["protocol"]
    # a folder without a run's record (the pretrained base) is measured on the data given, with the script's default
    # query template for it
    printed = hfgen_evaluate(capsys, pretrained_owlvit, "--train_data_dir", data)
    assert "'a photo of a {}'" in printed["protocol"]["queries"] and printed["protocol"]["num_images"] == 4


@pytest.fixture(scope="module")
def train_owlvit():
    return import_script("train_owlvit_detection.py")


def test_flag_errors_are_one_line(train_owlvit):
    assert "--use_lora adapts a pretrained model" in parse_error(train_owlvit, "--use_lora")
    assert "--train_from_scratch_config builds a new model" in parse_error(
        train_owlvit, "--model_name_or_path", "x", "--train_from_scratch_config", "y"
    )
    assert "--resolution sets a new detector's image size" in parse_error(
        train_owlvit, "--model_name_or_path", "x", "--resolution", "64"
    )
    assert "exactly one {}" in parse_error(train_owlvit, "--query_template", "a photo")
    assert "do not apply to your data" in parse_error(train_owlvit, "--train_data_dir", "x", "--canvas_size", "32")
    assert "--class_names names the classes of your data" in parse_error(train_owlvit, "--class_names", "a", "b")
    assert "--focal_alpha must lie in [0, 1]" in parse_error(train_owlvit, "--focal_alpha", "2")
    assert "--canvas_size must lie in [32, inf]" in parse_error(train_owlvit, "--canvas_size", "16")
    assert "invalid choice: 'softmax'" in parse_error(train_owlvit, "--class_loss", "softmax")
    assert "--lora_rank" in parse_error(train_owlvit, "--lora_rank", "0")


def test_defaults_and_dry_run(train_owlvit, tmp_path):
    args = train_owlvit.parse_args([])
    assert (args.learning_rate, args.resolution, args.canvas_size, args.num_train_canvases) == (1e-3, 64, 64, 8000)
    assert args.query_template == "a photo of the digit {}"
    assert train_owlvit.parse_args(["--train_data_dir", "x"]).query_template == "a photo of a {}"
    assert train_owlvit.parse_args(["--model_name_or_path", "x"]).learning_rate == 1e-5
    assert train_owlvit.parse_args(["--model_name_or_path", "x", "--use_lora"]).learning_rate == 1e-4
    report = json.loads(
        dry_run("train_owlvit_detection.py", "--output_dir", tmp_path / "dry", "--num_train_canvases", 50)
    )
    assert report["data"] == {"train": 50, "evaluation": 200}
    assert report["queries"][7] == "a photo of the digit seven"
    detector = report["model_config"]["detector_config"]
    assert detector["model_type"] == "owlvit" and detector["vision_config"]["image_size"] == 64
    assert detector["text_config"]["vocab_size"] > 256  # bytes plus the query words
    assert report["model_config"]["class_loss"] == "focal"
    assert not (tmp_path / "dry").exists()  # a dry run writes nothing


def test_data_and_model_errors_are_one_line(tmp_path, scratch_config):
    out = tmp_path / "out"
    no_metadata = tmp_path / "no_metadata"
    no_metadata.mkdir()
    Image.new("RGB", (16, 16)).save(no_metadata / "a.png")
    with pytest.raises(ValueError, match="has no metadata.jsonl"):
        dry_run("train_owlvit_detection.py", "--train_data_dir", no_metadata, "--output_dir", out)
    empty = tmp_path / "empty"
    empty.mkdir()
    lines = []
    for index in range(8):
        Image.new("RGB", (16, 16)).save(empty / f"{index}.png")
        lines.append(json.dumps({"file_name": f"{index}.png", "objects": {"bbox": [], "category": []}}))
    (empty / "metadata.jsonl").write_text("\n".join(lines))
    with pytest.raises(ValueError, match="hold no box"):
        dry_run("train_owlvit_detection.py", "--train_data_dir", empty, "--output_dir", out)

    def model_error(*arguments):
        small = ["--canvas_size", "32", "--num_train_canvases", "8", "--num_test_canvases", "4", "--output_dir", out]
        with pytest.raises(ValueError) as error:
            dry_run("train_owlvit_detection.py", *small, *arguments)
        return str(error.value)

    assert "is not an OWL-ViT or OWLv2 folder" in model_error("--model_name_or_path", empty)
    assert "is not an OwlViTConfig or Owlv2Config" in model_error("--train_from_scratch_config", tmp_path / "missing")
    CLIPConfig().save_pretrained(tmp_path / "clip")
    assert "is a 'clip' config, not an OWL-ViT or OWLv2 one" in model_error(
        "--train_from_scratch_config", tmp_path / "clip"
    )
    OwlViTConfig(**{**TINY_SCRATCH_CONFIG, "projection_dim": 8}).save_pretrained(tmp_path / "narrow")
    assert "projection_dim 8 but a text tower of width 16" in model_error(
        "--train_from_scratch_config", tmp_path / "narrow"
    )
    assert "--resolution 36 is not a multiple of the patch size 8" in model_error(
        "--train_from_scratch_config", scratch_config, "--resolution", "36"
    )
    # one 32 px patch on a 32 px canvas: a single box prediction cannot match a canvas of several digits
    one_patch = {**TINY_SCRATCH_CONFIG, "vision_config": dict(TOWER, patch_size=32)}
    OwlViTConfig(**one_patch).save_pretrained(tmp_path / "one")
    assert "more than the detector's 1 box predictions" in model_error(
        "--train_from_scratch_config", tmp_path / "one", "--resolution", "32"
    )


def test_evaluation_reads_transformers_post_processing(train_owlvit, pretrained_owlvit, tmp_path):
    """The metrics of the script are those of the detections a user gets from the processor, and read 1 for a
    perfect detector."""
    shapes_folder(tmp_path / "shapes", count=12)
    args = train_owlvit.parse_args(["--train_data_dir", str(tmp_path / "shapes"), "--output_dir", str(tmp_path)])
    data = train_owlvit.load_detection_data(args)
    assert data.class_names == ["circle", "square"] and len(data.eval) == 4
    detector = OwlViTForObjectDetection.from_pretrained(pretrained_owlvit).eval()
    processor = OwlViTProcessor.from_pretrained(pretrained_owlvit)
    queries = ["a photo of a circle", "a photo of a square"]
    images = list(data.eval["image"])
    detections = owl_evaluation.detect(detector, processor, images, queries, "cpu", batch_size=3)
    # by hand, as a user does it: the processor, the detector, transformers' post-processing
    inputs = processor(text=[queries] * len(images), images=images, return_tensors="pt")
    with torch.no_grad():
        expected = processor.post_process_grounded_object_detection(
            detector(**inputs), threshold=0.0, target_sizes=[(image.height, image.width) for image in images]
        )
    for ours, theirs in zip(detections, expected, strict=True):
        assert len(ours["boxes"]) == 16  # one per patch, fewer than COCO's 100
        order = theirs["scores"].argsort(descending=True)
        assert torch.allclose(ours["boxes"], theirs["boxes"][order], atol=1e-5)
        assert torch.equal(ours["labels"], theirs["labels"][order])
    targets = owl_evaluation.ground_truth(data.eval)
    perfect = [{**target, "scores": torch.ones(len(target["labels"]))} for target in targets]
    assert owl_evaluation.detection_metrics(perfect, targets, data.class_names)["map"] == pytest.approx(1.0)
    metrics = owl_evaluation.detection_metrics(detections, targets, data.class_names)
    assert 0 <= metrics["map"] <= metrics["map_50"] <= 1
    # the grid the card shows: one square picture per image, boxes drawn above the score threshold
    pictures = train_owlvit.detection_grid(data, detections, 2)
    assert [picture.size for picture in pictures] == [(192, 192)] * 2
    reference = owl_evaluation.baselines(data, count=16, seed=0)
    assert reference["map"]["random_boxes"] < reference["map"]["true_boxes_any_class"]
    assert owl_evaluation.baselines(data, count=16, seed=0) == reference  # drawn from the seed alone


def test_canvas_flags_shape_the_built_in_data(train_owlvit, tmp_path):
    args = train_owlvit.parse_args(
        ["--canvas_size", "32", "--num_train_canvases", "5", "--num_test_canvases", "3", "--output_dir", str(tmp_path)]
    )
    data = train_owlvit.load_detection_data(args)
    assert (len(data.train), len(data.eval), data.split) == (5, 3, "test")
    assert data.train[0]["image"].size == (32, 32)


@pytest.mark.parametrize("model_type", ["owlvit", "owlv2"])
def test_box_targets_follow_the_image_processors_geometry(train_owlvit, model_type):
    """A box's target is where its object lands in the processed image: OWL-ViT stretches to a square, OWLv2 pads to
    one (bottom and right) first."""
    image = Image.new("RGB", (64, 32), 0)
    image.paste((255, 255, 255), (16, 8, 48, 24))  # a white box, xyxy pixel edges (16, 8, 48, 24)
    pixels = owl_image_processor(32, model_type)(images=image, return_tensors="pt").pixel_values[0, 0]
    rows, columns = (pixels > pixels.mean()).nonzero(as_tuple=True)
    seen = torch.tensor([columns.min(), rows.min(), columns.max() + 1, rows.max() + 1], dtype=torch.float32) / 32
    target = train_owlvit.box_targets({"bbox": [[16, 8, 48, 24]], "category": [0]}, image.size, model_type == "owlv2")
    assert torch.allclose(box_convert(target["boxes"], "cxcywh", "xyxy")[0], seen, atol=1 / 32)
