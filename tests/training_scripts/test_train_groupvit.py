"""train_groupvit.py run as users run it (`accelerate launch`, a few steps of tiny GroupViTs): from scratch on small
built-in canvases, its exact resume, LoRA on a pretrained GroupViT folder with a user's boxes, and `hfgen evaluate` on
the saved folders; and, in this process, the flags, the captions and prompts a step reads, the threshold calibration
and the metrics."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers import CLIPProcessor, GroupViTConfig, GroupViTModel

import hfgen
from hfgen.models.clip_heads import build_clip_processor
from hfgen.pipelines.groupvit import evaluation as groupvit_evaluation
from hfgen.training.curves import read_scalars

from .conftest import dry_run, hfgen_evaluate, import_script, parse_error, shapes_folder
from .test_secrets import FAKE_TOKEN, files_containing

TEXT = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
VISION = dict(
    TEXT, depths=[1, 1], num_hidden_layers=2, num_group_tokens=[4, 0], num_output_groups=[4, 2], patch_size=8
)
TINY_CONFIG = dict(text_config=TEXT, vision_config=VISION, projection_dim=16, projection_intermediate_dim=32)


@pytest.fixture(scope="module")
def scratch_config(tmp_path_factory):
    folder = tmp_path_factory.mktemp("groupvit-config")
    GroupViTConfig(**TINY_CONFIG).save_pretrained(folder)
    return folder


def scratch_arguments(output_dir, config, *extra):
    """A tiny GroupViT (16 patches at 32 px grouped into 4) on 24 + 8 canvases of 32 px, four steps of batch 8."""
    return [
        "--output_dir", output_dir, "--train_from_scratch_config", config, "--resolution", "32",
        "--canvas_size", "32", "--num_train_canvases", "24", "--num_test_canvases", "8", "--train_batch_size", "8",
        "--max_train_steps", "4", "--checkpointing_steps", "2", "--validation_steps", "2",
        "--num_validation_images", "4", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def scratch_run(tmp_path_factory, launch_script, scratch_config):
    """Four steps from scratch, checkpoints every two, a (fake) Hub token given."""
    output_dir = tmp_path_factory.mktemp("groupvit") / "run"
    arguments = scratch_arguments(output_dir, scratch_config, "--hub_token", FAKE_TOKEN)
    return output_dir, launch_script("train_groupvit.py", *arguments)


def test_scratch_run_saves_a_segmentation_pipeline(scratch_run):
    output_dir, result = scratch_run
    pipeline = hfgen.GroupViTSegmentationPipeline.from_pretrained(output_dir)
    model = GroupViTModel.from_pretrained(output_dir, subfolder="model")
    assert model.config.vision_config.image_size == 32
    assert model.config.text_config.vocab_size == len(pipeline.tokenizer)
    # the saved tokenizer reads the prompts it was trained with: one token per word between start and end
    assert len(pipeline.tokenizer("the digit seven").input_ids) == 5
    record = json.loads((output_dir / "metrics.json").read_text())
    metrics, baselines = record["metrics"], record["baselines"]
    assert set(metrics) == {
        "mean_iou",
        "pixel_accuracy",
        "foreground_iou",
        "foreground_class_accuracy",
        "grouping_foreground_iou",
        "groups_per_image",
    }
    groups_per_image = metrics.pop("groups_per_image")
    assert all(0 <= value <= 1 for value in metrics.values()) and 1 <= groups_per_image <= 4  # 4 final groups
    assert baselines["foreground_class_accuracy"] == {"chance": 0.1}
    # the calibrated threshold is the folder's, and the metrics are those of the saved pipeline on the test canvases
    threshold = pipeline.config.background_threshold
    assert f"{threshold:.4g}" in record["protocol"]["labels"] and list(pipeline.config.templates) == ["the digit {}"]
    canvases = hfgen.data.load_digit_canvases(32, 24, 8)["test"]
    names = canvases.features["objects"]["category"].feature.names
    output = pipeline(list(canvases["image"]), names, output_type="pt")
    targets = torch.stack([torch.from_numpy(np.asarray(mask, dtype=np.int64)) for mask in canvases["segmentation"]])
    assert hfgen.metrics.mean_iou(output.label_maps, targets, 11)["mean_iou"] == pytest.approx(
        metrics["mean_iou"], abs=1e-6
    )
    grouping = groupvit_evaluation.grouping_metrics(list(output.group_maps), list(targets))
    assert grouping == pytest.approx({**grouping, "groups_per_image": groups_per_image})
    assert grouping["grouping_foreground_iou"] == pytest.approx(metrics["grouping_foreground_iou"])
    # everything background scores the background's IoU alone; the true masks score 1 on the foreground
    assert baselines["foreground_iou"] == {"all_background": 0.0, "true_masks_random_classes": 1.0}
    assert baselines["mean_iou"]["all_background"] < baselines["mean_iou"]["true_masks_random_classes"] < 1
    assert record["protocol"]["dataset"] == "hfgen/digit-canvases" and record["protocol"]["split"] == "test"
    card = (output_dir / "README.md").read_text()
    assert "mIoU" in card and "pipeline_tag: image-segmentation" in card and "true_masks_random_classes" in card
    assert "grouping foreground IoU" in card and "their embeddings do not name them" in card
    assert "GroupViTSegmentationPipeline.from_pretrained" in card
    assert Image.open(output_dir / "samples.png").size[0] >= 6 * 32
    assert sorted(path.name for path in (output_dir / "validation").iterdir())[:1] == ["step-000002-segmentation.png"]
    # TensorBoard's own reader finds every logged scalar at every step; the card shows them drawn
    scalars = read_scalars(str(output_dir / "logs"))
    for tag in ("loss", "caption_loss", "prompt_loss", "patch_loss", "temperature", "lr"):
        assert [step for step, _ in scalars[tag]] == [1, 2, 3, 4], tag
    # the patch classifier (on by default on the canvases) is checkpointed beside the model, and not saved with it
    head = load_file(output_dir / "checkpoint-2" / "model_1.safetensors")
    assert set(head) == {"weight", "bias"} and head["weight"].shape == (11, TEXT["hidden_size"])
    saved = load_file(output_dir / "model" / "model.safetensors")
    assert set(saved) == set(load_file(output_dir / "checkpoint-2" / "model.safetensors"))
    assert [step for step, _ in scalars["eval/mean_iou"]] == [2, 4]
    assert "![training curves](training_curves.png)" in card and (output_dir / "training_curves.png").exists()
    assert not files_containing(output_dir, FAKE_TOKEN)
    assert FAKE_TOKEN not in result.stdout + result.stderr
    assert "Hub-ready folder" in result.stdout and "mean_iou" in result.stdout


def test_hfgen_evaluate_measures_the_saved_folder_as_the_run_did(scratch_run, tmp_path, capsys):
    from huggingface_hub import ModelCard

    output_dir, _ = scratch_run
    folder = tmp_path / "groupvit"
    shutil.copytree(output_dir, folder)
    # no data flag: the run's own canvases (size and counts from training_args.json), split and seed; the folder's
    # prompt template and calibrated threshold
    printed = hfgen_evaluate(capsys, folder, "--update_card")
    record = json.loads((output_dir / "metrics.json").read_text())
    assert printed["metrics"] == pytest.approx(record["metrics"], abs=1e-6)
    assert printed["baselines"] == record["baselines"] and printed["protocol"] == record["protocol"]
    results = ModelCard.load(folder / "README.md").data.eval_results
    mean_iou = [result for result in results if result.metric_type == "mean_iou"]
    assert mean_iou[0].metric_value == pytest.approx(record["metrics"]["mean_iou"])
    assert mean_iou[0].dataset_split == "test" and "hfgen/digit-canvases" in mean_iou[0].dataset_name
    assert mean_iou[0].task_type == "image-segmentation"
    # on other data: a user's folder of COCO boxes (filled in as masks), its own classes
    data = tmp_path / "shapes"
    shapes_folder(data)
    printed = hfgen_evaluate(capsys, folder, "--train_data_dir", data, "--validation_split", "6")
    assert set(printed["metrics"]) == set(record["metrics"])
    assert printed["protocol"]["dataset"] == str(data) and printed["protocol"]["split"].startswith("train[held-out 6")
    assert "boxes filled" in printed["protocol"]["targets"] and "canvases" not in printed["protocol"]
    assert printed["baselines"]["foreground_class_accuracy"] == {"chance": 0.5}
    # a folder without its run's record is measured on the data given, with the script's defaults
    (folder / "training_args.json").unlink()
    assert hfgen_evaluate(capsys, folder, "--train_data_dir", data)["protocol"]["split"].startswith("train[held-out 4")


def test_resuming_from_a_checkpoint_ends_where_the_uninterrupted_run_ends(
    scratch_run, launch_script, scratch_config, tmp_path
):
    output_dir, _ = scratch_run
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(output_dir / "checkpoint-2", resumed / "checkpoint-2")
    arguments = scratch_arguments(resumed, scratch_config, "--resume_from_checkpoint", "latest", "--report_to", "none")
    launch_script("train_groupvit.py", *arguments)
    # --report_to none keeps no log, so the card has no curves
    assert (
        not (resumed / "training_curves.png").exists() and "Training curves" not in (resumed / "README.md").read_text()
    )
    expected = load_file(output_dir / "model" / "model.safetensors")
    actual = load_file(resumed / "model" / "model.safetensors")
    assert set(expected) == set(actual)
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    assert (
        json.loads((resumed / "metrics.json").read_text())["metrics"]
        == json.loads((output_dir / "metrics.json").read_text())["metrics"]
    )


@pytest.fixture(scope="module")
def pretrained_groupvit(tmp_path_factory):
    """A tiny pretrained GroupViT folder (model and CLIP processor, 32 px), as users bring one."""
    folder = tmp_path_factory.mktemp("pretrained-groupvit")
    processor = build_clip_processor(["a photo of a square and a circle"], folder / "vocab", 32, max_length=16)
    tokenizer = processor.tokenizer
    text = dict(
        TEXT,
        vocab_size=len(tokenizer),
        max_position_embeddings=16,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = GroupViTConfig(**{**TINY_CONFIG, "text_config": text, "vision_config": dict(VISION, image_size=32)})
    torch.manual_seed(0)
    GroupViTModel(config).save_pretrained(folder / "groupvit")
    processor.save_pretrained(folder / "groupvit")
    return folder / "groupvit"


def test_lora_on_a_pretrained_groupvit_with_a_users_boxes(tmp_path, launch_script, pretrained_groupvit, capsys):
    data = tmp_path / "shapes"
    shapes_folder(data)
    output_dir = tmp_path / "lora"
    launch_script(
        "train_groupvit.py",
        "--model_name_or_path", pretrained_groupvit, "--use_lora", "--lora_rank", "2", "--train_data_dir", data,
        "--output_dir", output_dir, "--train_batch_size", "4", "--max_train_steps", "3", "--validation_steps", "3",
        "--learning_rate", "1e-2", "--report_to", "none",
    )  # fmt: skip
    # the adapter is merged: the folder holds a whole GroupViT, changed from the base where LoRA reached
    base = load_file(pretrained_groupvit / "model.safetensors")
    tuned = load_file(output_dir / "model" / "model.safetensors")
    assert set(tuned) == set(base)
    changed = {name for name in base if not torch.equal(base[name], tuned[name])}
    assert changed and any("q_proj.weight" in name for name in changed)
    assert not any("embeddings" in name for name in changed)
    pipeline = hfgen.GroupViTSegmentationPipeline.from_pretrained(output_dir)
    image = Image.open(data / "shapes_1.png")
    assert pipeline(image, ["circle", "square"], output_type="np").label_maps.shape == (1, image.height, image.width)
    record = json.loads((output_dir / "metrics.json").read_text())
    assert record["protocol"]["dataset"] == str(data) and record["protocol"]["split"].startswith("train[held-out 4")
    assert "boxes filled" in record["protocol"]["targets"]
    card = (output_dir / "README.md").read_text()
    assert str(pretrained_groupvit) in card and "merged" in card
    # hfgen evaluate measures the merged pipeline as the run measured the adapted model, on the run's own data
    printed = hfgen_evaluate(capsys, output_dir)
    assert printed["metrics"] == pytest.approx(record["metrics"], abs=1e-5)
    assert printed["baselines"] == record["baselines"] and printed["protocol"] == record["protocol"]


@pytest.fixture(scope="module")
def train_groupvit():
    return import_script("train_groupvit.py")


def test_flag_errors_are_one_line(train_groupvit):
    assert "--use_lora adapts a pretrained model" in parse_error(train_groupvit, "--use_lora")
    assert "--resolution sets a new GroupViT's image size" in parse_error(
        train_groupvit, "--model_name_or_path", "x", "--resolution", "64"
    )
    assert "exactly one {}" in parse_error(train_groupvit, "--prompt_template", "a photo")
    assert "do not apply to your data" in parse_error(train_groupvit, "--train_data_dir", "x", "--canvas_size", "32")
    assert "--prompt_loss_weight must lie in [0, inf]" in parse_error(train_groupvit, "--prompt_loss_weight", "-1")
    assert "your data has none" in parse_error(train_groupvit, "--train_data_dir", "x", "--patch_loss_weight", "1")
    assert "--patch_loss_weight must lie in [0, inf]" in parse_error(train_groupvit, "--patch_loss_weight", "-1")


def test_defaults_and_dry_run(train_groupvit, tmp_path):
    args = train_groupvit.parse_args([])
    assert (args.learning_rate, args.resolution, args.canvas_size, args.num_train_canvases) == (1e-3, 64, 64, 8000)
    assert args.prompt_template == "the digit {}"
    assert (args.prompt_pooling, args.patch_loss_weight) == ("max", 1.0)
    assert train_groupvit.parse_args(["--train_data_dir", "x"]).prompt_template == "a photo of a {}"
    assert train_groupvit.parse_args(["--train_data_dir", "x"]).patch_loss_weight == 0.0
    report = json.loads(dry_run("train_groupvit.py", "--output_dir", tmp_path / "dry", "--num_train_canvases", 50))
    assert report["data"] == {"train": 50, "evaluation": 200}
    assert report["prompts"][7] == "the digit seven"
    vision = report["model_config"]["vision_config"]
    assert (vision["image_size"], vision["patch_size"], vision["num_output_groups"]) == (64, 8, [16, 4, 4])
    assert not (tmp_path / "dry").exists()


def test_model_errors_are_one_line(tmp_path):
    small = ["--canvas_size", "32", "--num_train_canvases", "8", "--num_test_canvases", "4", "--output_dir", tmp_path]

    def model_error(*arguments):
        with pytest.raises(ValueError) as error:
            dry_run("train_groupvit.py", *small, *arguments)
        return str(error.value)

    assert "is not a GroupViTModel folder with its processor" in model_error("--model_name_or_path", tmp_path)
    assert "is not a GroupViTConfig folder or config.json" in model_error(
        "--train_from_scratch_config", tmp_path / "missing"
    )
    GroupViTConfig(**TINY_CONFIG).save_pretrained(tmp_path / "config")
    assert "--resolution 36 is not a multiple of the config's patch_size 8" in model_error(
        "--train_from_scratch_config", tmp_path / "config", "--resolution", "36"
    )


def test_a_step_reads_a_caption_per_image_and_every_class_prompt(train_groupvit, tmp_path):
    canvases = ["--canvas_size", "32", "--num_train_canvases", "12", "--num_test_canvases", "4"]
    args = train_groupvit.parse_args([*canvases, "--output_dir", str(tmp_path)])
    data = train_groupvit.load_detection_data(args)
    images = train_groupvit.CaptionedImages(data, 32, builtin=True)
    batch = train_groupvit.collate([images[index] for index in range(6)])
    assert batch["pixel_values"].shape == (6, 3, 32, 32)
    assert batch["pixel_values"].min() >= -1 and batch["pixel_values"].max() <= 1
    torch.manual_seed(0)
    for caption, options in zip(train_groupvit.draw_captions(batch), batch["captions"], strict=True):
        assert caption in options
    # an image matches the prompt of every class it holds, and no other
    presence = train_groupvit.class_presence(batch, len(data.class_names))
    for row, classes in enumerate(batch["classes"]):
        assert presence[row].nonzero().flatten().tolist() == sorted(classes)
    # with a patch size, each image brings the labels of its patches, read off its mask
    labelled = train_groupvit.CaptionedImages(data, 32, builtin=True, patch_size=8)
    patches = train_groupvit.collate([labelled[index] for index in range(6)])["patch_labels"]
    masks = [np.asarray(mask) for mask in labelled.images.select(range(6))["segmentation"]]
    assert torch.equal(patches, train_groupvit.patch_labels(masks, 8)) and patches.shape == (6, 16)
    assert ((patches > 0).any(dim=1)).all()  # every canvas holds a digit
    with pytest.raises(ValueError, match="--canvas_size 64, or --patch_loss_weight 0"):
        train_groupvit.CaptionedImages(data, 64, builtin=True, patch_size=8)


def test_threshold_calibration_and_metrics(train_groupvit, pretrained_groupvit, tmp_path):
    """The calibrated threshold is the best of its candidates on training images; the metrics read 1 for perfect
    label maps, and the grid shows image, prediction and truth."""
    shapes_folder(tmp_path / "shapes", count=12)
    args = train_groupvit.parse_args(["--train_data_dir", str(tmp_path / "shapes"), "--output_dir", str(tmp_path)])
    data = train_groupvit.load_detection_data(args)
    model = GroupViTModel.from_pretrained(pretrained_groupvit).eval()
    pipeline = train_groupvit.make_pipeline(model, CLIPProcessor.from_pretrained(pretrained_groupvit), args)
    threshold = groupvit_evaluation.calibrate_threshold(pipeline, data, seed=0)
    scored = groupvit_evaluation.best_classes(pipeline, list(data.train["image"]), data.class_names, batch_size=3)
    targets = [torch.from_numpy(groupvit_evaluation.target_mask(row)) for row in data.train]

    def train_miou(value):
        predictions = [groupvit_evaluation.labels_at(value, best, best_class) for best, best_class, _ in scored]
        return groupvit_evaluation.segmentation_metrics(predictions, targets, 3)["mean_iou"]

    everything = torch.cat([best.flatten() for best, _, _ in scored])
    for other in (-1.0, *torch.quantile(everything, torch.tensor([0.1, 0.5, 0.9])).tolist()):
        assert train_miou(threshold) >= train_miou(other) - 1e-9
    perfect = groupvit_evaluation.segmentation_metrics(targets, targets, 3)
    assert perfect == {"mean_iou": 1.0, "pixel_accuracy": 1.0, "foreground_iou": 1.0}
    # a box filled in is the target of a user's image without masks
    row = data.train[0]
    x0, y0, x1, y1 = row["objects"]["bbox"][0]
    assert (targets[0][int(y0) : int(y1), int(x0) : int(x1)] == row["objects"]["category"][0] + 1).all()
    metrics, _, predictions = train_groupvit.evaluate(model, pipeline_processor(pipeline), data, args)
    # a pipeline without a background threshold labels every pixel with a class, and its protocol says so
    assert "never background" in groupvit_evaluation.groupvit_protocol(data, pipeline, args)["labels"]
    assert len(predictions) == len(data.eval) and "foreground_class_accuracy" in metrics
    # the grouping figures are those of the pipeline's own group maps of the held-out images
    scored_eval = groupvit_evaluation.best_classes(pipeline, list(data.eval["image"]), data.class_names)
    eval_targets = [torch.from_numpy(groupvit_evaluation.target_mask(row)) for row in data.eval]
    grouping = groupvit_evaluation.grouping_metrics([groups for _, _, groups in scored_eval], eval_targets)
    assert {name: metrics[name] for name in grouping} == pytest.approx(grouping)
    assert set(torch.cat([groups.unique() for _, _, groups in scored_eval]).tolist()) <= {0, 1, 2, 3}  # 4 groups
    grid = train_groupvit.segmentation_grid(data, predictions, 2)
    assert len(grid) == 6 and grid[1].size == grid[0].size == data.eval[0]["image"].size


def test_grouping_metrics_by_hand():
    """Each image's groups are called object when most of their true pixels are objects (half is not most)."""
    groups = [torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1]]), torch.zeros(2, 4, dtype=torch.long), torch.tensor([[0, 1]])]
    targets = [
        torch.tensor([[0, 0, 3, 3], [0, 0, 3, 0]]),
        torch.tensor([[0, 0, 0, 0], [0, 2, 0, 0]]),
        torch.tensor([[1, 0]]),
    ]
    metrics = groupvit_evaluation.grouping_metrics(groups, targets)
    # object pixels called object: 3 (group 1 of the first image); called object wrongly: 1; missed: 1 + 0; the third
    # image's groups hold one pixel each, the object one called object
    assert metrics["grouping_foreground_iou"] == pytest.approx((3 + 1) / (3 + 1 + 1 + 1))
    assert metrics["groups_per_image"] == pytest.approx((2 + 1 + 2) / 3)
    half = groupvit_evaluation.grouping_metrics([torch.zeros(1, 2, dtype=torch.long)], [torch.tensor([[1, 0]])])
    assert half["grouping_foreground_iou"] == 0


