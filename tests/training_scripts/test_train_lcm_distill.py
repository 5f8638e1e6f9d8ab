"""train_lcm_distill.py run as users run it on a tiny train_ldm.py-style teacher: a full LCM folder that samples with
LCMScheduler, LCM-LoRA weights that load onto the teacher, the teacher's figures beside the student's, exact resume
with the target network, and the consistency function trained being the one LCMScheduler samples with."""

import json
import shutil

import pytest
import torch
from diffusers import LCMScheduler
from safetensors import safe_open
from safetensors.torch import load_file

import hfgen
from hfgen.pipelines.latent_diffusion.pipeline_latent_diffusion import guidance_embedding
from hfgen.testing.pipeline_tester import seeded

from .conftest import TINY_RUN, dry_run, evaluate_saved_copy, import_script, parse_error
from .test_train_diffusion import SAME_SAMPLES

PROMPT = "a handwritten digit three"
# Three steps with a checkpoint at two, small evaluations, the student also measured at one step.
TINY_LCM_RUN = [
    *TINY_RUN,
    "--max_train_steps",
    "3",
    "--checkpointing_steps",
    "2",
    "--extra_steps",
    "1",
    "--report_to",
    "none",
]


@pytest.fixture(scope="module")
def lcm_run(tmp_path_factory, tiny_ldm_folder, launch_script):
    output_dir = tmp_path_factory.mktemp("lcm") / "run"
    launch_script(
        "train_lcm_distill.py",
        "--pretrained_model_name_or_path",
        tiny_ldm_folder,
        "--output_dir",
        output_dir,
        *TINY_LCM_RUN,
    )
    return output_dir


@pytest.fixture(scope="module")
def lcm_lora_run(tmp_path_factory, tiny_ldm_folder, launch_script):
    output_dir = tmp_path_factory.mktemp("lcm-lora") / "run"
    launch_script(
        "train_lcm_distill.py",
        "--pretrained_model_name_or_path",
        tiny_ldm_folder,
        "--output_dir",
        output_dir,
        "--use_lora",
        "--lora_rank",
        "4",
        "--skip_teacher_metrics",
        *TINY_LCM_RUN,
    )
    return output_dir


def test_the_full_lcm_folder_samples_with_lcm_scheduler_and_its_guidance_embedding(lcm_run, tiny_ldm_folder):
    pipeline = hfgen.LatentDiffusionPipeline.from_pretrained(lcm_run)
    pipeline.set_progress_bar_config(disable=True)
    assert type(pipeline.scheduler) is LCMScheduler
    assert pipeline.scheduler.config.original_inference_steps == 50
    assert pipeline.unet.config.time_cond_proj_dim == 256
    # the student was trained from the teacher's weights: every shared tensor moved, the guidance projection left 0
    teacher = hfgen.LatentDiffusionPipeline.from_pretrained(tiny_ldm_folder).unet.state_dict()
    student = pipeline.unet.state_dict()
    assert set(student) - set(teacher) == {"time_embedding.cond_proj.weight"}
    assert student["time_embedding.cond_proj.weight"].abs().max() > 0
    assert not torch.equal(student["conv_in.weight"], teacher["conv_in.weight"])
    images = pipeline(PROMPT, num_inference_steps=4, output_type="pt", generator=seeded(0)).images
    assert images.shape == (1, 1, 16, 16) and torch.isfinite(images).all()

    record = json.loads((lcm_run / "metrics.json").read_text())
    metrics = record["metrics"]
    assert {"fid", "class_accuracy", "fid_1_steps", "class_accuracy_1_steps", "teacher_fid"} <= set(metrics)
    assert {"teacher_class_accuracy", "images_per_second", "teacher_images_per_second"} <= set(metrics)
    # 4 single passes against 25 guided (double) ones
    assert metrics["sampling_speedup"] == pytest.approx(
        metrics["images_per_second"] / metrics["teacher_images_per_second"]
    )
    assert metrics["sampling_speedup"] > 2
    assert record["protocol"]["sampler"].startswith("LCMScheduler, 4 steps (also 1)")
    card = (lcm_run / "README.md").read_text()
    assert "latent consistency model" in card and "teacher FID, 25 DDIM steps" in card and "LCMScheduler" in card
    assert "latent-consistency-model" in card and "lcm-lora" not in card


def test_hfgen_evaluate_measures_the_lcm_folder_as_the_run_did(lcm_run, tmp_path, capsys):
    printed, record = evaluate_saved_copy(lcm_run, tmp_path / "lcm", capsys)
    assert printed["metrics"]["fid"] == pytest.approx(record["metrics"]["fid"], **SAME_SAMPLES)
    assert printed["metrics"]["class_accuracy"] == pytest.approx(record["metrics"]["class_accuracy"], **SAME_SAMPLES)
    assert printed["protocol"]["sampler"] == "LCMScheduler, 4 steps, guidance scale 3.0"


