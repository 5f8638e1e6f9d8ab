"""StackGANPipeline: the shared pipeline tests (prompts in place of a batch size, conditioning noise replayed with the
latents), then the two stages, what the prompt changes, and the one-line errors."""

import tempfile

import pytest
import torch

from hfgen import StackGANConfig, StackGANGenerator, StackGANPipeline
from hfgen.data.captions import LabelCaptions
from hfgen.models.latent_diffusion import build_caption_text_encoder, write_caption_tokenizer
from hfgen.testing.pipeline_tester import PipelineTesterMixin, raises_value_error, seeded

from ..models.test_modeling_stackgan import calibrate_batch_norms

PROMPT = "a handwritten digit seven"


def tiny_components(**config_overrides) -> dict:
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        tokenizer = write_caption_tokenizer(LabelCaptions([str(i) for i in range(10)]).vocabulary(), folder, 8)
    text_encoder = build_caption_text_encoder(tokenizer, hidden_size=16, num_layers=1)
    config = StackGANConfig(
        **{
            "resolution": 16,
            "stage1_resolution": 8,
            "text_embedding_dim": 16,
            "condition_dim": 4,
            "latent_dim": 8,
            "generator_channels": 16,
            "stage2_channels": 8,
            "stage2_residual_blocks": 1,
            **config_overrides,
        }
    )
    gan = StackGANGenerator(config)
    # so that the images, and the tests of what changes them, mean something (see calibrate_batch_norms)
    input_ids = tokenizer([PROMPT, "the digit two"] * 4, padding="max_length", return_tensors="pt").input_ids
    with torch.no_grad():
        text = text_encoder.eval()(input_ids).pooler_output
    noise = {"latents": torch.randn(8, config.latent_dim), "condition_noise": torch.randn(8, 2, config.condition_dim)}
    calibrate_batch_norms(gan, {"text_embeds": text, **noise})
    return {"tokenizer": tokenizer, "text_encoder": text_encoder, "gan": gan.eval()}


class TestStackGANPipeline(PipelineTesterMixin):
    pipeline_class = StackGANPipeline
    # Generated once from this code (tiny_components, stage 2): regenerate after an intended change by running
    # test_expected_slice and pasting the values its failure prints.
    expected_slice = (0.639542, 0.570542, 0.466617, 0.598705, 0.505097, 0.460106, 0.572804, 0.512356, 0.473193)

    def get_components(self, **config_overrides):
        return tiny_components(**config_overrides)

    def latent_shape(self, pipeline):
        return (pipeline.gan.config.latent_dim,)

    def get_inputs(self, generator, batch_size: int = 2) -> dict:
        return {"prompt": PROMPT, "num_images_per_prompt": batch_size, "generator": generator}

    def replay_inputs(self, output) -> dict:
        return {"latents": output.latents, "condition_noise": output.condition_noise, "prompt": output.prompts}

    def test_return_dict_false_returns_a_tuple(self):
        pipeline = self.get_pipeline()
        output = self.run_pipeline(pipeline)
        images, latents, condition_noise, prompts = self.run_pipeline(pipeline, return_dict=False)
        assert torch.equal(images, output.images) and torch.equal(latents, output.latents)
        assert torch.equal(condition_noise, output.condition_noise)
        assert prompts == [PROMPT, PROMPT] == output.prompts

    def test_batch_size_is_checked(self):
        pipeline = self.get_pipeline()
        for bad in (0, -1, 2.5, "4", True):
            with raises_value_error("num_images_per_prompt must be a positive int", repr(bad)):
                self.run_pipeline(pipeline, batch_size=bad)
        for bad in (None, [], [1], ["a", 2]):
            with raises_value_error("prompt must be a string or a non-empty list of strings"):
                pipeline(prompt=bad)

    def test_generator_is_checked(self):
        pipeline = self.get_pipeline()
        with raises_value_error("generator must be a torch.Generator", "one per image", "'seed'"):
            pipeline(prompt=PROMPT, generator="seed")
        with raises_value_error("got 3 generators for batch_size=2", "one torch.Generator per image"):
            self.run_pipeline(pipeline, seed=[0, 1, 2], batch_size=2)
        with raises_value_error("generator must be a torch.Generator", "holds 7 (int)"):
            pipeline(prompt=PROMPT, num_images_per_prompt=2, generator=[seeded(0), 7])

    def test_latents_set_the_batch_size_and_are_checked(self):
        pipeline = self.get_pipeline()
        latents = torch.randn(3, 8, generator=seeded(0))
        output = pipeline(prompt=[PROMPT] * 3, latents=latents, generator=seeded(0), output_type="pt")
        assert output.images.shape[0] == 3 and torch.equal(output.latents, latents)
        with raises_value_error("latents has 3 rows but the prompts make 2 images"):
            pipeline(prompt=PROMPT, num_images_per_prompt=2, latents=latents)
        with raises_value_error("latents must be a torch.Tensor of shape (batch, 8)", "got (2, 9)"):
            pipeline(prompt=PROMPT, num_images_per_prompt=2, latents=torch.zeros(2, 9))
        with raises_value_error("condition_noise must be a torch.Tensor of shape (batch, 2, 4)", "got (2, 1, 4)"):
            pipeline(prompt=PROMPT, num_images_per_prompt=2, condition_noise=torch.zeros(2, 1, 4))