def pipeline_processor(pipeline):
    return CLIPProcessor(image_processor=pipeline.image_processor, tokenizer=pipeline.tokenizer)


def test_a_new_groupvit_starts_with_distinct_group_tokens(train_groupvit, scratch_config, tmp_path):
    # transformers leaves group tokens and position embeddings at zero; identical group tokens would put every patch
    # in one group
    canvases = ["--canvas_size", "32", "--num_train_canvases", "4", "--num_test_canvases", "2"]
    args = train_groupvit.parse_args(
        [
            *canvases,
            "--train_from_scratch_config",
            str(scratch_config),
            "--resolution",
            "32",
            "--output_dir",
            str(tmp_path),
        ]
    )
    model, _ = train_groupvit.build_model(args, train_groupvit.load_detection_data(args))
    tokens = model.vision_model.encoder.stages[0].group_token[0]
    assert torch.cdist(tokens, tokens).fill_diagonal_(1).min() > 0
    assert model.vision_model.embeddings.position_embeddings.std().item() == pytest.approx(0.02, rel=0.3)
    with torch.no_grad():
        attention = model.eval().vision_model(torch.randn(4, 3, 32, 32), output_attentions=True).attentions[0]
    assert len(attention.argmax(dim=1).unique()) > 1, "every patch fell into one group"
