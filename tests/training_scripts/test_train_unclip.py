"""train_unclip.py run as users run it: an `accelerate launch` subprocess of four steps on a tiny CLIP folder (saved
here, as train_clip.py saves one) and tiny decoder and priors at 16 px on the built-in digits; exact resume, the
folder it writes through `hfgen evaluate`, `hfgen sample` and the demo; a user's folder and the one-line errors."""

import json
import os
import shutil

import pytest
import torch
from diffusers import DiffusionPipeline, PriorTransformer
from huggingface_hub import ModelCard
from PIL import Image
from safetensors.torch import load_file

import hfgen
from hfgen.testing.pipeline_tester import seeded

from ..pipelines.test_pipeline_unclip import tiny_clip, tiny_decoder
from .conftest import dry_run, evaluate_saved_copy, import_script, parse_error

# How close `hfgen evaluate` comes to the run's own numbers (see test_train_diffusion.py): the same images, other
# thread counts.
SAME_SAMPLES = dict(rel=1e-5, abs=1e-4)
TOKEN = "hf_unclipTokenThatMustNeverBeWritten"

TINY_RUN = [
    "--resolution", "16",
    "--num_train_timesteps", "100",
    "--prior_num_train_timesteps", "100",
    "--num_inference_steps", "2",
    "--prior_num_inference_steps", "2",
    "--train_batch_size", "8",
    "--num_eval_samples", "16",
    "--num_variation_images", "8",
    "--num_validation_images", "4",
    "--report_to", "none",
    "--max_train_steps", "4",
    "--checkpointing_steps", "2",
    "--validation_steps", "4",
]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory):
    """A tiny CLIP folder (model and processor) and tiny configs of the decoder and both priors."""
    folder = tmp_path_factory.mktemp("unclip")
    clip, processor = tiny_clip()
    clip.save_pretrained(folder / "clip")
    processor.save_pretrained(folder / "clip")
    tiny_decoder().save_config(folder / "decoder")
    PriorTransformer(num_attention_heads=2, attention_head_dim=8, num_layers=1).save_config(folder / "prior")
    hfgen.UnCLIPRegressionPriorConfig(hidden_size=16, num_hidden_layers=1).save_pretrained(folder / "regression")
    return folder


