"""train_dreambooth_lora.py run as users run it: a few instance images, prior preservation with class images drawn by
the base model, several subjects from a concepts list, LoRA files that hold only LoRA weights, and exact resume."""

import argparse
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

import hfgen
from hfgen.testing.pipeline_tester import seeded

from .conftest import evaluate_saved_copy, import_script, parse_error
from .test_train_diffusion import SAME_SAMPLES
from .test_user_errors import assert_one_line_error, run_directly

TINY_DREAMBOOTH_RUN = [
    "--train_batch_size",
    "2",
    "--num_eval_samples",
    "4",
    "--num_validation_images",
    "2",
    "--num_inference_steps",
    "2",
    "--report_to",
    "none",
]


def write_images(folder, batch: torch.Tensor) -> None:
    folder.mkdir(parents=True)
    for index, image in enumerate(((batch[:, 0] + 1) * 127.5).round().to(torch.uint8).numpy()):
        Image.fromarray(image).save(folder / f"{index}.png")


@pytest.fixture(scope="module")
def subjects(tmp_path_factory, digit_batch):
    """Two small subjects: three zeros, and three ones drawn bold (inverted)."""
    folder = tmp_path_factory.mktemp("subjects")
    write_images(folder / "zeros", digit_batch[[0, 1, 0]])
    write_images(folder / "ones", -digit_batch[[2, 3, 2]])
    return folder


def reference_run(base, subjects) -> list:
    """The subject, prior preservation and text-encoder LoRA of the reference run (and of its resumed copy)."""
    return [
        "--pretrained_model_name_or_path",
        base,
        "--instance_data_dir",
        subjects / "zeros",
        "--instance_prompt",
        "a sks digit",
        "--with_prior_preservation",
        "--class_prompt",
        "a handwritten digit",
        "--num_class_images",
        "3",
        "--train_text_encoder",
    ]


@pytest.fixture(scope="module")
def dreambooth_run(tmp_path_factory, tiny_ldm_folder, subjects, launch_script):
    """Four steps with prior preservation and text-encoder LoRA, checkpoints every two: the reference run."""
    output_dir = tmp_path_factory.mktemp("dreambooth") / "run"
    result = launch_script(
        "train_dreambooth_lora.py",
        *reference_run(tiny_ldm_folder, subjects),
        "--output_dir",
        output_dir,
        "--max_train_steps",
        "4",
        "--checkpointing_steps",
        "2",
        "--validation_steps",
        "2",
        *TINY_DREAMBOOTH_RUN,
    )
    return output_dir, result


def test_dreambooth_writes_lora_weights_that_reload_to_the_same_images(dreambooth_run, tiny_ldm_folder):
    output_dir, result = dreambooth_run
    assert sorted(path.name for path in (output_dir / "class_images" / "0").iterdir()) == [
        f"class-0000{index}.png" for index in range(3)
    ]
    with safe_open(output_dir / "pytorch_lora_weights.safetensors", "pt") as weights:
        keys = list(weights.keys())
        metadata = json.loads(weights.metadata()["lora_adapter_metadata"])
    assert all(".lora" in key for key in keys)
    assert any(key.startswith("unet.") for key in keys) and any(key.startswith("text_encoder.") for key in keys)
    assert metadata["unet.r"] == 4 and metadata["text_encoder.r"] == 4
    assert not list(output_dir.glob("*/diffusion_pytorch_model.safetensors"))  # no full model copied
    metrics = json.loads((output_dir / "metrics.json").read_text())["metrics"]
    assert {"instance_fidelity", "instance_fidelity_base", "class_drift"} <= set(metrics)
    assert "of the UNet's" in result.stderr + result.stdout  # the share of trained parameters is logged
    card = (output_dir / "README.md").read_text()
    assert "`a sks digit`" in card and "load_lora_weights" in card and "Prior preservation was on" in card

    def sample(lora):
        pipeline = hfgen.LatentDiffusionPipeline.from_pretrained(tiny_ldm_folder)
        pipeline.set_progress_bar_config(disable=True)
        if lora:
            pipeline.load_lora_weights(output_dir)
        return pipeline("a sks digit", num_inference_steps=2, output_type="pt", generator=seeded(0)).images

    adapted = sample(lora=True)
    assert torch.equal(adapted, sample(lora=True))
    assert not torch.allclose(adapted, sample(lora=False), atol=1e-7)


