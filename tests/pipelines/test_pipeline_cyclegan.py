"""CycleGANPipeline and Pix2PixPipeline: the shared pipeline tests (inputs drawn from the seeded generator, since a
translation draws nothing itself), both directions, every input type, and clear errors."""

import numpy as np
import PIL.Image
import pytest
import torch

from hfgen import CycleGANConfig, CycleGANGenerator, CycleGANPipeline, Pix2PixPipeline
from hfgen.testing.pipeline_tester import PipelineTesterMixin, raises_value_error, seeded


def tiny_config(**changes) -> CycleGANConfig:
    settings = {"in_channels": 1, "out_channels": 3, "generator_channels": 4, "num_residual_blocks": 1}
    return CycleGANConfig(**{**settings, **changes})


def input_images(generator, batch_size: int, channels: int) -> torch.Tensor:
    """Images in [0, 1] drawn from `generator` (one per generator when it is a list)."""
    if isinstance(generator, list):
        return torch.cat([torch.rand(1, channels, 16, 16, generator=g) for g in generator])
    return torch.rand(batch_size, channels, 16, 16, generator=generator)


class TranslationTests(PipelineTesterMixin):
    """The shared tests with what a translation differs in: its batch is its input images, it has no latents, and
    its output is the images alone."""

    input_channels = 1

    def latent_shape(self, pipeline):
        return (self.input_channels, 16, 16)

    def get_inputs(self, generator, batch_size: int = 2) -> dict:
        return {"images": input_images(generator, batch_size, self.input_channels)}

    def replay_inputs(self, output) -> dict:
        return self.get_inputs(seeded(0))

    def test_list_of_generators_matches_single_image_calls(self):
        pipeline = self.get_pipeline()
        together = self.run_pipeline(pipeline, seed=[1, 2])
        for index, seed in enumerate((1, 2)):
            alone = self.run_pipeline(pipeline, seed=seed, batch_size=1)
            assert torch.allclose(together.images[index], alone.images[0], atol=1e-6)

    def test_return_dict_false_returns_a_tuple(self):
        pipeline = self.get_pipeline()
        output = self.run_pipeline(pipeline)
        as_tuple = self.run_pipeline(pipeline, return_dict=False)
        assert isinstance(as_tuple, tuple) and len(as_tuple) == 1 and torch.equal(as_tuple[0], output.images)

    def test_batch_size_is_checked(self):
        pipeline = self.get_pipeline()
        for bad in ([], None, "image.png", 3):
            with raises_value_error("images must be a PIL image, a numpy array or torch tensor in [0, 1]"):
                pipeline(bad)

    def test_generator_is_checked(self):
        pipeline = self.get_pipeline()
        with raises_value_error("images of 18x18 pixels: this generator needs sides divisible by 4", "20x20"):
            pipeline(torch.rand(1, self.input_channels, 18, 18))

    def test_latents_set_the_batch_size_and_are_checked(self):
        # no latents: the input images set the batch, one output per input, in order
        pipeline = self.get_pipeline()
        images = input_images(seeded(0), 3, self.input_channels)
        together = pipeline(images, output_type="pt").images
        assert together.shape[0] == 3
        assert torch.allclose(pipeline(images[1:2], output_type="pt").images[0], together[1], atol=1e-6)


class TestCycleGANPipeline(TranslationTests):
    pipeline_class = CycleGANPipeline
    # Generated once from this code (tiny ResNet generators, A -> B): regenerate after an intended change by running
    # test_expected_slice and pasting the values its failure prints.
    expected_slice = (0.424352, 0.377315, 0.384281, 0.464343, 0.382905, 0.347719, 0.533925, 0.429740, 0.405669)

    def get_components(self, **config_overrides):
        config = tiny_config(**config_overrides)
        torch.manual_seed(0)
        return {
            "generator_ab": CycleGANGenerator(config).eval(),
            "generator_ba": CycleGANGenerator(config.reversed()).eval(),
        }


class TestPix2PixPipeline(TranslationTests):
    pipeline_class = Pix2PixPipeline
    # Generated once from this code (a tiny U-Net with instance norms, 16 px): regenerate as above.
    expected_slice = (0.475224, 0.475674, 0.498602, 0.522669, 0.499833, 0.496547, 0.526533, 0.536299, 0.502633)

    def get_components(self, **config_overrides):
        config = tiny_config(generator_architecture="unet", unet_num_downs=4, **config_overrides)
        torch.manual_seed(0)
        return {"generator": CycleGANGenerator(config).eval()}

    def test_generator_is_checked(self):
        pipeline = self.get_pipeline()
        with raises_value_error("images of 20x20 pixels: this generator needs sides divisible by 16", "32x32"):
            pipeline(torch.rand(1, 1, 20, 20))


@pytest.fixture
def pipeline():
    pipeline = CycleGANPipeline(**TestCycleGANPipeline().get_components())
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def test_both_directions_and_every_input_type(pipeline):
    grey = torch.rand(2, 1, 16, 16, generator=seeded(0))
    to_b = pipeline(grey, direction="a_to_b", output_type="pt").images
    assert to_b.shape == (2, 3, 16, 16)
    back = pipeline(to_b, direction="b_to_a", output_type="pt").images
    assert back.shape == (2, 1, 16, 16)
    # the same image as a tensor, an array, a list of arrays and a PIL image
    quantised = (grey[:1] * 255).round() / 255
    reference = pipeline(quantised, output_type="pt").images
    array = quantised[0].permute(1, 2, 0).numpy()
    pil = PIL.Image.fromarray((array[..., 0] * 255).round().astype(np.uint8), mode="L")
    for same in (array[None], [array], [array[..., 0]], pil, [pil], quantised[0]):
        assert torch.allclose(pipeline(same, output_type="pt").images, reference, atol=1e-5)
    # an RGB picture given to the grey-input generator is converted; a grey one to the RGB-input generator too
    rgb = PIL.Image.fromarray((np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8))
    assert pipeline(rgb, output_type="pt").images.shape == (1, 3, 16, 16)
    assert pipeline(pil, direction="b_to_a", output_type="pt").images.shape == (1, 1, 16, 16)
    with raises_value_error("direction must be one of ('a_to_b', 'b_to_a')", "'a-to-b'"):
        pipeline(grey, direction="a-to-b")
