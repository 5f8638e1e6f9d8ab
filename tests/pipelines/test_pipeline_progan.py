"""ProGANPipeline: the shared pipeline and class-label tests, then sampling a growing stage."""

import torch

from hfgen import GANPipeline, GANPipelineOutput, ProGANConfig, ProGANGenerator, ProGANPipeline
from hfgen.testing.pipeline_tester import (
    ClassLabelsPipelineTesterMixin,
    PipelineTesterMixin,
    raises_value_error,
    seeded,
)


class TestProGANPipeline(ClassLabelsPipelineTesterMixin, PipelineTesterMixin):
    pipeline_class = ProGANPipeline
    # Generated once from this code: regenerate whenever the model's maths or initialisation change, by running
    # test_expected_slice and pasting the values its failure prints.
    expected_slice = (0.688858, 0.2878, 0.091203, 0.161884, 0.046997, 0.589747, 0.861728, 0.329426, 0.0)

    def get_components(self, num_classes: int = 10):
        torch.manual_seed(0)
        config = ProGANConfig(resolution=16, latent_dim=8, channel_base=64, channel_max=8, num_classes=num_classes)
        return {"gan": ProGANGenerator(config).eval()}

    def latent_shape(self, pipeline):
        return (pipeline.gan.config.latent_dim,)


def test_a_growing_stage_is_sampled_as_the_generator_draws_it():
    pipeline = TestProGANPipeline().get_pipeline()
    output = pipeline(batch_size=3, class_labels=4, resolution=8, alpha=0.5, generator=seeded(0), output_type="pt")
    assert isinstance(output, GANPipelineOutput) and output.images.shape == (3, 1, 8, 8)
    assert torch.equal(output.latents, torch.randn(3, 8, generator=seeded(0)))
    with torch.no_grad():
        expected = pipeline.gan(output.latents, labels=torch.tensor([4, 4, 4]), resolution=8, alpha=0.5).sample
    torch.testing.assert_close(output.images, (expected * 0.5 + 0.5).clamp(0, 1), rtol=0, atol=1e-6)
    # by default (and in interpolate) the fully grown generator
    assert pipeline(class_labels=[1, 2], output_type="pt").images.shape == (2, 1, 16, 16)
    start, end = torch.randn(8, generator=seeded(0)), torch.randn(8, generator=seeded(1))
    assert pipeline.interpolate(start, end, num_steps=3, class_labels=2, output_type="pt").images.shape[-1] == 16
    with raises_value_error("resolution must be one of [4, 8, 16]", "12"):
        pipeline(batch_size=1, class_labels=1, resolution=12)
    with raises_value_error("alpha must be a number in [0, 1]"):
        pipeline(batch_size=1, class_labels=1, alpha=2.0)


def test_gan_and_progan_pipelines_refuse_each_other_s_folders(tmp_path):
    pipeline = TestProGANPipeline().get_pipeline()
    pipeline.save_pretrained(tmp_path)
    with raises_value_error("is a ProGANPipeline folder", "its gan is a ProGANGenerator", "hfgen.ProGANPipeline"):
        GANPipeline.from_pretrained(tmp_path)
    loaded = ProGANPipeline.from_pretrained(tmp_path)
    assert type(loaded.gan) is ProGANGenerator