def test_the_lora_folder_samples_and_serves_on_its_recorded_base(dreambooth_run, tmp_path, capsys):
    from PIL import Image

    from hfgen.cli import main
    from hfgen.demo import build_demo

    output_dir, _ = dreambooth_run
    prompt = json.loads((output_dir / "training_args.json").read_text())["instance_prompt"]
    output = tmp_path / "grid.png"
    command = ["sample", str(output_dir), "--prompt", prompt, "--num_inference_steps", "2", "--num_images", "2"]
    assert main([*command, "--output", str(output)]) == 0
    assert "2 images from LatentDiffusionPipeline (seeds 0 to 1)" in capsys.readouterr().out
    assert Image.open(output).size[0] == 2 * Image.open(output).size[1]
    assert type(build_demo(str(output_dir))).__name__ == "Blocks"  # latent diffusion's demo, on the base


def test_hfgen_evaluate_measures_the_lora_weights_on_their_base_as_the_run_did(
    dreambooth_run, subjects, tmp_path, capsys
):
    from huggingface_hub import ModelCard

    from hfgen.cli import RUN_DEFAULTS, main
    from hfgen.pipelines.latent_diffusion.evaluation import run_subjects

    output_dir, _ = dreambooth_run
    folder = tmp_path / "dreambooth"
    # no flag: the base, the subject's images, prompts and sampling all come from training_args.json
    printed, record = evaluate_saved_copy(output_dir, folder, capsys)
    assert printed["metrics"] == pytest.approx(record["metrics"], **SAME_SAMPLES)
    assert printed["protocol"] == record["protocol"]
    results = {result.metric_type: result for result in ModelCard.load(folder / "README.md").data.eval_results}
    assert results["instance_fidelity"].metric_value == pytest.approx(record["metrics"]["instance_fidelity"])
    assert {"instance_fidelity_base", "class_drift"} <= results.keys()

    # data it cannot be measured on, and a folder without the record naming its base: one line each
    assert main(["evaluate", str(folder), "--dataset_name", "hfgen/digits"]) == 2
    assert "--dataset_name: DreamBooth weights are measured against a folder" in capsys.readouterr().err
    assert main(["evaluate", str(folder), "--train_data_dir", str(tmp_path / "gone")]) == 2
    assert "--train_data_dir names the subject's images" in capsys.readouterr().err
    # the run's own images, moved away since
    recorded = json.loads((folder / "training_args.json").read_text())
    run = argparse.Namespace(**{**RUN_DEFAULTS, **recorded, "instance_data_dir": str(tmp_path / "moved")})
    with pytest.raises(ValueError, match="the run's training_args.json names the subject's images .*moved"):
        run_subjects(run)
    (folder / "training_args.json").unlink()
    assert main(["evaluate", str(folder), "--train_data_dir", str(subjects / "zeros")]) == 2
    error = capsys.readouterr().err
    assert "holds LoRA weights but not the base pipeline" in error and len(error.strip().splitlines()) == 1


