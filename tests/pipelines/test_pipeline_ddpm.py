"""DDPMPipeline: the shared pipeline tests, then diffusers' own DDPM / DDIM pipelines on the same folder and numbers,
scheduler swaps and eta."""

import os
import tempfile

import diffusers
import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, UNet2DModel

from hfgen import DDPMPipeline, ScoreSdePipeline
from hfgen.testing.pipeline_tester import PipelineTesterMixin, raises_value_error, read_json, seeded


def tiny_unet(**overrides) -> UNet2DModel:
    torch.manual_seed(0)
    config = dict(
        sample_size=16,
        in_channels=1,
        out_channels=1,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
        attention_head_dim=8,
    )
    return UNet2DModel(**{**config, **overrides}).eval()


class TestDDPMPipeline(PipelineTesterMixin):
    pipeline_class = DDPMPipeline
    # Generated once from this code (tiny_unet, DDIM, 2 steps): regenerate after an intended change by running
    # test_expected_slice and pasting the values its failure prints.
    expected_slice = (0.564646, 0.000000, 0.397472, 1.000000, 0.999766, 0.000000, 0.660189, 0.999704, 0.718078)

    def get_components(self, **config_overrides):
        # DDIM with eta 0 is deterministic given the starting noise, which the shared replay test needs
        return {"unet": tiny_unet(**config_overrides), "scheduler": DDIMScheduler(num_train_timesteps=100)}

    def latent_shape(self, pipeline):
        return (1, 16, 16)

    def get_inputs(self, generator, batch_size: int = 2) -> dict:
        return {"batch_size": batch_size, "generator": generator, "num_inference_steps": 2}


@pytest.fixture
def ddpm_folder(tmp_path):
    """A folder as train_ddpm.py writes it: diffusers' DDPMPipeline format with a DDPMScheduler."""
    pipeline = DDPMPipeline(unet=tiny_unet(), scheduler=DDPMScheduler(num_train_timesteps=100))
    pipeline.save_pretrained(tmp_path)
    return tmp_path


def test_the_folder_is_a_plain_diffusers_folder(ddpm_folder):
    index = read_json(os.path.join(ddpm_folder, "model_index.json"))
    assert index["_class_name"] == "DDPMPipeline"
    assert index["unet"] == ["diffusers", "UNet2DModel"] and index["scheduler"] == ["diffusers", "DDPMScheduler"]
    assert not os.path.exists(os.path.join(ddpm_folder, "hfgen_pipeline.py"))
    assert type(diffusers.DiffusionPipeline.from_pretrained(ddpm_folder)) is diffusers.DDPMPipeline


def test_diffusers_ddpm_and_ddim_pipelines_sample_what_hfgen_samples(ddpm_folder):
    ours = DDPMPipeline.from_pretrained(ddpm_folder)
    ours.set_progress_bar_config(disable=True)
    theirs = diffusers.DDPMPipeline.from_pretrained(ddpm_folder)
    theirs.set_progress_bar_config(disable=True)
    # the same draws in the same order: the starting noise, then the noise of every DDPM step
    expected = ours(batch_size=2, generator=seeded(0), num_inference_steps=5, output_type="np").images
    got = theirs(batch_size=2, generator=seeded(0), num_inference_steps=5, output_type="np").images
    assert np.abs(expected - got).max() < 1e-6
    ddim = diffusers.DDIMPipeline.from_pretrained(ddpm_folder)
    ddim.set_progress_bar_config(disable=True)
    assert type(ddim.scheduler) is DDIMScheduler
    ours.scheduler = DDIMScheduler.from_config(ours.scheduler.config)
    expected = ours(batch_size=2, generator=seeded(1), num_inference_steps=4, output_type="np").images
    got = ddim(batch_size=2, generator=seeded(1), num_inference_steps=4, eta=0.0, output_type="np").images
    assert np.abs(expected - got).max() < 1e-6


def test_ddpm_noise_comes_from_each_images_generator(ddpm_folder):
    pipeline = DDPMPipeline.from_pretrained(ddpm_folder)
    pipeline.set_progress_bar_config(disable=True)
    together = pipeline(generator=[seeded(3), seeded(4)], batch_size=2, num_inference_steps=4, output_type="pt")
    alone = pipeline(generator=seeded(4), batch_size=1, num_inference_steps=4, output_type="pt")
    assert torch.allclose(together.images[1], alone.images[0], atol=1e-6)
    # DDPM adds noise at every step, so the same starting noise gives other images with other generators
    replay = pipeline(latents=together.latents, generator=seeded(9), num_inference_steps=4, output_type="pt")
    assert not torch.allclose(replay.images, together.images)


def test_any_discrete_scheduler_swaps_in_and_eta_is_checked(ddpm_folder):
    pipeline = DDPMPipeline.from_pretrained(ddpm_folder)
    pipeline.set_progress_bar_config(disable=True)
    pipeline.scheduler = DPMSolverMultistepScheduler.from_config(pipeline.scheduler.config)
    images = pipeline(batch_size=2, generator=seeded(0), num_inference_steps=3, output_type="pt").images
    assert images.shape == (2, 1, 16, 16) and torch.isfinite(images).all()
    with raises_value_error("eta=0.5", "DPMSolverMultistepScheduler takes no eta", "DDIMScheduler"):
        pipeline(batch_size=1, eta=0.5, num_inference_steps=3)
    pipeline.scheduler = DDIMScheduler.from_config(pipeline.scheduler.config)
    start = torch.ones(1, 1, 16, 16)
    deterministic = [pipeline(latents=start, num_inference_steps=3, output_type="pt").images for _ in "ab"]
    assert torch.equal(*deterministic)
    noisy = pipeline(latents=start, num_inference_steps=3, eta=1.0, generator=seeded(0), output_type="pt")
    assert not torch.allclose(noisy.images, deterministic[0])
    for bad in (-0.1, 1.5, "1", True):
        with raises_value_error("eta must be a number in [0, 1]"):
            pipeline(batch_size=1, eta=bad)
    with raises_value_error("num_inference_steps must be a positive int", "0"):
        pipeline(batch_size=1, num_inference_steps=0)


def test_a_folder_saved_with_any_stepping_scheduler_reloads(tmp_path):
    from diffusers import LCMScheduler

    pipeline = DDPMPipeline(unet=tiny_unet(), scheduler=LCMScheduler(num_train_timesteps=100))
    pipeline.save_pretrained(tmp_path)
    loaded = DDPMPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert type(loaded.scheduler) is LCMScheduler
    assert loaded(batch_size=1, num_inference_steps=2, output_type="pt").images.shape == (1, 1, 16, 16)


def test_a_score_sde_folder_is_not_a_ddpm_one():
    from diffusers import ScoreSdeVeScheduler

    score = ScoreSdePipeline(unet=tiny_unet(time_embedding_type="fourier"), scheduler=ScoreSdeVeScheduler())
    with tempfile.TemporaryDirectory() as folder:
        score.save_pretrained(folder)
        with raises_value_error(
            "is a ScoreSdePipeline folder", "not a DDPMPipeline one", "scheduler is a ScoreSdeVeScheduler"
        ):
            DDPMPipeline.from_pretrained(folder)
