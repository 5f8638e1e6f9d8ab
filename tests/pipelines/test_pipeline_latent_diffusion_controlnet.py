"""LatentDiffusionControlNetPipeline: the shared pipeline tests, zero convolutions, scales and guidance windows,
several ControlNets, loading a base folder with a ControlNet passed in, input checks, and agreement with diffusers'
StableDiffusionControlNetPipeline on a Stable-Diffusion-shaped base."""

import tempfile

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import ControlNetModel

from hfgen import LatentDiffusionControlNetPipeline, LatentDiffusionPipeline
from hfgen.pipelines.latent_diffusion.pipeline_latent_diffusion_controlnet import control_keep
from hfgen.testing.pipeline_tester import PipelineTesterMixin, raises_value_error, seeded

from .test_pipeline_latent_diffusion import PROMPT, tiny_components


def tiny_controlnet(unet, seed: int = 1, trained: bool = True) -> ControlNetModel:
    """A ControlNet copied from `unet`'s encoder; `trained` puts noise into its zero convolutions (as training
    would), so its residuals are not zero."""
    torch.manual_seed(seed)
    net = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16))
    if trained:
        with torch.no_grad():
            for name, parameter in net.named_parameters():
                if name.startswith(
                    ("controlnet_down_blocks", "controlnet_mid_block", "controlnet_cond_embedding.conv_out")
                ):
                    parameter.normal_(std=0.3)
    return net.eval()


def control_image(seed: int = 0, batch: int = 1) -> torch.Tensor:
    return torch.rand(batch, 3, 16, 16, generator=seeded(seed))


class TestLatentDiffusionControlNetPipeline(PipelineTesterMixin):
    pipeline_class = LatentDiffusionControlNetPipeline
    # Generated once from this code (tiny_components, a perturbed tiny ControlNet, 2 DDIM steps, guidance 3):
    # regenerate after an intended change by running test_expected_slice and pasting the values its failure prints.
    expected_slice = (0.294926, 0.399728, 0.535845, 0.424002, 0.451973, 0.594331, 0.606358, 0.463750, 0.536683)

    def get_components(self, **config_overrides):
        components = tiny_components(**config_overrides)
        return {**components, "controlnet": tiny_controlnet(components["unet"])}

    def latent_shape(self, pipeline):
        return (4, 8, 8)

    def get_inputs(self, generator, batch_size: int = 2) -> dict:
        return {
            "prompt": PROMPT,
            "image": control_image(),
            "num_images_per_prompt": batch_size,
            "generator": generator,
            "num_inference_steps": 2,
        }

    def replay_inputs(self, output) -> dict:
        return {
            "latents": output.latents,
            "prompt": output.prompts,
            "image": control_image(),
            "num_inference_steps": 2,
        }

    def test_return_dict_false_returns_a_tuple(self):
        pipeline = self.get_pipeline()
        output = self.run_pipeline(pipeline)
        images, latents, prompts = self.run_pipeline(pipeline, return_dict=False)
        assert torch.equal(images, output.images) and torch.equal(latents, output.latents)
        assert prompts == [PROMPT, PROMPT] == output.prompts

    def test_batch_size_is_checked(self):
        pipeline = self.get_pipeline()
        for bad in (0, -1, 2.5, "4", True):
            with raises_value_error("num_images_per_prompt must be a positive int", repr(bad)):
                self.run_pipeline(pipeline, batch_size=bad)

    def test_generator_is_checked(self):
        pipeline = self.get_pipeline()
        with raises_value_error("got 3 generators for batch_size=2", "one torch.Generator per image"):
            self.run_pipeline(pipeline, seed=[0, 1, 2], batch_size=2)

    def test_latents_set_the_batch_size_and_are_checked(self):
        pipeline = self.get_pipeline()
        latents = torch.randn(3, 4, 8, 8, generator=seeded(0))
        output = pipeline(
            prompt=[PROMPT] * 3, image=control_image(), latents=latents, num_inference_steps=2, output_type="pt"
        )
        assert output.images.shape[0] == 3 and torch.equal(output.latents, latents)
        with raises_value_error("latents has 3 rows", "make 2 images"):
            pipeline(prompt=PROMPT, image=control_image(), num_images_per_prompt=2, latents=latents)


@pytest.fixture
def components():
    return tiny_components()