def tiny_flags(tiny_folders) -> list:
    return [
        "--clip_model_name_or_path", tiny_folders / "clip",
        "--decoder_config_name_or_path", tiny_folders / "decoder",
        "--prior_config_name_or_path", tiny_folders / "prior",
        "--regression_prior_config_name_or_path", tiny_folders / "regression",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def unclip_run(tmp_path_factory, tiny_folders, launch_script):
    """Four steps on the digits: the uninterrupted reference run (given a Hub token it must not write anywhere)."""
    output_dir = tmp_path_factory.mktemp("unclip-run") / "run"
    arguments = ["--output_dir", output_dir, *tiny_flags(tiny_folders), *TINY_RUN, "--hub_token", TOKEN]
    result = launch_script("train_unclip.py", *arguments)
    return output_dir, result


def test_the_folder_is_an_unclip_pipeline_with_its_card_and_no_token(unclip_run, tiny_folders):
    output_dir, result = unclip_run
    for name in ("README.md", "samples.png", "variations.png", "metrics.json", "training_args.json"):
        assert (output_dir / name).is_file(), name
    assert f"Hub-ready folder: {output_dir}" in result.stdout
    width, height = Image.open(output_dir / "samples.png").size
    assert width * 8 == height * 10  # eight full rows, a column per digit
    for root, _, files in os.walk(output_dir):
        for name in files:
            with open(os.path.join(root, name), "rb") as file:
                assert TOKEN.encode() not in file.read(), f"the token was written to {name}"
    pipeline = hfgen.UnCLIPPipeline.from_pretrained(output_dir)
    assert type(pipeline.prior) is PriorTransformer and type(pipeline.prior_scheduler).__name__ == "UnCLIPScheduler"
    generic = DiffusionPipeline.from_pretrained(output_dir, trust_remote_code=True)
    assert type(generic) is hfgen.UnCLIPPipeline
    # the frozen CLIP towers are the given CLIP's, unchanged
    clip = load_file(tiny_folders / "clip" / "model.safetensors")
    saved = load_file(output_dir / "image_encoder" / "model.safetensors")
    assert all(torch.equal(clip[name], saved[name]) for name in saved)
    # the prior's standardisation is that of the training digits' embeddings, not a trained (or zero) value
    assert pipeline.prior.clip_std.min() > 0
    pipeline.set_progress_bar_config(disable=True)
    arguments = dict(generator=seeded(0), num_inference_steps=2, prior_num_inference_steps=2)
    assert pipeline(prompt="the digit seven", **arguments).images[0].size == (16, 16)
    digit = Image.new("L", (16, 16))
    assert len(pipeline(image=digit, num_images_per_prompt=2, **arguments).images) == 2
    card = ModelCard.load(output_dir / "README.md")
    assert "hfgen.UnCLIPPipeline.from_pretrained" in card.text and "variations.png" in card.text
    assert card.data.pipeline_tag == "text-to-image"
    results = {result.metric_type for result in card.data.eval_results}
    assert {"diffusion_prior_cosine", "regression_prior_cosine", "text_embedding_cosine", "clip_score"} <= results
    assert {"class_accuracy", "fid", "variation_similarity", "same_class_similarity"} <= results


def test_the_metrics_and_their_baselines(unclip_run):
    output_dir, _ = unclip_run
    record = json.loads((output_dir / "metrics.json").read_text())
    assert record["step"] == 4 and record["protocol"]["split"] == "test"
    metrics = record["metrics"]
    # the digits' ten classes are balanced among the 360 held-out images: chance retrieval is a tenth
    assert metrics["retrieval_chance"] == pytest.approx(0.1, abs=0.002)
    for name in ("diffusion_prior_cosine", "regression_prior_cosine", "text_embedding_cosine", "variation_similarity"):
        assert -1 <= metrics[name] <= 1, name
    assert 0 <= metrics["clip_score"] <= 100 and 0 <= metrics["class_accuracy"] <= 1
    # two images of one class are closer in CLIP's space than two of different classes, even for a random CLIP
    assert metrics["same_class_similarity"] > metrics["different_class_similarity"]


def test_resume_continues_exactly(tmp_path, unclip_run, tiny_folders, launch_script):
    reference_dir, _ = unclip_run
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copytree(reference_dir / "checkpoint-2", resumed_dir / "checkpoint-2")
    launch_script(
        "train_unclip.py",
        "--output_dir", resumed_dir, *tiny_flags(tiny_folders), *TINY_RUN, "--resume_from_checkpoint", "latest",
    )  # fmt: skip
    # the saved models are the EMA's averages: equal only if the averages, the weights and the noise resumed exactly
    for part, file in (("decoder", "diffusion_pytorch_model"), ("prior", "diffusion_pytorch_model")):
        reference = load_file(reference_dir / part / f"{file}.safetensors")
        resumed = load_file(resumed_dir / part / f"{file}.safetensors")
        for name in reference:
            torch.testing.assert_close(resumed[name], reference[name], rtol=0, atol=1e-6, msg=f"{part}.{name}")


def test_hfgen_evaluate_sample_and_the_demo_use_the_folder(unclip_run, tmp_path, capsys):
    from hfgen.cli import main
    from hfgen.demo import build_demo
    from hfgen.pipelines.unclip.demo import unclip_arguments

    output_dir, _ = unclip_run
    printed, record = evaluate_saved_copy(output_dir, tmp_path / "copy", capsys)
    assert printed["protocol"] == record["protocol"]
    # the folder holds the diffusion prior only: every other number is measured again as the run measured it
    expected = {name: value for name, value in record["metrics"].items() if not name.startswith("regression")}
    assert printed["metrics"] == pytest.approx(expected, **SAME_SAMPLES)
    Image.new("L", (20, 20), 255).save(tmp_path / "input.png")
    for flags in (["--prompt", "the digit one"], ["--images", str(tmp_path / "input.png")]):
        grid = tmp_path / f"{flags[0][2:]}.png"
        assert main(["sample", str(output_dir), *flags, "--num_images", "2", "--output", str(grid)]) == 0
        assert "2 images from UnCLIPPipeline" in capsys.readouterr().out
    for flags in ([], ["--prompt", "the digit one", "--images", str(tmp_path / "input.png")]):
        assert main(["sample", str(output_dir), *flags, "--output", str(tmp_path / "grid.png")]) != 0
        assert 'pass --prompt "..." or --images, one of them' in capsys.readouterr().err
    assert type(build_demo(str(output_dir))).__name__ == "Blocks"
    assert unclip_arguments("the digit two", None, 2.0, 3.0, 5)["prompt"] == "the digit two"
    assert unclip_arguments("", "an image", 2.0, 3.0, 5) == {"image": "an image", "guidance_scale": 3.0,
                                                           "num_inference_steps": 5}  # fmt: skip


def test_a_users_folder_with_captions_and_the_one_line_errors(tmp_path, tiny_folders):
    folder = tmp_path / "drawings"
    folder.mkdir()
    lines = []
    for index in range(12):
        Image.new("RGB", (20 + index, 24), (20 * index, 80, 200)).save(folder / f"{index}.png")
        lines.append(json.dumps({"file_name": f"{index}.png", "text": f"a blue square number {index}"}))
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    # the default decoder, built for the folder's RGB images
    flags = [*tiny_flags(tiny_folders)[:2], *tiny_flags(tiny_folders)[4:], "--resolution", "16"]
    flags += ["--output_dir", tmp_path / "out"]
    report = json.loads(dry_run("train_unclip.py", "--train_data_dir", folder, "--caption_column", "text", *flags))
    assert report["args"]["train_data_dir"] == str(folder) and report["args"]["color_mode"] == "RGB"
    # the priors are sized from the CLIP model: 16-wide embeddings, the 8 tokens of its tokenizer
    assert report["prior_config"]["embedding_dim"] == 16 and report["prior_config"]["num_embeddings"] == 8
    assert report["regression_prior_config"]["embedding_dim"] == 16
    assert report["decoder_config"]["out_channels"] == 3 and report["decoder_config"]["encoder_hid_dim"] == 16
    # the one-line errors: a missing or wrong CLIP folder, data without captions, impossible flags
    script = import_script("train_unclip.py")
    assert "the following arguments are required: --clip_model_name_or_path" in parse_error(script)
    assert "--prior_num_inference_steps 200 is more than the 100 of --prior_num_train_timesteps" in parse_error(
        script, "--clip_model_name_or_path", "x", "--prior_num_train_timesteps", "100",
        "--prior_num_inference_steps", "200",
    )  # fmt: skip
    with pytest.raises(
        ValueError, match="--clip_model_name_or_path .* is not a CLIP model with its processor"
    ) as info:
        dry_run("train_unclip.py", "--clip_model_name_or_path", tiny_folders / "decoder", "--output_dir", tmp_path)
    assert "\n" not in str(info.value)
    (folder / "metadata.jsonl").unlink()
    with pytest.raises(ValueError, match="has neither class labels nor captions") as info:
        dry_run("train_unclip.py", "--train_data_dir", folder, *flags)
    assert "\n" not in str(info.value)