@pytest.fixture
def pipeline():
    return TestStackGANPipeline().get_pipeline()


def test_a_seed_s_stage_two_image_refines_its_stage_one_image(pipeline):
    final = pipeline(prompt=PROMPT, num_images_per_prompt=3, generator=seeded(4), output_type="pt")
    low = pipeline(prompt=PROMPT, num_images_per_prompt=3, generator=seeded(4), stage=1, output_type="pt")
    assert final.images.shape == (3, 1, 16, 16) and low.images.shape == (3, 1, 8, 8)
    assert torch.equal(final.latents, low.latents) and torch.equal(final.condition_noise, low.condition_noise)
    # the images are the generator's, for the text encoder's pooled embedding of the prompt
    input_ids = pipeline.tokenizer([PROMPT] * 3, padding="max_length", max_length=8, return_tensors="pt").input_ids
    with torch.no_grad():
        text = pipeline.text_encoder(input_ids).pooler_output
        expected = pipeline.gan(text, final.latents, condition_noise=final.condition_noise)
    torch.testing.assert_close(final.images, (expected.sample * 0.5 + 0.5).clamp(0, 1), rtol=0, atol=1e-6)
    torch.testing.assert_close(low.images, (expected.stage1_sample * 0.5 + 0.5).clamp(0, 1), rtol=0, atol=1e-6)


def test_the_prompt_changes_the_images(pipeline):
    def run(prompt):
        return pipeline(prompt=prompt, num_images_per_prompt=2, generator=seeded(0), output_type="pt").images

    assert not torch.allclose(run(PROMPT), run("a handwritten digit one"), atol=1e-4)
    # a list of prompts: a group of images per prompt, each group as that prompt alone draws it
    output = pipeline(
        prompt=[PROMPT, "the digit two"], num_images_per_prompt=2, generator=[seeded(i) for i in range(4)]
    )
    assert output.prompts == [PROMPT, PROMPT, "the digit two", "the digit two"] and len(output.images) == 4


def test_bad_stage_and_mismatched_components_are_one_line_errors(pipeline):
    for bad in (0, 3, "2", True):
        with raises_value_error("stage must be 1 (the low-resolution images) or 2", repr(bad)):
            pipeline(prompt=PROMPT, stage=bad)
    gan = StackGANGenerator(StackGANConfig(text_embedding_dim=12))
    with raises_value_error("reads 12-dimensional text embeddings but the text encoder's hidden_size is 16"):
        StackGANPipeline(tokenizer=pipeline.tokenizer, text_encoder=pipeline.text_encoder, gan=gan)
