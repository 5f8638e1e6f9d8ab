"""SuperResolutionPipeline and CascadedDiffusionPipeline: the shared pipeline tests (on residual models, what
train_super_resolution.py trains by default), then the conditioning (its upsampling and noise augmentation), the
residual added back to the upsampled image, the image models of older folders, the inputs a super-resolution call
takes, the cascade as its two stages run by hand, and the folders a DDPMPipeline refuses."""

import json
import os
import tempfile

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel
from PIL import Image

from hfgen import CascadedDiffusionPipeline, DDPMPipeline, SuperResolutionPipeline
from hfgen.pipelines.cascade.pipeline_super_resolution import check_prediction_target
from hfgen.pipelines.cascade.resampling import augment_conditioning, downsample, upsample
from hfgen.testing.pipeline_tester import PipelineTesterMixin, raises_value_error, read_json, seeded


def tiny_super_resolution_unet(channels: int = 1) -> UNet2DModel:
    """A 16 px super-resolution UNet: the noisy image and the upsampled conditioning in, the noise level as a second
    timestep."""
    torch.manual_seed(0)
    return UNet2DModel(
        sample_size=16,
        in_channels=2 * channels,
        out_channels=channels,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
        class_embed_type="timestep",
    ).eval()


def tiny_base_unet(channels: int = 1) -> UNet2DModel:
    """An 8 px unconditional DDPM UNet, the base of the cascade."""
    torch.manual_seed(1)
    return UNet2DModel(
        sample_size=8,
        in_channels=channels,
        out_channels=channels,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
    ).eval()


# A residual model's settings, as train_super_resolution.py saves them (its scale measured on the data; any positive
# number works here) with a sampler that does not clip the residual's clean estimate to [-1, 1].
RESIDUAL = dict(prediction_target="residual", residual_scale=4.0)


def residual_scheduler() -> DDIMScheduler:
    return DDIMScheduler(num_train_timesteps=100, clip_sample=False)


def low_res_image(rows: int = 1) -> torch.Tensor:
    """Fixed 8 px greyscale images in [0, 1]."""
    return torch.rand(rows, 1, 8, 8, generator=seeded(42))


class TestSuperResolutionPipeline(PipelineTesterMixin):
    pipeline_class = SuperResolutionPipeline
    # Generated once from this code (tiny_super_resolution_unet as a residual model of scale 4, DDIM, 2 steps, noise
    # level 10), after test_a_residual_model_adds_its_sample_to_the_upsampled_image checked what the residual adds:
    # regenerate after an intended change by running test_expected_slice and pasting the values its failure prints.
    expected_slice = (0.609808, 0.472487, 0.623968, 0.748810, 0.657930, 0.124670, 0.641064, 0.656730, 0.305619)
    # diffusers' UNet2DModel embeds the `class_labels` of class_embed_type="timestep" through a float32 sinusoidal
    # projection that it does not cast to the model's dtype (it does for the timestep): float64 weights fail there.
    supports_float64 = False

    def get_components(self, **config_overrides):
        # DDIM with eta 0 is deterministic given the starting noise, which the shared replay test needs
        return {"unet": tiny_super_resolution_unet(**config_overrides), "scheduler": residual_scheduler()}

    def get_pipeline(self, **config_overrides):
        pipeline = self.pipeline_class(**self.get_components(**config_overrides), **RESIDUAL)
        pipeline.set_progress_bar_config(disable=True)
        return pipeline

    def latent_shape(self, pipeline):
        return (1, 16, 16)

    def get_inputs(self, generator, batch_size: int = 2) -> dict:
        # one low-resolution image, super-resolved batch_size times
        return {
            "image": low_res_image(),
            "batch_size": batch_size,
            "generator": generator,
            "num_inference_steps": 2,
            "noise_level": 10,
        }

    def replay_inputs(self, output) -> dict:
        # without augmentation nothing is drawn but the starting noise
        return {"image": low_res_image(), "latents": output.latents, "num_inference_steps": 2, "noise_level": 0}


