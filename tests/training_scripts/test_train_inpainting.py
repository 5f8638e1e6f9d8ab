"""train_inpainting.py run as users run it on a tiny train_ldm.py-style base: the inpainting folder it writes (the base
UNet widened, its new channels trained), the figures beside latent blending and the unfilled input, exact resume,
`hfgen evaluate` / `hfgen sample` / the demo on the folder, a user's own folder with a token that never reaches a file,
and the one-line errors."""

import json
import shutil

import pytest
import torch
from huggingface_hub import ModelCard
from PIL import Image
from safetensors.torch import load_file

import hfgen
from hfgen.model_card import render_model_card
from hfgen.testing.pipeline_tester import seeded

from .conftest import TINY_RUN, dry_run, evaluate_saved_copy, import_script, parse_error
from .test_secrets import FAKE_TOKEN, files_containing
from .test_train_diffusion import SAME_SAMPLES

# Three steps with a checkpoint and a validation at two, two DDIM steps in the metrics.
TINY_INPAINTING_RUN = [
    *TINY_RUN,
    "--max_train_steps",
    "3",
    "--checkpointing_steps",
    "2",
    "--validation_steps",
    "2",
    "--num_inference_steps",
    "2",
    "--report_to",
    "none",
]


def launch_run(launch_script, base, output_dir, *extra):
    return launch_script(
        "train_inpainting.py",
        "--pretrained_model_name_or_path",
        base,
        "--output_dir",
        output_dir,
        *TINY_INPAINTING_RUN,
        *extra,
    )


@pytest.fixture(scope="module")
def inpainting_run(tmp_path_factory, tiny_ldm_folder, launch_script):
    output_dir = tmp_path_factory.mktemp("inpainting") / "run"
    result = launch_run(
        launch_script, tiny_ldm_folder, output_dir, "--report_to", "tensorboard", "--hub_token", FAKE_TOKEN
    )
    return output_dir, result


def test_the_folder_is_the_base_widened_into_an_inpainting_model(inpainting_run, tiny_ldm_folder):
    output_dir, result = inpainting_run
    assert f"Hub-ready folder: {output_dir}" in result.stdout
    assert (output_dir / "validation" / "step-000002-inpainting.png").is_file()
    # the token given on the command line reached no file (card, records, TensorBoard events, checkpoints)
    assert list(output_dir.glob("logs/**/*tfevents*")) and (output_dir / "checkpoint-2").is_dir()
    assert files_containing(output_dir, FAKE_TOKEN) == [] and FAKE_TOKEN not in result.stdout + result.stderr
    pipeline = hfgen.LatentDiffusionInpaintPipeline.from_pretrained(output_dir)
    pipeline.set_progress_bar_config(disable=True)
    assert pipeline.unet.config.in_channels == 9 and type(pipeline.scheduler).__name__ == "DDIMScheduler"
    base = load_file(f"{tiny_ldm_folder}/unet/diffusion_pytorch_model.safetensors")
    trained = load_file(output_dir / "unet" / "diffusion_pytorch_model.safetensors")
    assert set(base) == set(trained)
    # the mask and masked-image channels started at zero and were trained; the first stage stayed frozen
    assert trained["conv_in.weight"][:, 4:].abs().max() > 0
    assert not torch.equal(trained["conv_in.weight"][:, :4], base["conv_in.weight"])
    base_vae = load_file(f"{tiny_ldm_folder}/vae/model.safetensors")
    saved_vae = load_file(output_dir / "vae" / "model.safetensors")
    assert all(torch.equal(base_vae[name], saved_vae[name]) for name in base_vae)
    image = Image.new("L", (16, 16), 0)
    mask = Image.new("L", (16, 16), 0)
    mask.paste(255, (4, 4, 12, 12))
    result = pipeline("a handwritten digit three", image=image, mask_image=mask, num_inference_steps=2).images[0]
    assert result.size == (16, 16) and result.getpixel((0, 0)) == 0  # outside the mask: the input's own pixels
    card = (output_dir / "README.md").read_text()
    assert "the new input channels starting at zero" in card and "latent blending (same masks" in card
    # a run that continues an inpainting folder says so, with no widening and no latent blending baseline
    values = {
        "repo_id_or_path": "x", "protocol": {}, "samples_image": "samples.png", "example_prompt": "",
        "training_args": json.loads((output_dir / "training_args.json").read_text()), "class_preservation": False,
        "unet_config": json.loads((output_dir / "unet" / "config.json").read_text()), "widened": False,
    }  # fmt: skip
    card = str(render_model_card("inpainting", "x", [], "image-to-image", template_values=values))
    assert "It continues the inpainting model" in card and "The baseline is the masked input" in card
    assert "starting at zero" not in card and "latent blending (same masks" not in card