def test_lcm_lora_weights_load_onto_the_teacher_and_serve_with_their_scheduler(
    lcm_lora_run, tiny_ldm_folder, tmp_path, capsys
):
    from hfgen.families import load_folder_pipeline

    with safe_open(lcm_lora_run / "pytorch_lora_weights.safetensors", "pt") as weights:
        keys = list(weights.keys())
    assert keys and all(key.startswith("unet.") and ".lora" in key for key in keys)
    assert not list(lcm_lora_run.glob("*/diffusion_pytorch_model.safetensors"))  # no full model copied
    assert json.loads((lcm_lora_run / "training_args.json").read_text())["guidance_scale"] == 1.0

    # by hand, as the card says: the teacher, the adapters, the LCMScheduler saved beside them
    pipeline = hfgen.LatentDiffusionPipeline.from_pretrained(tiny_ldm_folder)
    pipeline.set_progress_bar_config(disable=True)
    teacher_images = pipeline(PROMPT, guidance_scale=1.0, num_inference_steps=4, output_type="pt", generator=seeded(0))
    pipeline.load_lora_weights(lcm_lora_run)
    pipeline.scheduler = LCMScheduler.from_pretrained(lcm_lora_run, subfolder="scheduler")
    by_hand = pipeline(PROMPT, guidance_scale=1.0, num_inference_steps=4, output_type="pt", generator=seeded(0))
    assert not torch.allclose(by_hand.images, teacher_images.images, atol=1e-6)
    # what hfgen sample / evaluate / demo load: the same
    served = load_folder_pipeline(str(lcm_lora_run))
    assert type(served.scheduler) is LCMScheduler
    again = served(PROMPT, guidance_scale=1.0, num_inference_steps=4, output_type="pt", generator=seeded(0))
    torch.testing.assert_close(again.images, by_hand.images, rtol=0, atol=1e-6)

    printed, record = evaluate_saved_copy(lcm_lora_run, tmp_path / "lcm-lora", capsys)
    assert printed["metrics"]["fid"] == pytest.approx(record["metrics"]["fid"], **SAME_SAMPLES)
    assert "teacher_fid" not in record["metrics"]  # --skip_teacher_metrics
    card = (lcm_lora_run / "README.md").read_text()
    assert "LCM-LoRA adapters" in card and "load_lora_weights" in card and 'subfolder="scheduler"' in card


def test_resume_continues_exactly_including_the_target_network(tmp_path, lcm_run, tiny_ldm_folder, launch_script):
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copytree(lcm_run / "checkpoint-2", resumed_dir / "checkpoint-2")
    launch_script(
        "train_lcm_distill.py",
        "--pretrained_model_name_or_path",
        tiny_ldm_folder,
        "--output_dir",
        resumed_dir,
        *TINY_LCM_RUN,
        "--skip_teacher_metrics",
        "--resume_from_checkpoint",
        "latest",
    )
    reference = load_file(lcm_run / "unet" / "diffusion_pytorch_model.safetensors")
    resumed = load_file(resumed_dir / "unet" / "diffusion_pytorch_model.safetensors")
    for key in reference:
        torch.testing.assert_close(resumed[key], reference[key], rtol=0, atol=1e-6, msg=key)


def test_the_trained_consistency_function_is_the_one_lcm_scheduler_samples_with(tiny_ldm_folder):
    """f(x_t, t) = c_skip x_t + c_out x0 as the distillation computes it is LCMScheduler.step's `denoised` for the
    same network output; at t = 0 it is the identity (the boundary condition); and the new student starts as its
    teacher whatever the guidance scale (its guidance projection is zero)."""
    script = import_script("train_lcm_distill.py")
    args = script.parse_args(["--pretrained_model_name_or_path", tiny_ldm_folder])
    teacher = hfgen.LatentDiffusionPipeline.from_pretrained(tiny_ldm_folder)
    student = script.full_lcm_student(teacher.unet).eval()
    scheduler = script.lcm_scheduler(teacher.scheduler, args)
    text = teacher.encode_prompt([PROMPT] * 2)
    sample = torch.randn(2, 4, 8, 8, generator=seeded(0))
    guidance = guidance_embedding(torch.tensor([2.0, 4.0]), script.GUIDANCE_EMBEDDING_DIM)
    with torch.no_grad():
        for steps in (1, 4):
            scheduler.set_timesteps(steps)
            timestep = scheduler.timesteps[-1]
            timesteps = torch.full((2,), int(timestep))
            ours = script.consistency_function(
                student, sample, timesteps, text, guidance, scheduler, scheduler.alphas_cumprod, "epsilon"
            )
            output = student(sample, timestep, encoder_hidden_states=text, timestep_cond=guidance).sample
            scheduler._step_index = None  # a fresh step at `timestep`
            theirs = scheduler.step(output, timestep, sample).denoised
            torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
        at_zero = script.consistency_function(
            student,
            sample,
            torch.zeros(2, dtype=torch.long),
            text,
            guidance,
            scheduler,
            scheduler.alphas_cumprod,
            "epsilon",
        )
        torch.testing.assert_close(at_zero, sample)
        torch.testing.assert_close(
            student(sample, 500, encoder_hidden_states=text, timestep_cond=guidance).sample,
            teacher.unet(sample, 500, encoder_hidden_states=text).sample,
        )


def test_a_stable_diffusion_teacher_and_wrong_flags(tiny_stable_diffusion_folder, tiny_ldm_folder):
    printed = dry_run("train_lcm_distill.py", "--pretrained_model_name_or_path", tiny_stable_diffusion_folder)
    assert '"time_cond_proj_dim": 256' in printed and '"_class_name": "LCMScheduler"' in printed
    assert '"original_inference_steps": 50' in printed
    printed = dry_run(
        "train_lcm_distill.py", "--pretrained_model_name_or_path", tiny_stable_diffusion_folder, "--use_lora"
    )
    assert '"time_cond_proj_dim": null' in printed

    script = import_script("train_lcm_distill.py")
    teacher = ["--pretrained_model_name_or_path", tiny_ldm_folder]
    error = parse_error(script, *teacher, "--guidance_scale_min", "5", "--guidance_scale_max", "2")
    assert "--guidance_scale_min 5.0 is above --guidance_scale_max 2.0" in error
    error = parse_error(script, *teacher, "--num_ddim_timesteps", "4", "--extra_steps", "8")
    assert "LCM sampling steps 8" in error and "--num_ddim_timesteps 4" in error
    assert "--guidance_scale_min" in parse_error(script, *teacher, "--guidance_scale_min", "0.5")