def sample(pipeline, **kwargs) -> torch.Tensor:
    pipeline.set_progress_bar_config(disable=True)
    arguments = {"prompt": PROMPT, "generator": seeded(0), "num_inference_steps": 3, "output_type": "pt"}
    return pipeline(**{**arguments, **kwargs}).images


def test_zero_convolutions_leave_the_base_model_unchanged(components):
    base = sample(LatentDiffusionPipeline(**components))
    untrained = tiny_controlnet(components["unet"], trained=False)
    pipeline = LatentDiffusionControlNetPipeline(**components, controlnet=untrained)
    assert torch.equal(sample(pipeline, image=control_image(0)), base)
    assert torch.equal(sample(pipeline, image=control_image(1)), base)


def test_control_images_scales_and_guidance_windows(components):
    base = sample(LatentDiffusionPipeline(**components))
    pipeline = LatentDiffusionControlNetPipeline(**components, controlnet=tiny_controlnet(components["unet"]))
    controlled = sample(pipeline, image=control_image(0))
    assert not torch.allclose(controlled, base, atol=1e-3)
    assert not torch.allclose(controlled, sample(pipeline, image=control_image(1)), atol=1e-3)
    assert not torch.allclose(controlled, sample(pipeline, image=control_image(0), controlnet_conditioning_scale=0.5))
    # scale 0, or a window that closes before the first step ends, is the base model
    assert torch.equal(sample(pipeline, image=control_image(0), controlnet_conditioning_scale=0.0), base)
    assert torch.equal(sample(pipeline, image=control_image(0), control_guidance_end=0.2), base)
    late = sample(pipeline, image=control_image(0), control_guidance_start=0.5)
    assert not torch.allclose(late, base, atol=1e-4) and not torch.allclose(late, controlled, atol=1e-4)
    # a PIL image and an array in [0, 1] are the same control as the tensor
    array = control_image(0)[0].permute(1, 2, 0).numpy()
    pil = PIL.Image.fromarray((array * 255).round().astype(np.uint8))
    quantised = torch.from_numpy(np.asarray(pil, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    assert torch.allclose(sample(pipeline, image=pil), sample(pipeline, image=quantised), atol=1e-5)
    assert torch.allclose(sample(pipeline, image=array), controlled, atol=1e-5)


def test_control_keep_follows_start_and_end():
    assert control_keep(4, [0.0], [1.0]) == [[1.0]] * 4
    assert control_keep(4, [0.5], [1.0]) == [[0.0], [0.0], [1.0], [1.0]]
    assert control_keep(4, [0.0, 0.25], [0.5, 1.0]) == [[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 1.0]]


def test_several_controlnets_add_their_scaled_residuals(components, tmp_path):
    first, second = tiny_controlnet(components["unet"], seed=1), tiny_controlnet(components["unet"], seed=2)
    single = LatentDiffusionControlNetPipeline(**components, controlnet=first)
    multi = LatentDiffusionControlNetPipeline(**components, controlnet=[first, second])
    images = [control_image(0), control_image(1)]
    alone = sample(single, image=images[0], controlnet_conditioning_scale=0.7)
    assert torch.allclose(sample(multi, image=images, controlnet_conditioning_scale=[0.7, 0.0]), alone, atol=1e-6)
    both = sample(multi, image=images, controlnet_conditioning_scale=[0.7, 1.0])
    assert not torch.allclose(both, alone, atol=1e-4)
    # a window per net: the second one switched off before the first step is the first one alone
    windowed = sample(multi, image=images, controlnet_conditioning_scale=[0.7, 1.0], control_guidance_end=[1.0, 0.2])
    assert torch.allclose(windowed, alone, atol=1e-6)
    multi.save_pretrained(tmp_path)
    loaded = LatentDiffusionControlNetPipeline.from_pretrained(tmp_path)
    assert len(loaded.controlnets) == 2
    assert torch.allclose(sample(loaded, image=images, controlnet_conditioning_scale=[0.7, 1.0]), both, atol=1e-6)
    with raises_value_error("image has 1 entries for 2 ControlNets"):
        sample(multi, image=images[0])
    with raises_value_error("controlnet_conditioning_scale has 3 values for 2 ControlNet(s)"):
        sample(multi, image=images, controlnet_conditioning_scale=[1.0, 1.0, 1.0])


def test_input_checks(components):
    pipeline = LatentDiffusionControlNetPipeline(**components, controlnet=tiny_controlnet(components["unet"]))
    with raises_value_error("image (the control map) is required"):
        sample(pipeline)
    with raises_value_error("the control image is 20x16 (width x height)", "makes 16x16 images"):
        sample(pipeline, image=torch.rand(1, 3, 16, 20))
    with raises_value_error("got 3 control images for 2 prompt(s) x num_images_per_prompt=2"):
        sample(pipeline, prompt=[PROMPT, PROMPT], num_images_per_prompt=2, image=control_image(0, batch=3))
    # one control per prompt, or per image
    per_prompt = sample(pipeline, prompt=["a", "b"], num_images_per_prompt=2, image=control_image(0, batch=2))
    assert per_prompt.shape == (4, 1, 16, 16)
    with raises_value_error("control_guidance_start 0.6 and control_guidance_end 0.4"):
        sample(pipeline, image=control_image(), control_guidance_start=0.6, control_guidance_end=0.4)
    with raises_value_error("image must be a control image"):
        sample(pipeline, image="edges.png")
    wrong = ControlNetModel.from_unet(components["unet"], conditioning_embedding_out_channels=(8, 16, 32))
    with raises_value_error("downsamples control images by 4 but the first stage by 2"):
        sample(LatentDiffusionControlNetPipeline(**components, controlnet=wrong), image=control_image())


def test_a_base_folder_loads_with_a_controlnet_passed_in(components, tmp_path):
    net = tiny_controlnet(components["unet"])
    LatentDiffusionPipeline(**components).save_pretrained(tmp_path / "base")
    net.save_pretrained(tmp_path / "controlnet")
    loaded = LatentDiffusionControlNetPipeline.from_pretrained(
        tmp_path / "base", controlnet=ControlNetModel.from_pretrained(tmp_path / "controlnet")
    )
    expected = sample(LatentDiffusionControlNetPipeline(**components, controlnet=net), image=control_image())
    assert torch.allclose(sample(loaded, image=control_image()), expected, atol=1e-6)
    with raises_value_error("has no controlnet component", "or pass controlnet=... to"):
        LatentDiffusionControlNetPipeline.from_pretrained(tmp_path / "base")


def test_a_stable_diffusion_base_samples_what_diffusers_samples(tiny_stable_diffusion_folder):
    from diffusers import StableDiffusionControlNetPipeline

    base = LatentDiffusionPipeline.from_pretrained(tiny_stable_diffusion_folder)
    net = tiny_controlnet(base.unet)
    with tempfile.TemporaryDirectory() as folder:
        net.save_pretrained(folder)
        theirs = StableDiffusionControlNetPipeline.from_pretrained(
            tiny_stable_diffusion_folder, controlnet=ControlNetModel.from_pretrained(folder)
        )
    ours = LatentDiffusionControlNetPipeline.from_pretrained(tiny_stable_diffusion_folder, controlnet=net)
    control = torch.rand(1, 3, 32, 32, generator=seeded(3))
    arguments = dict(prompt=PROMPT, image=control, guidance_scale=3.0, num_inference_steps=3, output_type="np")
    theirs.set_progress_bar_config(disable=True)
    ours.set_progress_bar_config(disable=True)
    expected = theirs(**arguments, controlnet_conditioning_scale=0.8, generator=seeded(0)).images
    got = ours(**arguments, controlnet_conditioning_scale=0.8, generator=seeded(0)).images
    assert got.shape == expected.shape == (1, 32, 32, 3)
    assert abs(got - expected).max() < 1e-5


def test_a_component_folder_names_its_pipeline_folder(components, tmp_path):
    LatentDiffusionPipeline(**components).save_pretrained(tmp_path / "ldm")
    with raises_value_error("holds a single diffusers UNet2DConditionModel", "it is the unet/ component of"):
        LatentDiffusionPipeline.from_pretrained(tmp_path / "ldm" / "unet")
    components["unet"].save_pretrained(tmp_path / "lone-unet")
    with raises_value_error("diffusers.UNet2DConditionModel.from_pretrained(folder)"):
        LatentDiffusionControlNetPipeline.from_pretrained(tmp_path / "lone-unet")