def sr_pipeline(**kwargs) -> SuperResolutionPipeline:
    pipeline = SuperResolutionPipeline(
        unet=tiny_super_resolution_unet(), scheduler=residual_scheduler(), **{**RESIDUAL, **kwargs}
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def constant_clean_estimate(pipeline, value: float) -> None:
    """Make the pipeline's UNet predict the clean sample (x0) and output `value` everywhere, whatever its input."""
    pipeline.scheduler = DDIMScheduler.from_config(pipeline.scheduler.config, prediction_type="sample")
    with torch.no_grad():
        pipeline.unet.conv_out.weight.zero_()
        pipeline.unet.conv_out.bias.fill_(value)


def test_a_residual_model_adds_its_sample_to_the_upsampled_image():
    image = low_res_image(2)
    upsampled = upsample(image * 2 - 1, 16)
    pipeline = sr_pipeline()
    kwargs = dict(generator=seeded(0), num_inference_steps=3, noise_level=20, output_type="pt")
    # a model that adds nothing (an x0-predicting UNet whose output is 0) gives exactly the bicubic upsampling
    constant_clean_estimate(pipeline, 0.0)
    assert torch.equal(pipeline(image=image, **kwargs).images, (upsampled / 2 + 0.5).clamp(0, 1))
    # a constant residual is unscaled before it is added: 0.4 at scale 4 lifts every pixel by 0.1 in [-1, 1]
    constant_clean_estimate(pipeline, 0.4)
    lifted = pipeline(image=image, **{**kwargs, "generator": seeded(0)}).images
    assert torch.allclose(lifted, ((upsampled + 0.1) / 2 + 0.5).clamp(0, 1), atol=1e-6)
    # an image model with the same UNet draws the constant itself
    image_model = sr_pipeline(prediction_target="image")
    constant_clean_estimate(image_model, 0.4)
    assert torch.allclose(image_model(image=image, **kwargs).images, torch.full_like(lifted, 0.7), atol=1e-6)


def test_a_folder_saved_before_residual_models_loads_as_an_image_model():
    pipeline = sr_pipeline()
    with tempfile.TemporaryDirectory() as folder:
        pipeline.save_pretrained(folder)
        index_file = os.path.join(folder, "model_index.json")
        index = read_json(index_file)
        assert index["prediction_target"] == "residual" and index["residual_scale"] == 4.0
        for field in ("prediction_target", "residual_scale"):
            del index[field]
        with open(index_file, "w", encoding="utf-8") as file:
            json.dump(index, file)
        loaded = SuperResolutionPipeline.from_pretrained(folder)
    assert loaded.config.prediction_target == "image"
    for bad, message in ((dict(prediction_target="res"), "prediction_target must be one of ('image', 'residual')"),
                         (dict(residual_scale=0.0), "residual_scale must be a positive number, got 0.0")):  # fmt: skip
        with raises_value_error(message):
            check_prediction_target(**{**RESIDUAL, **bad})


def test_the_conditioning_is_the_upsampled_image_noised_as_the_schedule_says():
    images = torch.rand(3, 1, 16, 16, generator=seeded(0)) * 2 - 1
    low_res = downsample(images, 8)
    assert low_res.shape == (3, 1, 8, 8)
    # a flat image stays flat both ways: the filters are normalised
    flat = torch.full((1, 1, 16, 16), 0.25)
    assert torch.allclose(upsample(downsample(flat, 8), 16), flat, atol=1e-6)
    scheduler = DDPMScheduler(num_train_timesteps=100)
    noise = torch.randn(3, 1, 16, 16, generator=seeded(1))
    levels = torch.tensor([0, 7, 99])
    conditioning = upsample(low_res, 16)
    augmented = augment_conditioning(conditioning, levels, scheduler.alphas_cumprod, noise)
    # level 0 is the image itself; any other level is the forward process's x_t at that timestep
    assert torch.equal(augmented[0], conditioning[0])
    expected = scheduler.add_noise(conditioning[1:], noise[1:], levels[1:])
    assert torch.allclose(augmented[1:], expected, atol=1e-6)


def test_noise_level_changes_the_result_and_is_checked():
    pipeline = sr_pipeline()
    image = low_res_image()
    outputs = {
        level: pipeline(image=image, generator=seeded(0), num_inference_steps=2, noise_level=level, output_type="pt")
        for level in (0, 0, 30)
    }
    clean = pipeline(image=image, generator=seeded(0), num_inference_steps=2, noise_level=0, output_type="pt")
    assert torch.equal(clean.images, outputs[0].images)
    assert not torch.allclose(outputs[30].images, clean.images, atol=1e-4)
    for bad in (-1, 100, 2.5, True, "10"):
        with raises_value_error("noise_level must be an int in [0, 100)", repr(bad)):
            pipeline(image=image, noise_level=bad)


def test_each_input_image_gets_its_output_and_counts_must_agree():
    pipeline = sr_pipeline()
    images = low_res_image(3)
    together = pipeline(image=images, generator=[seeded(i) for i in range(3)], num_inference_steps=2, output_type="pt")
    assert together.images.shape == (3, 1, 16, 16)
    alone = pipeline(image=images[2:], generator=seeded(2), num_inference_steps=2, output_type="pt")
    assert torch.allclose(together.images[2], alone.images[0], atol=1e-6)
    with raises_value_error("image holds 3 images but 2 outputs were asked"):
        pipeline(image=images, batch_size=2)
    with raises_value_error("give images in [0, 1]"):
        pipeline(image=images * 2 - 1)


def test_pil_and_array_inputs_in_any_colours_give_the_models_colours():
    pipeline = sr_pipeline()
    grey = (low_res_image()[0, 0].numpy() * 255).round().astype(np.uint8)
    as_pil = Image.fromarray(grey, mode="L")
    kwargs = dict(generator=seeded(0), num_inference_steps=2, output_type="pt")
    from_tensor = pipeline(image=torch.from_numpy(grey / 255.0).float()[None, None], **kwargs).images
    for image in (as_pil, as_pil.convert("RGB"), [as_pil], np.repeat(grey[None, :, :, None] / 255.0, 3, axis=3)):
        assert torch.allclose(
            pipeline(image=image, **{**kwargs, "generator": seeded(0)}).images, from_tensor, atol=1e-5
        )
    output = pipeline(image=as_pil, num_inference_steps=2).images[0]
    assert output.mode == "L" and output.size == (16, 16)


def test_a_unet_that_is_not_a_super_resolution_one_is_refused_in_one_line():
    with raises_value_error("the unet takes 1 channels", "in_channels = 2 x out_channels = 2", "'timestep'"):
        SuperResolutionPipeline(unet=tiny_base_unet(), scheduler=DDIMScheduler(num_train_timesteps=100))


class TestCascadedDiffusionPipeline(PipelineTesterMixin):
    pipeline_class = CascadedDiffusionPipeline
    # Generated once from this code (the tiny base and residual super-resolution UNets, DDIM, 2 steps each, noise
    # level 10): regenerate after an intended change by running test_expected_slice and pasting the values its
    # failure prints.
    expected_slice = (0.565954, 0.516593, 0.017618, 0.767729, 0.545838, 0.092914, 0.974042, 0.370911, 0.097114)
    supports_float64 = False  # as the super-resolution pipeline's: its UNet's class embedding

    def get_components(self, **config_overrides):
        return {
            "base_unet": tiny_base_unet(),
            "base_scheduler": DDIMScheduler(num_train_timesteps=100),
            "unet": tiny_super_resolution_unet(),
            "scheduler": residual_scheduler(),
        }

    def get_pipeline(self, **config_overrides):
        pipeline = self.pipeline_class(**self.get_components(**config_overrides), **RESIDUAL)
        pipeline.set_progress_bar_config(disable=True)
        return pipeline

    def latent_shape(self, pipeline):
        return (1, 8, 8)

    def get_inputs(self, generator, batch_size: int = 2) -> dict:
        return {
            "batch_size": batch_size,
            "generator": generator,
            "num_inference_steps": 2,
            "base_num_inference_steps": 2,
            "noise_level": 10,
        }

    def replay_inputs(self, output) -> dict:
        return {
            "latents": output.latents,
            "super_resolution_latents": output.super_resolution_latents,
            "num_inference_steps": 2,
            "base_num_inference_steps": 2,
            "noise_level": 0,
        }


def cascade_pipeline() -> CascadedDiffusionPipeline:
    pipeline = CascadedDiffusionPipeline(
        **TestCascadedDiffusionPipeline().get_components(), low_resolution=8, **RESIDUAL
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def test_the_cascade_is_its_base_then_its_super_resolution_stage():
    cascade = cascade_pipeline()
    output = cascade(
        batch_size=2,
        generator=seeded(0),
        num_inference_steps=3,
        base_num_inference_steps=4,
        noise_level=20,
        output_type="pt",
    )
    assert output.images.shape == (2, 1, 16, 16) and output.low_res_images.shape == (2, 1, 8, 8)
    base = DDPMPipeline(unet=cascade.base_unet, scheduler=cascade.base_scheduler)
    base.set_progress_bar_config(disable=True)
    low_res = base(latents=output.latents, num_inference_steps=4, output_type="pt").images
    assert torch.allclose(low_res, output.low_res_images, atol=1e-6)
    # the same draws in the same order: the generator gave both starting noises, then the augmentation's noise
    generator = seeded(0)
    torch.randn(2, 1, 8, 8, generator=generator)
    torch.randn(2, 1, 16, 16, generator=generator)
    super_resolution = SuperResolutionPipeline(unet=cascade.unet, scheduler=cascade.scheduler, **RESIDUAL)
    super_resolution.set_progress_bar_config(disable=True)
    expected = super_resolution(
        image=low_res,
        latents=output.super_resolution_latents,
        generator=generator,
        num_inference_steps=3,
        noise_level=20,
        output_type="pt",
    ).images
    assert torch.allclose(expected, output.images, atol=1e-5)


def test_the_cascade_folder_loads_its_super_resolution_stage_alone():
    cascade = cascade_pipeline()
    with tempfile.TemporaryDirectory() as folder:
        cascade.save_pretrained(folder)
        index = read_json(os.path.join(folder, "model_index.json"))
        assert index["base_unet"] == ["diffusers", "UNet2DModel"] and index["low_resolution"] == 8
        stage = SuperResolutionPipeline.from_pretrained(folder)
        assert stage.config.low_resolution == 8 and set(stage.components) == {"unet", "scheduler"}
        assert stage.config.prediction_target == "residual" and stage.config.residual_scale == 4.0
        loaded = CascadedDiffusionPipeline.from_pretrained(folder)
    loaded.set_progress_bar_config(disable=True)
    stage.set_progress_bar_config(disable=True)
    kwargs = dict(generator=seeded(0), num_inference_steps=2, base_num_inference_steps=2, output_type="pt")
    assert torch.allclose(loaded(**kwargs).images, cascade(**{**kwargs, "generator": seeded(0)}).images, atol=1e-6)
    image = low_res_image()
    ours = stage(image=image, generator=seeded(3), num_inference_steps=2, output_type="pt").images
    theirs = cascade.stages()[1](image=image, generator=seeded(3), num_inference_steps=2, output_type="pt").images
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_stages_of_other_colours_are_refused_and_the_super_resolution_latents_checked():
    components = TestCascadedDiffusionPipeline().get_components()
    with raises_value_error("the base_unet makes 1-channel images but the super-resolution unet 3-channel ones"):
        CascadedDiffusionPipeline(**{**components, "unet": tiny_super_resolution_unet(channels=3)})
    cascade = cascade_pipeline()
    with raises_value_error("super_resolution_latents must be a torch.Tensor of shape (batch, 1, 16, 16)"):
        cascade(batch_size=2, super_resolution_latents=torch.zeros(2, 1, 8, 8))
    with raises_value_error("super_resolution_latents has 3 rows but batch_size=2"):
        cascade(batch_size=2, super_resolution_latents=torch.zeros(3, 1, 16, 16))


@pytest.mark.parametrize("pipeline_class", [SuperResolutionPipeline, CascadedDiffusionPipeline])
def test_a_swapped_in_scheduler_drives_the_stage(pipeline_class):
    from diffusers import DPMSolverMultistepScheduler

    pipeline = sr_pipeline() if pipeline_class is SuperResolutionPipeline else cascade_pipeline()
    pipeline.scheduler = DPMSolverMultistepScheduler.from_config(pipeline.scheduler.config)
    inputs = {"image": low_res_image()} if pipeline_class is SuperResolutionPipeline else {}
    images = pipeline(**inputs, generator=seeded(0), num_inference_steps=3, noise_level=5, output_type="pt").images
    assert images.shape == (1, 1, 16, 16) and torch.isfinite(images).all()


@pytest.mark.parametrize("pipeline_class", [SuperResolutionPipeline, CascadedDiffusionPipeline])
def test_a_ddpm_pipeline_refuses_a_super_resolution_folder_in_one_line(pipeline_class, tmp_path):
    pipeline = sr_pipeline() if pipeline_class is SuperResolutionPipeline else cascade_pipeline()
    pipeline.save_pretrained(tmp_path)
    # both folders hold a `unet` and a `scheduler` of the classes DDPMPipeline takes: the UNet's config tells them
    # apart, before any weight is read (it used to fail at the first call, on a shape)
    with raises_value_error(
        str(tmp_path),
        f"is a {pipeline_class.__name__} folder",
        "not a DDPMPipeline one",
        "its unet takes 2 input channels for 1 output ones and a 'timestep' class embedding",
        f"hfgen.{pipeline_class.__name__}.from_pretrained",
    ):
        DDPMPipeline.from_pretrained(tmp_path)
    with raises_value_error("the unet takes 2 input channels", "DDPMPipeline samples unconditional UNets"):
        DDPMPipeline(unet=pipeline.unet, scheduler=pipeline.scheduler)