def test_the_figures_stand_beside_latent_blending_and_the_unfilled_input(inpainting_run, tiny_ldm_folder):
    output_dir, _ = inpainting_run
    record = json.loads((output_dir / "metrics.json").read_text())
    metrics, protocol = record["metrics"], record["protocol"]
    assert record["step"] == 3 and protocol["split"] == "test" and protocol["num_real_samples"] == 40
    for prefix in ("", "blending_", "unfilled_"):
        assert {f"{prefix}fid", f"{prefix}class_accuracy"} <= set(metrics), prefix
        assert 0 <= metrics[f"{prefix}class_accuracy"] <= 1
    # the first stage alone bounds what latent blending keeps outside the mask; an untrained inpainter keeps less
    assert metrics["blending_psnr_outside"] > metrics["psnr_outside"]
    assert "unfilled_psnr_outside" not in metrics  # the unfilled input is the original there
    assert protocol["blending"].startswith(f"the plain latent diffusion model {tiny_ldm_folder}")
    assert protocol["prompts"] == "'a handwritten digit {}' with each image's own class"
    card = ModelCard.load(output_dir / "README.md")
    assert "hfgen.LatentDiffusionInpaintPipeline.from_pretrained" in card.text and "9 input channels" in card.text
    assert card.data.pipeline_tag == "image-to-image" and "inpainting" in card.data.tags
    results = {result.metric_type: result for result in card.data.eval_results}
    assert {"fid", "class_accuracy", "psnr_outside", "blending_fid", "unfilled_class_accuracy"} <= set(results)
    assert results["fid"].dataset_name == "hfgen/digits (test)"


def test_resume_continues_exactly_including_the_ema(tmp_path, inpainting_run, tiny_ldm_folder, launch_script):
    reference_dir, _ = inpainting_run
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copytree(reference_dir / "checkpoint-2", resumed_dir / "checkpoint-2")
    launch_run(launch_script, tiny_ldm_folder, resumed_dir, "--resume_from_checkpoint", "latest")
    # the saved UNet is the EMA's average: equal only if the average, the weights, the masks and the noise resumed
    reference = load_file(reference_dir / "unet" / "diffusion_pytorch_model.safetensors")
    resumed = load_file(resumed_dir / "unet" / "diffusion_pytorch_model.safetensors")
    for name in reference:
        torch.testing.assert_close(resumed[name], reference[name], rtol=0, atol=1e-6, msg=name)


def test_hfgen_evaluate_sample_and_demo_on_the_folder(inpainting_run, tmp_path, capsys):
    from hfgen.cli import main
    from hfgen.demo import build_demo
    from hfgen.pipelines.inpainting.demo import inpaint_upload

    output_dir, _ = inpainting_run
    printed, record = evaluate_saved_copy(output_dir, tmp_path / "copy", capsys)
    assert printed["protocol"] == record["protocol"]
    assert printed["metrics"] == pytest.approx(record["metrics"], **SAME_SAMPLES)

    image = Image.fromarray((torch.rand(16, 16, generator=seeded(0)) * 255).byte().numpy(), mode="L")
    mask = Image.new("L", (16, 16), 0)
    mask.paste(255, (0, 8, 16, 16))
    image.save(tmp_path / "image.png")
    mask.save(tmp_path / "mask.png")
    arguments = ["sample", str(output_dir), "--prompt", "a handwritten digit two", "--num_images", "2"]
    arguments += ["--num_inference_steps", "2", "--output", str(tmp_path / "grid.png")]
    assert main([*arguments, "--images", str(tmp_path / "image.png"), str(tmp_path / "mask.png")]) == 0
    assert "2 images from LatentDiffusionInpaintPipeline" in capsys.readouterr().out
    grid = Image.open(tmp_path / "grid.png")
    assert list(grid.crop((0, 0, 16, 8)).getdata()) == list(image.crop((0, 0, 16, 8)).convert(grid.mode).getdata())
    assert main([*arguments, "--images", str(tmp_path / "image.png")]) == 2
    assert "repaints an image: pass --images <image file> <mask file>" in capsys.readouterr().err

    pipeline = hfgen.LatentDiffusionInpaintPipeline.from_pretrained(output_dir)
    pipeline.set_progress_bar_config(disable=True)
    shown, result = inpaint_upload(pipeline, Image.new("RGB", (40, 30), "white"), "", (0, 0, 0.5, 1), 0, 1.0, 2)
    assert shown.size == result.size == (16, 16)
    assert shown.getpixel((2, 2)) == 128 and result.getpixel((12, 2)) == 255  # the hole grey; the rest kept
    assert type(build_demo(str(output_dir))).__name__ == "Blocks"


