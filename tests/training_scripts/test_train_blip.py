"""train_blip_captioning.py and train_blip_vqa.py run as users run them (`accelerate launch`, a few steps of tiny
models): a captioner from scratch on the built-in digits, its exact resume, LoRA on a pretrained BLIP folder with a
user's captioned images, and visual question answering on the built-in canvases; `hfgen evaluate` measures each saved
folder as its run did. The rest runs in this process: flag and data errors, padding left out of both losses,
beam-search evaluation and the baselines."""

import json
import shutil

import pytest
import torch
from huggingface_hub import ModelCard
from peft import PeftModel
from PIL import Image
from safetensors.torch import load_file
from transformers import BlipConfig, BlipForConditionalGeneration, BlipForQuestionAnswering, BlipProcessor

from hfgen.data.captions import LabelCaptions
from hfgen.metrics.captioning import caption_metrics
from hfgen.models.blip_heads import blip_config_for, build_blip_processor
from hfgen.models.blip_heads import evaluation as blip_evaluation

from .conftest import dry_run, hfgen_evaluate, import_script, parse_error
from .test_secrets import FAKE_TOKEN, files_containing
from .test_train_clip import captioned_folder

TINY_TOWER = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)


def tiny_architecture(patch_size: int = 4) -> BlipConfig:
    return BlipConfig(text_config=TINY_TOWER, vision_config=dict(TINY_TOWER, patch_size=patch_size))


@pytest.fixture(scope="module")
def scratch_config(tmp_path_factory):
    folder = tmp_path_factory.mktemp("blip-config")
    tiny_architecture().save_pretrained(folder)
    return folder


def captioning_arguments(output_dir, config, *extra):
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
        "--num_validation_images",
        "4",
        "--max_new_tokens",
        "8",
        *extra,
    ]


@pytest.fixture(scope="module")
def captioning_run(tmp_path_factory, launch_script, scratch_config):
    """Four steps of a tiny BLIP captioner from scratch on the digits, checkpoints every two, a (fake) Hub token."""
    output_dir = tmp_path_factory.mktemp("blip") / "run"
    arguments = captioning_arguments(output_dir, scratch_config, "--hub_token", FAKE_TOKEN)
    return output_dir, launch_script("train_blip_captioning.py", *arguments)


def test_captioning_run_saves_blip_its_processor_metrics_baselines_and_card(captioning_run):
    output_dir, result = captioning_run
    model = BlipForConditionalGeneration.from_pretrained(output_dir)
    processor = BlipProcessor.from_pretrained(output_dir)
    tokenizer = processor.tokenizer
    assert model.config.vision_config.image_size == 16 and model.config.text_config.vocab_size == len(tokenizer)
    assert model.config.text_config.bos_token_id == tokenizer.cls_token_id
    assert model.config.text_config.sep_token_id == tokenizer.sep_token_id
    # the saved processor prepares what the model was trained on: a digit caption is one token per word
    assert len(tokenizer("a handwritten digit seven").input_ids) == 6
    inputs = processor(images=Image.new("L", (16, 16), 0), return_tensors="pt")
    with torch.no_grad():
        ids = model.generate(**inputs, num_beams=2, max_new_tokens=4)
    assert ids.shape[0] == 1 and ids.max() < len(tokenizer)

    record = json.loads((output_dir / "metrics.json").read_text())
    metrics, baselines = record["metrics"], record["baselines"]
    assert set(metrics) == {"exact_match", "bleu_4", "cider", "zero_shot_accuracy"}
    assert all(0 <= metrics[name] <= 1 for name in ("exact_match", "bleu_4", "zero_shot_accuracy"))
    # "a handwritten digit <most frequent class>" for every test digit: right for that class's 10% of them
    assert abs(baselines["exact_match"]["most_frequent_caption"] - 0.1) < 0.01
    assert 0 < baselines["bleu_4"]["most_frequent_caption"] < 1 and baselines["zero_shot_accuracy"] == {"chance": 0.1}
    protocol = record["protocol"]
    assert protocol["dataset"] == "hfgen/digits" and protocol["split"] == "test" and protocol["num_images"] == 360
    assert "every template of the image's class (4 captions)" in protocol["references"]
    card = (output_dir / "README.md").read_text()
    assert "pipeline_tag: image-to-text" in card and "CIDEr-D" in card and "most frequent caption" in card
    assert "BlipForConditionalGeneration.from_pretrained" in card and "BLIPCaptionScorer.from_blip" in card
    assert (output_dir / "samples.png").exists()
    validation = sorted(path.name for path in (output_dir / "validation").iterdir())
    assert validation[:2] == ["step-000002-captions.json", "step-000002-images.png"]
    assert len(json.loads((output_dir / "validation" / "step-000004-captions.json").read_text())) == 4
    assert not files_containing(output_dir, FAKE_TOKEN)
    assert "Hub-ready folder" in result.stdout and "cider" in result.stdout


