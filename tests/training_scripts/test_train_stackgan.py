"""train_stackgan.py run as users run it: `accelerate launch` subprocesses on a tiny config, two steps of stage I
(8 px) then two of stage II (16 px) on the built-in digits with captions from their labels; a run resumed where
stage II starts; a user's folder with a caption column and a given (frozen) text encoder; `hfgen evaluate / sample /
demo` on the folder; its one-line errors."""

import json
import shutil

import pytest
import torch
import transformers
from huggingface_hub import ModelCard
from safetensors.torch import load_file

import hfgen
from hfgen.data.captions import LabelCaptions
from hfgen.models.latent_diffusion import build_caption_text_encoder

from .conftest import TINY_RUN, dry_run, evaluate_saved_copy, import_script, parse_error
from .test_secrets import FAKE_TOKEN, files_containing
from .test_train_gan import SAME_SAMPLES
from .test_user_data import face_folder, tiny_backbone  # noqa: F401 (fixtures)

COMMON = [*TINY_RUN, "--report_to", "none"]
# stage I at steps 0 and 1, stage II at steps 2 and 3: checkpoint-2 is taken where stage II starts
REFERENCE_RUN = ["--stage1_steps", "2", "--stage2_steps", "2", "--checkpointing_steps", "2", "--validation_steps", "2"]
PROMPT = "a handwritten digit seven"