def test_dreambooth_resume_continues_exactly(tmp_path, dreambooth_run, tiny_ldm_folder, subjects, launch_script):
    reference_dir, _ = dreambooth_run
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copytree(reference_dir / "checkpoint-2", resumed_dir / "checkpoint-2")
    shutil.copytree(reference_dir / "class_images", resumed_dir / "class_images")
    launch_script(
        "train_dreambooth_lora.py",
        *reference_run(tiny_ldm_folder, subjects),
        "--output_dir",
        resumed_dir,
        "--max_train_steps",
        "4",
        "--checkpointing_steps",
        "2",
        "--validation_steps",
        "2",
        *TINY_DREAMBOOTH_RUN,
        "--resume_from_checkpoint",
        "latest",
    )
    reference = load_file(reference_dir / "pytorch_lora_weights.safetensors")
    resumed = load_file(resumed_dir / "pytorch_lora_weights.safetensors")
    assert reference.keys() == resumed.keys()
    for key in reference:
        torch.testing.assert_close(resumed[key], reference[key], rtol=0, atol=1e-6, msg=key)


def test_a_concepts_list_trains_several_subjects(tmp_path, tiny_ldm_folder, subjects, launch_script):
    concepts = [
        {"instance_prompt": "a sks digit", "instance_data_dir": str(subjects / "zeros")},
        {"instance_prompt": "a zwx digit", "instance_data_dir": str(subjects / "ones")},
    ]
    concepts_file = tmp_path / "concepts.json"
    concepts_file.write_text(json.dumps(concepts))
    output_dir = tmp_path / "run"
    launch_script(
        "train_dreambooth_lora.py",
        "--pretrained_model_name_or_path",
        tiny_ldm_folder,
        "--concepts_list",
        concepts_file,
        "--output_dir",
        output_dir,
        "--max_train_steps",
        "2",
        "--lora_target_modules",
        "to_q",
        "to_v",
        *TINY_DREAMBOOTH_RUN,
    )
    record = json.loads((output_dir / "metrics.json").read_text())
    assert record["protocol"]["instance_images"] == [3, 3]
    assert [subject["instance_prompt"] for subject in record["protocol"]["subjects"]] == ["a sks digit", "a zwx digit"]
    assert "class_drift" not in record["metrics"] and not (output_dir / "class_images").exists()
    with safe_open(output_dir / "pytorch_lora_weights.safetensors", "pt") as weights:
        keys = list(weights.keys())
    assert keys and all(key.startswith("unet.") and (".to_q." in key or ".to_v." in key) for key in keys)
    card = (output_dir / "README.md").read_text()
    assert "2 subjects" in card and "`a zwx digit`" in card
    grid = Image.open(output_dir / "samples.png")
    assert np.asarray(grid).std() > 0


def test_wrong_dreambooth_inputs_are_one_line(tmp_path, tiny_ldm_folder, subjects):
    wrong = tmp_path / "wrong"
    base = ["--pretrained_model_name_or_path", tiny_ldm_folder, "--output_dir", wrong]
    script = import_script("train_dreambooth_lora.py")
    assert "--instance_data_dir and --instance_prompt" in parse_error(
        script, *base, "--instance_prompt", "a sks digit"
    )
    instance = ["--instance_data_dir", subjects / "zeros", "--instance_prompt", "a sks digit"]
    error = parse_error(script, *base, *instance, "--with_prior_preservation")
    assert "--with_prior_preservation needs --class_prompt" in error
    concepts_file = tmp_path / "concepts.json"
    concepts_file.write_text(json.dumps([{"instance_prompt": "a sks digit", "instance_dir": "x"}]))
    error = parse_error(script, *base, "--concepts_list", concepts_file, *instance[2:])
    assert "--concepts_list lists the subjects: leave out --instance_prompt" in error
    args = script.parse_args([str(item) for item in (*base, "--concepts_list", concepts_file)])
    with pytest.raises(ValueError, match=r"--concepts_list entry 0 has unknown key\(s\) instance_dir"):
        script.read_concepts(args)
    concepts_file.write_text("[{")
    with pytest.raises(ValueError, match="is not valid JSON"):
        script.read_concepts(args)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "0.png").write_bytes(b"not a png")
    result = run_directly("train_dreambooth_lora.py", *base, "--instance_data_dir", broken, *instance[2:])
    assert_one_line_error(result, "cannot read image file", "0.png")