def test_a_users_folder_of_unlabelled_images(tmp_path, inpainting_run, tiny_ldm_folder, capsys):
    from .conftest import hfgen_evaluate

    output_dir, _ = inpainting_run
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(12):
        Image.new("RGB", (20 + index, 24), (10 * index, 80, 200)).save(folder / f"{index}.png")
    report = json.loads(
        dry_run(
            "train_inpainting.py",
            "--pretrained_model_name_or_path", tiny_ldm_folder, "--train_data_dir", folder, "--output_dir", tmp_path,
        )
    )  # fmt: skip
    # the base decides the size and colours; the images are read as it takes them
    assert report["args"]["color_mode"] == "L" and report["args"]["resolution"] == 16
    assert report["data"] == {"train": 12}
    # measured on them: no labels, so no class preservation; no extractor for the data, so no FID
    printed = hfgen_evaluate(capsys, output_dir, "--train_data_dir", folder)
    assert {"psnr_outside", "blending_psnr_outside"} <= set(printed["metrics"])
    assert not {"class_accuracy", "fid", "unprompted_psnr_outside"} & set(printed["metrics"])
    assert printed["protocol"]["dataset"] == str(folder) and printed["protocol"]["num_real_samples"] == 4


def test_one_line_errors(tmp_path, tiny_ldm_folder):
    script = import_script("train_inpainting.py")
    assert "the following arguments are required: --pretrained_model_name_or_path" in parse_error(script)
    assert "--full_mask_probability" in parse_error(
        script, "--pretrained_model_name_or_path", tiny_ldm_folder, "--full_mask_probability", "1.5"
    )
    with pytest.raises(ValueError, match="--resolution 32 but the base model makes 16px images") as error:
        dry_run(
            "train_inpainting.py",
            "--pretrained_model_name_or_path", tiny_ldm_folder, "--resolution", "32", "--output_dir", tmp_path,
        )  # fmt: skip
    assert "\n" not in str(error.value)
    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / "config.json").write_text("{}")  # a CLIP folder, not a latent diffusion one
    with pytest.raises(ValueError, match="--pretrained_model_name_or_path .* has no unet/config.json: give a latent"):
        dry_run("train_inpainting.py", "--pretrained_model_name_or_path", tmp_path / "clip", "--output_dir", tmp_path)
    report = json.loads(
        dry_run("train_inpainting.py", "--pretrained_model_name_or_path", tiny_ldm_folder, "--output_dir", tmp_path)
    )
    assert report["unet_config"]["in_channels"] == 9 and report["args"]["resolution"] == 16


def test_an_inpainting_folder_continues_as_it_is(inpainting_run, tmp_path):
    output_dir, _ = inpainting_run
    report = json.loads(
        dry_run("train_inpainting.py", "--pretrained_model_name_or_path", output_dir, "--output_dir", tmp_path)
    )
    assert report["unet_config"]["in_channels"] == 9  # not widened a second time
    script = import_script("train_inpainting.py")
    components, plain = script.load_base(script.parse_args(["--pretrained_model_name_or_path", str(output_dir)]))
    trained = load_file(output_dir / "unet" / "diffusion_pytorch_model.safetensors")
    assert plain is None and torch.equal(components["unet"].conv_in.weight, trained["conv_in.weight"])