@pytest.fixture(scope="module")
def stackgan_config(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stackgan_config")
    hfgen.StackGANConfig(
        resolution=16,
        stage1_resolution=8,
        text_embedding_dim=64,  # the hidden size of the text encoder the script trains
        condition_dim=4,
        latent_dim=8,
        generator_channels=16,
        stage2_channels=8,
        stage2_residual_blocks=1,
        discriminator_channels=4,
        discriminator_text_dim=4,
    ).save_pretrained(folder)
    return folder


def launch_reference(launch_script, output_dir, config, *extra):
    return launch_script(
        "train_stackgan.py",
        "--output_dir",
        output_dir,
        "--model_config_name_or_path",
        config,
        *COMMON,
        *REFERENCE_RUN,
        *extra,
    )


@pytest.fixture(scope="module")
def stackgan_run(tmp_path_factory, stackgan_config, launch_script):
    output_dir = tmp_path_factory.mktemp("stackgan") / "run"
    return output_dir, launch_reference(launch_script, output_dir, stackgan_config)


def test_stackgan_run_writes_a_hub_ready_folder_with_both_stages_measured(stackgan_run):
    output_dir, result = stackgan_run
    for name in (
        "model_index.json",
        "config.json",
        "model.safetensors",
        "gan/model.safetensors",
        "text_encoder",
        "tokenizer",
        "discriminator/model.safetensors",
        "samples.png",
        "samples_stage1.png",
        "validation/step-000002-samples.png",
        "training_args.json",
    ):
        assert (output_dir / name).exists(), name
    assert f"Hub-ready folder: {output_dir}" in result.stdout
    record = json.loads((output_dir / "metrics.json").read_text())
    metrics, protocol = record["metrics"], record["protocol"]
    assert record["step"] == 4
    for stage in ("", "_stage1"):
        for key in ("fid", "kid_mean", "precision", "recall", "diversity_ratio", "class_accuracy"):
            assert key + stage in metrics
        assert 0 <= metrics["class_accuracy" + stage] <= 1 and metrics["fid" + stage] > 0
    assert metrics["fid"] != metrics["fid_stage1"]  # two stages, two sets of samples
    assert protocol["prompt_accuracy_chance"] == "0.1 (1 of 10 classes)"
    assert protocol["prompts"] == "'a handwritten digit {}' with the class names, classes balanced"
    assert "8 px" in protocol["stage1_real_images"]
    card = ModelCard.load(output_dir / "README.md")
    reported = {result.metric_type: result.metric_value for result in card.data.eval_results}
    for key in ("fid", "fid_stage1", "class_accuracy", "class_accuracy_stage1"):
        assert reported[key] == pytest.approx(metrics[key])
    assert card.data.pipeline_tag == "text-to-image" and {"stackgan", "text-to-image"} <= set(card.data.tags)
    text = " ".join(card.text.split())
    assert "chance is 0.1 (1 of 10 classes)" in text and "samples_stage1.png" in text
    titles = {result.metric_type: result.metric_name for result in card.data.eval_results}
    assert titles["fid_stage1"].startswith("FID of stage I (digits classifier;")
    assert "Training ran 2 steps of stage I, then stage II until step 4" in text


def test_the_folder_loads_three_ways_and_the_pipeline_draws_with_the_generator(stackgan_run):
    output_dir, _ = stackgan_run
    pipeline = hfgen.StackGANPipeline.from_pretrained(output_dir)
    generator = hfgen.StackGANGenerator.from_pretrained(output_dir).eval()
    auto = transformers.AutoModel.from_pretrained(output_dir).eval()
    discriminator = hfgen.StackGANDiscriminator.from_pretrained(output_dir, subfolder="discriminator").eval()
    output = pipeline(
        prompt=PROMPT, num_images_per_prompt=3, generator=torch.Generator().manual_seed(0), output_type="pt"
    )
    input_ids = pipeline.tokenizer([PROMPT] * 3, padding="max_length", return_tensors="pt").input_ids
    with torch.no_grad():
        text = pipeline.text_encoder(input_ids).pooler_output
        images = generator(text, output.latents, output.condition_noise).sample
        assert torch.equal(auto(text, output.latents, output.condition_noise).sample, images)
        assert discriminator(images, text).logits.shape == (3,)
    torch.testing.assert_close(output.images, (images * 0.5 + 0.5).clamp(0, 1), rtol=0, atol=1e-6)


def test_stage_one_and_the_text_encoder_train_in_stage_one_and_stay_frozen_in_stage_two(stackgan_run):
    output_dir, _ = stackgan_run
    # accelerate's checkpoints hold the prepared models in order: generator, discriminator, text encoder
    start = {
        name: load_file(output_dir / f"checkpoint-2/{name}") for name in ("model.safetensors", "model_2.safetensors")
    }
    end = {
        name: load_file(output_dir / f"checkpoint-4/{name}") for name in ("model.safetensors", "model_2.safetensors")
    }
    saved = load_file(output_dir / "gan" / "model.safetensors")  # the averaged generator of the run's end
    stage1 = [key for key in saved if key.startswith("stage1.")]
    stage2 = [key for key in saved if key.startswith("stage2.")]
    # stage II started from the averaged stage I, which then stayed as it was (the live and averaged copies agree)
    for key in stage1:
        assert torch.equal(end["model.safetensors"][key], saved[key]), key
    assert any(not torch.equal(start["model.safetensors"][key], end["model.safetensors"][key]) for key in stage2)
    # the text encoder learned during stage I (it is no longer the one built from the run's seed) and not after
    assert start["model_2.safetensors"].keys() == end["model_2.safetensors"].keys()
    for key, value in start["model_2.safetensors"].items():
        assert torch.equal(value, end["model_2.safetensors"][key]), key
    tokenizer = hfgen.StackGANPipeline.from_pretrained(output_dir).tokenizer
    assert len(tokenizer) > 512 and tokenizer.tokenize("seven") == ["seven</w>"]  # written from the digit captions
    torch.manual_seed(0)
    initial = build_caption_text_encoder(tokenizer, hidden_size=64).state_dict()
    moved = [key for key, value in start["model_2.safetensors"].items() if not torch.equal(value, initial[key])]
    assert moved, "the text encoder did not learn in stage I"


def test_a_run_resumed_where_stage_two_starts_continues_exactly(
    tmp_path, stackgan_run, stackgan_config, launch_script
):
    reference_dir, _ = stackgan_run
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copytree(reference_dir / "checkpoint-2", resumed_dir / "checkpoint-2")
    launch_reference(launch_script, resumed_dir, stackgan_config, "--resume_from_checkpoint", "latest")
    for name in ("model.safetensors", "discriminator/model.safetensors", "text_encoder/model.safetensors"):
        reference, resumed = load_file(reference_dir / name), load_file(resumed_dir / name)
        assert reference.keys() == resumed.keys()
        for key in reference:
            torch.testing.assert_close(resumed[key], reference[key], rtol=0, atol=0, msg=f"{name}: {key}")
    reference_metrics = json.loads((reference_dir / "metrics.json").read_text())["metrics"]
    assert json.loads((resumed_dir / "metrics.json").read_text())["metrics"] == pytest.approx(reference_metrics)


def test_hfgen_evaluate_sample_and_demo_use_the_folder(stackgan_run, tmp_path, capsys):
    from hfgen.cli import main
    from hfgen.demo import build_demo

    output_dir, _ = stackgan_run
    printed, record = evaluate_saved_copy(output_dir, tmp_path / "copy", capsys)
    assert printed["metrics"] == pytest.approx(record["metrics"], **SAME_SAMPLES)
    assert printed["protocol"] == record["protocol"]
    by_name = {
        result.metric_type: result for result in ModelCard.load(tmp_path / "copy" / "README.md").data.eval_results
    }
    assert by_name["fid_stage1"].metric_value == pytest.approx(record["metrics"]["fid_stage1"], **SAME_SAMPLES)
    grid = tmp_path / "grid.png"
    assert main(["sample", str(output_dir), "--prompt", PROMPT, "--num_images", "4", "--output", str(grid)]) == 0
    assert grid.is_file()
    assert main(["sample", str(output_dir), "--num_images", "2", "--output", str(grid)]) != 0
    assert 'StackGANPipeline draws from a text prompt: pass --prompt "..."' in capsys.readouterr().err
    assert type(build_demo(str(output_dir))).__name__ == "Blocks"


@pytest.fixture(scope="module")
def captioned_faces(tmp_path_factory, face_folder):  # noqa: F811 (test_user_data's fixture)
    """The user's faces with a caption each in metadata.csv (a `text` column), as imagefolder reads them."""
    folder = tmp_path_factory.mktemp("captioned_faces")
    lines = ["file_name,text"]
    for index, path in enumerate(sorted(face_folder.iterdir())):
        shutil.copy(path, folder / path.name)
        lines.append(f"{path.name},a face {'smiling' if index % 2 else 'looking ahead'}")
    (folder / "metadata.csv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def text_encoder_folder(tmp_path_factory):
    """A (tiny, random) CLIP text encoder with its tokenizer in one folder, as --text_encoder_name_or_path takes
    them (a real one, e.g. openai/clip-vit-base-patch32, needs a download)."""
    import tempfile

    from hfgen.models.latent_diffusion import write_caption_tokenizer

    folder = tmp_path_factory.mktemp("clip_text")
    with tempfile.TemporaryDirectory() as vocabulary:
        tokenizer = write_caption_tokenizer(["a face smiling", "a face looking ahead"], vocabulary, 16)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(1)
    build_caption_text_encoder(tokenizer, hidden_size=32, num_layers=1).save_pretrained(folder)
    return folder


def test_a_user_folder_with_captions_and_a_given_text_encoder_is_measured_as_that_data_and_writes_no_token(
    tmp_path,
    launch_script,
    captioned_faces,
    text_encoder_folder,
    tiny_backbone,  # noqa: F811
):
    output_dir = tmp_path / "faces"
    launch_script(
        "train_stackgan.py",
        "--output_dir",
        output_dir,
        "--train_data_dir",
        captioned_faces,
        "--caption_column",
        "text",
        "--text_encoder_name_or_path",
        text_encoder_folder,
        *COMMON,
        "--num_eval_samples",
        "16",
        "--validation_split",
        "6",
        "--metrics_model",
        tiny_backbone,
        "--stage1_steps",
        "1",
        "--stage2_steps",
        "1",
        "--hub_token",
        FAKE_TOKEN,
    )
    record = json.loads((output_dir / "metrics.json").read_text())
    assert record["protocol"]["dataset"] == str(captioned_faces)
    assert record["protocol"]["split"].startswith("train[held-out 6 of 30 images")
    assert record["protocol"]["prompts"] == "captions of the training data, drawn at random"
    assert str(tiny_backbone) in record["protocol"]["feature_extractor"]
    assert {"fid", "fid_stage1", "precision", "recall", "diversity_ratio"} <= set(record["metrics"])
    assert "class_accuracy" not in record["metrics"] and "prompt_accuracy_chance" not in record["protocol"]
    config = json.loads((output_dir / "config.json").read_text())
    assert (config["resolution"], config["stage1_resolution"]) == (16, 8)  # the default stage I: half of 16 px
    card = (output_dir / "README.md").read_text()
    assert "No prompt accuracy was measured" in card
    assert "hfgen/digits" not in card and "a handwritten digit" not in card  # nothing of the built-in data
    # the given text encoder, read by a new model of its width, and left as it was
    assert config["text_embedding_dim"] == 32
    given, saved = (
        load_file(text_encoder_folder / "model.safetensors"),
        load_file(output_dir / "text_encoder/model.safetensors"),
    )
    assert given.keys() == saved.keys() and all(torch.equal(given[key], saved[key]) for key in given)
    assert "is `" + str(text_encoder_folder) + "`, kept frozen" in " ".join(card.split())
    assert files_containing(output_dir, FAKE_TOKEN) == []
    assert json.loads((output_dir / "training_args.json").read_text())["hub_token"] == "<redacted>"


def test_bad_flags_are_one_line_errors_naming_the_flag(tmp_path, stackgan_config):
    script = import_script("train_stackgan.py")
    assert "--resolution must be a power of two of at least 16" in parse_error(script, "--resolution", 24)
    assert "--stage1_resolution must be a power of two" in parse_error(script, "--stage1_resolution", 12)
    assert "--stage1_resolution 32 must be at most half of --resolution 32" in parse_error(
        script, "--stage1_resolution", 32
    )
    assert "--stage1_resolution must lie in [8, inf]" in parse_error(script, "--stage1_resolution", 4)
    assert "--stage2_steps must lie in [1, inf]" in parse_error(script, "--stage2_steps", 0)
    assert "--kl_weight must lie in [0, inf]" in parse_error(script, "--kl_weight", -1)
    assert "brings its own text encoder" in parse_error(
        script, "--pretrained_model_name_or_path", "a", "--text_encoder_name_or_path", "b"
    )
    # data and model that do not fit, and a run too short to reach stage II, stop before training
    with pytest.raises(ValueError, match="--caption_column 'caption' is not a column of the data"):
        dry_run("train_stackgan.py", "--output_dir", tmp_path / "dry", "--caption_column", "caption")
    with pytest.raises(
        ValueError, match="its stages make 8 and 16 px images but --stage1_resolution and --resolution"
    ):
        dry_run("train_stackgan.py", "--output_dir", tmp_path / "dry", "--model_config_name_or_path", stackgan_config)
    from accelerate.state import AcceleratorState

    args = script.parse_args(
        ["--output_dir", str(tmp_path / "short"), "--model_config_name_or_path", str(stackgan_config), *COMMON]
        + ["--stage1_steps", "5", "--max_train_steps", "5"]
    )
    try:
        with pytest.raises(ValueError, match="--max_train_steps 5 ends before stage II starts"):
            script.main(args)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    assert not (tmp_path / "short" / "checkpoint-1").exists()


def test_wrong_captions_never_fit_the_image():
    from hfgen.data.captions import ColumnCaptions

    script = import_script("train_stackgan.py")
    digits = LabelCaptions([str(i) for i in range(10)])
    labels = torch.arange(10).repeat(20)
    texts = digits.captions(labels)
    wrong = script.wrong_captions({"labels": labels}, digits, texts)
    # another class's caption for every image, every other class drawn
    words = [next(word for word in text.split() if word in digits.phrases) for text in wrong]
    assert all(word != digits.phrases[label] for word, label in zip(words, labels.tolist(), strict=True))
    assert set(words) == set(digits.phrases)
    one_class = LabelCaptions(["cat"])
    assert (
        script.wrong_captions({"labels": torch.zeros(4, dtype=torch.long)}, one_class, ["a photo of cat"] * 4) is None
    )
    column = ColumnCaptions(["a", "b", "c"])
    assert script.wrong_captions({}, column, ["a", "b", "c"]) == ["b", "c", "a"]  # the next image's
    assert script.wrong_captions({}, None, [""] * 3) is None  # empty captions: no wrong one


def test_dry_run_prints_the_resolved_stages_and_trains_nothing(tmp_path):
    output = dry_run("train_stackgan.py", "--output_dir", tmp_path / "dry")
    printed = json.loads(output[output.index("{") :])
    assert printed["args"]["stage1_resolution"] == 16 and printed["model_config"]["resolution"] == 32
    assert printed["model_config"]["text_embedding_dim"] == printed["text_encoder_config"]["hidden_size"] == 64
    assert printed["captions"] == LabelCaptions.__name__
    assert not (tmp_path / "dry").exists()