def test_resuming_a_captioning_run_ends_where_the_uninterrupted_run_ends(
    captioning_run, launch_script, scratch_config, tmp_path
):
    output_dir, _ = captioning_run
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(output_dir / "checkpoint-2", resumed / "checkpoint-2")
    arguments = captioning_arguments(resumed, scratch_config, "--resume_from_checkpoint", "latest")
    launch_script("train_blip_captioning.py", *arguments)
    expected, actual = load_file(output_dir / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert set(expected) == set(actual)
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    assert (
        json.loads((resumed / "metrics.json").read_text())["metrics"]
        == json.loads((output_dir / "metrics.json").read_text())["metrics"]
    )


def assert_measured_as_the_run(printed: dict, record: dict) -> None:
    assert printed["metrics"] == pytest.approx(record["metrics"], abs=1e-5)
    assert printed["baselines"] == record["baselines"] and printed["protocol"] == record["protocol"]


def test_hfgen_evaluate_measures_a_saved_captioner_as_the_run_did(captioning_run, tmp_path, capsys):
    output_dir, _ = captioning_run
    folder = tmp_path / "blip"
    shutil.copytree(output_dir, folder)
    # no data flag: the run's own data, held-out split and settings (beams, caption length), from training_args.json
    printed = hfgen_evaluate(capsys, folder, "--update_card")
    record = json.loads((output_dir / "metrics.json").read_text())
    assert_measured_as_the_run(printed, record)
    results = {result.metric_type: result for result in ModelCard.load(folder / "README.md").data.eval_results}
    assert set(results) == {"exact_match", "bleu_4", "cider", "zero_shot_accuracy"}
    assert results["cider"].metric_value == pytest.approx(record["metrics"]["cider"])
    assert results["cider"].dataset_split == "test" and "hfgen/digits" in results["cider"].dataset_name
    assert results["cider"].task_type == "image-to-text"
    # on other data: a user's captioned folder, no classes, so the caption metrics alone, against its own captions
    data = tmp_path / "shapes"
    captioned_folder(data)
    printed = hfgen_evaluate(capsys, folder, "--train_data_dir", str(data), "--caption_column", "text")
    assert set(printed["metrics"]) == {"exact_match", "bleu_4", "cider"}
    assert printed["protocol"]["dataset"] == str(data) and "own 'text' caption" in printed["protocol"]["references"]
    assert set(printed["baselines"]) == {"exact_match", "bleu_4", "cider"}


@pytest.fixture(scope="module")
def pretrained_blip(tmp_path_factory):
    """A tiny pretrained BLIP captioner folder (model and processor, 16 px), as users bring one."""
    folder = tmp_path_factory.mktemp("pretrained-blip")
    processor = build_blip_processor(["a photo of", "a red square"], folder / "vocab", image_size=16, max_length=16)
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(blip_config_for(processor.tokenizer, 16, tiny_architecture()))
    model.save_pretrained(folder / "blip")
    processor.save_pretrained(folder / "blip")
    return folder / "blip"


def test_lora_on_a_pretrained_blip_with_a_users_captions(tmp_path, launch_script, pretrained_blip, capsys):
    data = tmp_path / "shapes"
    captioned_folder(data)
    output_dir = tmp_path / "lora"
    launch_script(
        "train_blip_captioning.py",
        "--model_name_or_path",
        pretrained_blip,
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
        "--num_validation_images",
        "2",
        "--max_new_tokens",
        "8",
    )
    files = {path.name for path in output_dir.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "README.md"} <= files
    assert "model.safetensors" not in files
    adapter = load_file(output_dir / "adapter_model.safetensors")
    # LoRA reached the attention of both towers: the vision tower's qkv and the text decoder's query
    assert any(".qkv.lora_A" in name for name in adapter) and any(".query.lora_A" in name for name in adapter)
    assert all("lora_" in name for name in adapter)
    base = BlipForConditionalGeneration.from_pretrained(pretrained_blip)
    adapted = PeftModel.from_pretrained(BlipForConditionalGeneration.from_pretrained(pretrained_blip), output_dir)
    pixels = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    ids = torch.tensor([[2, 5, 6, 3]])
    with torch.no_grad():
        assert not torch.allclose(base(pixels, ids).logits, adapted(pixel_values=pixels, input_ids=ids).logits)
    record = json.loads((output_dir / "metrics.json").read_text())
    # captions but no classes: the caption metrics are measured against each image's own caption, zero-shot is not
    assert set(record["metrics"]) == {"exact_match", "bleu_4", "cider"}
    assert record["protocol"]["dataset"] == str(data)
    assert "own 'text' caption" in record["protocol"]["references"]
    assert "PeftModel.from_pretrained" in (output_dir / "README.md").read_text()
    # hfgen evaluate loads the adapter onto its base and measures it as the run did
    assert_measured_as_the_run(hfgen_evaluate(capsys, output_dir), record)


def test_vqa_run_on_the_canvases(tmp_path, launch_script, capsys):
    output_dir = tmp_path / "vqa"
    config = tmp_path / "config"
    tiny_architecture(patch_size=8).save_pretrained(config)
    launch_script(
        "train_blip_vqa.py",
        "--output_dir",
        output_dir,
        "--train_from_scratch_config",
        config,
        "--resolution",
        "32",
        "--num_train_canvases",
        "32",
        "--num_test_canvases",
        "8",
        "--train_batch_size",
        "16",
        "--max_train_steps",
        "3",
        "--validation_steps",
        "3",
        "--checkpointing_steps",
        "3",
        "--num_validation_images",
        "3",
    )
    # the patch classifier (on by default on the canvases) is checkpointed beside the model, and not saved with it
    checkpoint = output_dir / "checkpoint-3"
    assert set(load_file(checkpoint / "model_1.safetensors")) == {"weight", "bias"}
    assert load_file(checkpoint / "model_1.safetensors")["weight"].shape == (11, TINY_TOWER["hidden_size"])
    assert set(load_file(output_dir / "model.safetensors")) == set(load_file(checkpoint / "model.safetensors"))
    model = BlipForQuestionAnswering.from_pretrained(output_dir)
    processor = BlipProcessor.from_pretrained(output_dir)
    assert model.config.vision_config.image_size == 32
    inputs = processor(images=Image.new("RGB", (32, 32)), text="how many digits are there?", return_tensors="pt")
    with torch.no_grad():
        assert model.generate(**inputs, max_new_tokens=3).shape[0] == 1
    record = json.loads((output_dir / "metrics.json").read_text())
    assert 0 <= record["metrics"]["vqa_accuracy"] <= 1
    baselines = record["baselines"]["vqa_accuracy"]
    assert 0 < baselines["most_frequent_answer"] <= baselines["most_frequent_answer_to_the_question"] <= 1
    assert record["protocol"]["dataset"] == "hfgen/digit-canvases" and record["protocol"]["split"] == "test"
    card = (output_dir / "README.md").read_text()
    assert "pipeline_tag: visual-question-answering" in card and "BlipForQuestionAnswering" in card
    assert "| 1 | " in card and "most frequent answer to the question" in card
    # hfgen evaluate draws the same canvases (their counts and size from training_args.json) and measures as the run
    printed = hfgen_evaluate(capsys, output_dir, "--update_card")
    assert_measured_as_the_run(printed, record)
    assert printed["protocol"]["canvases"].startswith("32 training canvases")
    (result,) = ModelCard.load(output_dir / "README.md").data.eval_results
    assert result.metric_type == "vqa_accuracy" and result.metric_value == pytest.approx(
        record["metrics"]["vqa_accuracy"]
    )
    assert result.task_type == "visual-question-answering" and result.dataset_split == "test"


@pytest.fixture(scope="module")
def captioning():
    return import_script("train_blip_captioning.py")


@pytest.fixture(scope="module")
def vqa():
    return import_script("train_blip_vqa.py")


def test_flag_errors_are_one_line(captioning, vqa):
    for script in (captioning, vqa):
        assert "--use_lora adapts a pretrained model" in parse_error(script, "--use_lora")
        assert "--train_from_scratch_config builds a new model" in parse_error(
            script, "--model_name_or_path", "x", "--train_from_scratch_config", "y"
        )
        assert "--num_beams" in parse_error(script, "--num_beams", "0")
        assert "--max_new_tokens" in parse_error(script, "--max_new_tokens", "0")
    assert "--random_flip would swap the left and right" in parse_error(vqa, "--random_flip")
    assert "--class_filter" in parse_error(vqa, "--class_filter", "3")
    assert "--num_train_canvases" in parse_error(vqa, "--num_train_canvases", "0")
    assert "your data has none" in parse_error(vqa, "--train_data_dir", "x", "--patch_loss_weight", "1")
    assert "--patch_loss_weight" in parse_error(vqa, "--patch_loss_weight", "-1")
    assert vqa.parse_args([]).patch_loss_weight == 1.0 and vqa.parse_args([]).resolution == 64
    assert vqa.parse_args(["--train_data_dir", "x"]).patch_loss_weight == 0.0
    assert captioning.parse_args([]).learning_rate == 1e-3
    assert vqa.parse_args(["--model_name_or_path", "x"]).learning_rate == 1e-5
    assert vqa.parse_args(["--model_name_or_path", "x", "--use_lora"]).learning_rate == 1e-4


def test_dry_runs_write_nothing(tmp_path):
    report = json.loads(dry_run("train_blip_captioning.py", "--output_dir", tmp_path / "dry", "--resolution", "16"))
    text_config = report["model_config"]["text_config"]
    assert report["model_config"]["vision_config"]["image_size"] == 16 and report["data"] == {
        "train": 1437,
        "test": 360,
    }
    # the caption words, the special tokens, letters and digits: the special tokens lie inside the vocabulary
    assert (
        100 < text_config["vocab_size"] < 200 and text_config["bos_token_id"] == 2 and text_config["sep_token_id"] == 3
    )
    report = json.loads(
        dry_run(
            "train_blip_vqa.py",
            "--output_dir",
            tmp_path / "vqa",
            "--num_train_canvases",
            "8",
            "--num_test_canvases",
            "4",
        )
    )
    vision = report["model_config"]["vision_config"]
    assert (vision["patch_size"], vision["image_size"]) == (8, 64) and set(report["data"]) == {"train", "test"}
    assert not (tmp_path / "dry").exists() and not (tmp_path / "vqa").exists()


def test_data_and_model_errors_are_one_line(tmp_path):
    unlabelled = tmp_path / "unlabelled"
    unlabelled.mkdir()
    for index in range(8):
        Image.new("RGB", (16, 16), (index * 30, 0, 0)).save(unlabelled / f"{index}.png")
    output = ["--output_dir", tmp_path / "out"]
    with pytest.raises(ValueError, match="neither class labels nor captions"):
        dry_run("train_blip_captioning.py", "--train_data_dir", unlabelled, *output)
    with pytest.raises(ValueError, match="--train_from_scratch_config .* is not a BlipConfig folder"):
        dry_run("train_blip_captioning.py", "--train_from_scratch_config", tmp_path / "missing", *output)
    with pytest.raises(ValueError, match="--model_name_or_path .* is not a BlipForConditionalGeneration folder"):
        dry_run("train_blip_captioning.py", "--model_name_or_path", unlabelled, *output)
    with pytest.raises(ValueError, match="--resolution 20 is not a multiple of the BLIP config's patch_size 8"):
        dry_run("train_blip_captioning.py", "--resolution", "20", *output)
    with pytest.raises(ValueError, match="--max_new_tokens 40 does not fit the model's 32 text positions"):
        dry_run("train_blip_captioning.py", "--max_new_tokens", "40", *output)
    with pytest.raises(ValueError, match="--model_name_or_path .* is not a BlipForQuestionAnswering folder"):
        dry_run("train_blip_vqa.py", "--model_name_or_path", unlabelled, *output)
    with pytest.raises(ValueError, match="--resolution 16 is too small for the canvases"):
        dry_run("train_blip_vqa.py", "--resolution", "16", *output)
    shapes = tmp_path / "shapes"
    captioned_folder(shapes)  # captions, but no questions
    with pytest.raises(ValueError, match=r"--question_column 'question' is not a column of split 'train'"):
        dry_run("train_blip_vqa.py", "--train_data_dir", shapes, *output)


def test_vqa_on_a_users_questions(tmp_path):
    """A folder whose metadata.jsonl gives each image a question and an answer: 2 of its 16 are held out."""
    folder = tmp_path / "questions"
    captioned_folder(folder)
    lines = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
    for line in lines:
        line["question"], line["answer"] = "what colour is the shape?", line.pop("text").split()[1]
    (folder / "metadata.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    arguments = ["--train_data_dir", folder, "--validation_split", "2", "--resolution", "16"]
    config = tmp_path / "config"
    tiny_architecture().save_pretrained(config)
    report = json.loads(dry_run("train_blip_vqa.py", *arguments, "--train_from_scratch_config", config))
    assert report["data"] == {"train": 14, "train[held-out 2 of 16 images, seed 0]": 2}
    assert report["model_config"]["vision_config"]["image_size"] == 16
    lines[3]["answer"] = " "
    (folder / "metadata.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(ValueError, match=r"image '.*shape_3.jpg': its answer \('answer'\) is ' '"):
        dry_run("train_blip_vqa.py", *arguments, "--train_from_scratch_config", config)


@pytest.fixture(scope="module")
def tiny_models():
    """A tiny captioner and VQA model (16 px, 8 px patches) with a processor over the digit captions."""
    captions = LabelCaptions([str(digit) for digit in range(10)])
    texts = [template.format(phrase) for template in captions.templates for phrase in captions.phrases]
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        processor = build_blip_processor(
            texts + ["is there a seven?", "which digit is on the left?", "how many?", "yes no"],
            folder,
            image_size=16,
            max_length=16,
        )
    config = blip_config_for(processor.tokenizer, 16, tiny_architecture(patch_size=8))
    torch.manual_seed(0)
    return BlipForConditionalGeneration(config).eval(), BlipForQuestionAnswering(config).eval(), processor


def test_padding_adds_nothing_to_either_loss(captioning, vqa, tiny_models):
    captioner, answerer, processor = tiny_models
    bos = captioner.config.text_config.bos_token_id
    pixel_values = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    short, long = "the digit one", "a picture of the number two"
    tokens = [len(processor.tokenizer(text).input_ids) - 1 for text in (short, long)]  # predicted tokens each
    with torch.no_grad():
        # the short caption is padded to the long one's length in the batch; alone it has no padding
        batch = captioning.captioning_loss(captioner, processor, bos, pixel_values, [short, long])
        alone = [
            captioning.captioning_loss(captioner, processor, bos, pixel_values[i : i + 1], [t])
            for i, t in enumerate((short, long))
        ]
        assert torch.allclose(batch, (alone[0] * tokens[0] + alone[1] * tokens[1]) / sum(tokens), atol=1e-5)
        questions = ["is there a seven?", "which digit is on the left?"]
        answers = ["no", "a picture of the number two"]
        answer_tokens = [len(processor.tokenizer(text).input_ids) - 1 for text in answers]
        batch = vqa.vqa_loss(answerer, processor, bos, pixel_values, questions, answers).loss
        alone = [
            vqa.vqa_loss(answerer, processor, bos, pixel_values[i : i + 1], [questions[i]], [answers[i]]).loss
            for i in range(2)
        ]
    expected = (alone[0] * answer_tokens[0] + alone[1] * answer_tokens[1]) / sum(answer_tokens)
    assert torch.allclose(batch, expected, atol=1e-5)


class Held(torch.utils.data.Dataset):
    """Transformed held-out images, as the scripts hold them."""

    def __init__(self, pixel_values, labels=None):
        self.pixel_values, self.labels = pixel_values, labels

    def __len__(self):
        return len(self.pixel_values)

    def __getitem__(self, index):
        example = {"pixel_values": self.pixel_values[index]}
        if self.labels is not None:
            example["label"] = self.labels[index]
        return example


def test_beam_search_evaluation_of_a_tiny_captioner(captioning, tiny_models):
    captioner, _, processor = tiny_models
    args = captioning.parse_args(["--num_beams", "3", "--max_new_tokens", "6"])
    images = Held(torch.rand(5, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1, torch.arange(5))
    generated = blip_evaluation.generate_captions(captioner, processor, images, args, "cpu")
    # the batched beam search gives each image the caption it gets alone
    pixels = captioning.processor_pixels(images.pixel_values, processor.image_processor)
    for index, caption in enumerate(generated):
        ids = captioner.generate(pixel_values=pixels[index : index + 1], num_beams=3, max_new_tokens=6)
        assert caption == processor.tokenizer.decode(ids[0], skip_special_tokens=True).strip()
    captions = LabelCaptions([str(digit) for digit in range(10)])
    data = type("Data", (), {"eval": images})()
    references = [[template.format(captions.phrases[label]) for template in captions.templates] for label in range(5)]
    metrics, again = blip_evaluation.evaluate_captioning(captioner, processor, captions, references, data, args, "cpu")
    assert again == generated and set(metrics) == {"exact_match", "bleu_4", "cider", "zero_shot_accuracy"}
    assert metrics == {
        **caption_metrics(generated, references),
        "zero_shot_accuracy": metrics["zero_shot_accuracy"],
    }


def test_vqa_evaluation_answers_each_question_as_asked_alone(vqa, tiny_models):
    _, answerer, processor = tiny_models
    args = vqa.parse_args(["--num_beams", "2", "--max_new_tokens", "4"])
    images = Held(torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1)
    questions = ["is there a seven?", "which digit is on the left?", "is there a two?", "how many?"]
    answers = blip_evaluation.generate_answers(answerer, processor, images, questions, args, "cpu")
    pixels = vqa.processor_pixels(images.pixel_values, processor.image_processor)
    for index, question in enumerate(questions):
        inputs = processor.tokenizer([question], return_tensors="pt")
        ids = answerer.generate(
            input_ids=inputs.input_ids, pixel_values=pixels[index : index + 1], num_beams=2, max_new_tokens=4
        )
        assert answers[index] == processor.tokenizer.decode(ids[0], skip_special_tokens=True).strip()


def test_baselines():
    held_out = {"questions": ["is there a two?", "how many digits?", "what?"], "answers": ["no", "Two", "yes"]}
    baselines = blip_evaluation.answer_baselines(
        ["is there a two?", "is there a two?", "how many digits?", "how many digits?", "how many digits?"],
        ["no", "no", "two", "two", "three"],
        held_out,
    )["vqa_accuracy"]
    # "two" overall (3 of 5) is right once; per question: "no", "two", and the overall "two" for the unseen one
    assert baselines == {"most_frequent_answer": 1 / 3, "most_frequent_answer_to_the_question": 2 / 3}
    captions = LabelCaptions(["cat", "dog"])
    assert blip_evaluation.most_frequent_caption(captions, {"label": [1, 0, 1]}) == "a photo of dog"
