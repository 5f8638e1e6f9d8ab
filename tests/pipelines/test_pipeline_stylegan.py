"""StyleGANPipeline: the shared pipeline and class-label tests, then noise, truncation, style mixing, interpolation."""

import pytest
import torch

from hfgen import StyleGANConfig, StyleGANGenerator, StyleGANPipeline, StyleGANPipelineOutput
from hfgen.testing.pipeline_tester import (
    ClassLabelsPipelineTesterMixin,
    PipelineTesterMixin,
    raises_value_error,
    seeded,
)


class TestStyleGANPipeline(ClassLabelsPipelineTesterMixin, PipelineTesterMixin):
    pipeline_class = StyleGANPipeline
    # Generated once from this code, with the model changes then in the working tree (VAE decoding the
    # posterior mean, StyleGAN noise from the passed generator): regenerate whenever the model's maths or
    # initialisation change, by running test_expected_slice and pasting the values its failure prints.
    expected_slice = (0.114482, 0.316810, 0.000000, 0.880633, 0.427935, 0.460850, 0.416236, 0.754057, 0.500010)

    def get_components(self, num_classes: int = 10):
        torch.manual_seed(0)
        config = StyleGANConfig(
            resolution=16,
            latent_dim=16,
            w_dim=16,
            mapping_layers=2,
            channel_base=128,
            channel_max=16,
            num_classes=num_classes,
        )
        stylegan = StyleGANGenerator(config).eval()
        with torch.no_grad():
            for module in stylegan.modules():  # visible noise (it starts at 0), so noise handling is tested too
                if hasattr(module, "strength"):
                    module.strength.fill_(0.3)
            stylegan.mapping.w_avg.copy_(torch.randn(16, generator=seeded(9)))
        return {"stylegan": stylegan}

    def latent_shape(self, pipeline):
        return (pipeline.stylegan.config.latent_dim,)

    def replay_inputs(self, output):
        return {**super().replay_inputs(output), "noise_mode": "const"}

    @pytest.fixture
    def pipeline(self):
        return self.get_pipeline(num_classes=0)

    def test_noise_comes_from_the_generator(self, pipeline):
        first = pipeline(batch_size=2, generator=seeded(0), output_type="pt")
        assert isinstance(first, StyleGANPipelineOutput)
        # same z, other noise: a different image (the noise strengths are not zero here)
        renoised = pipeline(latents=first.latents, generator=seeded(5), output_type="pt").images
        assert not torch.allclose(renoised, first.images)
        constant = pipeline(latents=first.latents, noise_mode="const", output_type="pt").images
        assert torch.equal(constant, pipeline(latents=first.latents, noise_mode="const", output_type="pt").images)
        silent = pipeline(latents=first.latents, noise_mode="none", output_type="pt").images
        assert not torch.allclose(silent, constant)
        with raises_value_error("noise_mode must be one of", "'loud'"):
            pipeline(noise_mode="loud")

    def test_conditional_labels_reach_the_mapping(self):
        pipeline = self.get_pipeline()
        drawn = pipeline(batch_size=4, generator=seeded(0), output_type="pt")
        given = pipeline(latents=drawn.latents, class_labels=drawn.class_labels, noise_mode="none", output_type="pt")
        assert torch.allclose(given.ws, drawn.ws)
        with torch.no_grad():
            assert torch.allclose(drawn.ws, pipeline.stylegan.map(drawn.latents, drawn.class_labels))

    def test_truncation(self, pipeline):
        average = pipeline(batch_size=3, truncation_psi=0.0, noise_mode="const", generator=seeded(0), output_type="pt")
        assert torch.allclose(average.images, average.images[:1].expand(3, -1, -1, -1), atol=1e-6)
        w_avg = pipeline.stylegan.mapping.w_avg
        assert torch.allclose(average.ws, w_avg.expand_as(average.ws))
        half = pipeline(batch_size=3, truncation_psi=0.5, generator=seeded(0), output_type="pt")
        full = pipeline(batch_size=3, truncation_psi=1.0, generator=seeded(0), output_type="pt")
        assert torch.allclose(half.ws, w_avg + 0.5 * (full.ws - w_avg), atol=1e-6)
        with raises_value_error("truncation_psi must lie in [0, 1]"):
            pipeline(truncation_psi=1.5)

    def test_style_mixing(self, pipeline):
        z_a, z_b = torch.randn(2, 16, generator=seeded(0)), torch.randn(2, 16, generator=seeded(1))
        mixed = pipeline.style_mixing(2, latents=z_a, mixing_latents=z_b, output_type="pt")
        with torch.no_grad():
            ws_a, ws_b = pipeline.stylegan.map(z_a), pipeline.stylegan.map(z_b)
        assert torch.allclose(mixed.ws[:, :2], ws_a[:, :2]) and torch.allclose(mixed.ws[:, 2:], ws_b[:, 2:])
        only_a = pipeline.style_mixing(6, latents=z_a, mixing_latents=z_b, output_type="pt")
        plain_a = pipeline(latents=z_a, noise_mode="const", output_type="pt")
        assert torch.allclose(only_a.images, plain_a.images, atol=1e-6)  # crossover after the last layer: no mixing
        assert not torch.allclose(mixed.images, plain_a.images)
        drawn = pipeline.style_mixing(3, batch_size=2, generator=seeded(4), output_type="pt")
        assert torch.equal(
            drawn.images, pipeline.style_mixing(3, batch_size=2, generator=seeded(4), output_type="pt").images
        )

    def test_style_mixing_checks_its_inputs(self, pipeline):
        with raises_value_error("crossover_layer must be an int in [0, 6]", "9"):
            pipeline.style_mixing(9)
        with raises_value_error("batch_size must be a positive int", "0"):
            pipeline.style_mixing(2, batch_size=0)
        with raises_value_error("got 3 generators for batch_size=2"):
            pipeline.style_mixing(2, batch_size=2, generator=[seeded(0), seeded(1), seeded(2)])
        with raises_value_error("mixing_latents must be a torch.Tensor of shape (batch, 16)", "got (2, 3)"):
            pipeline.style_mixing(2, mixing_latents=torch.zeros(2, 3))
        with raises_value_error("latents and mixing_latents must have the same shape"):
            pipeline.style_mixing(2, latents=torch.zeros(2, 16), mixing_latents=torch.zeros(3, 16))
        with raises_value_error("mixing_latents has 3 rows but batch_size=2"):
            pipeline.style_mixing(2, batch_size=2, mixing_latents=torch.zeros(3, 16))

    def test_style_mixing_with_one_generator_per_image(self, pipeline):
        together = pipeline.style_mixing(
            3, batch_size=2, generator=[seeded(1), seeded(2)], noise_mode="random", output_type="pt"
        )
        for index, seed in enumerate((1, 2)):
            alone = pipeline.style_mixing(
                3, batch_size=1, generator=seeded(seed), noise_mode="random", output_type="pt"
            )
            assert torch.allclose(together.images[index], alone.images[0], atol=1e-6)

    @pytest.mark.parametrize("space", ["w", "z"])
    def test_interpolation_ends_at_the_two_images(self, pipeline, space):
        start, end = torch.randn(16, generator=seeded(0)), torch.randn(16, generator=seeded(1))
        path = pipeline.interpolate(start, end, num_steps=4, space=space, output_type="pt")
        ends = pipeline(latents=torch.stack([start, end]), noise_mode="const", output_type="pt").images
        assert path.images.shape == (4, 1, 16, 16)
        assert torch.allclose(path.images[[0, -1]], ends, atol=1e-5)
        if space == "w":
            middle = (path.ws[0] + path.ws[-1]) / 2
            assert torch.allclose((path.ws[1] + path.ws[2]) / 2, middle, atol=1e-5)  # evenly spaced on a line in W
            assert path.latents is None
        else:
            norms = torch.stack([start.norm(), end.norm()])
            assert torch.allclose(path.latents.norm(dim=1)[[0, -1]], norms, atol=1e-5)
        with raises_value_error("space must be 'w' or 'z'", "'s'"):
            pipeline.interpolate(start, end, space="s")
        with raises_value_error("latents_start must be a tensor of shape (16,)", "got (8,)"):
            pipeline.interpolate(start[:8], end)

    def test_synthesizes_given_ws(self, pipeline):
        first = pipeline(batch_size=2, generator=seeded(0), noise_mode="const", output_type="pt")
        assert torch.equal(pipeline.synthesize(first.ws, output_type="pt").images, first.images)
        noisy = pipeline.synthesize(first.ws, noise_mode="random", generator=seeded(1), output_type="pt").images
        assert torch.equal(
            noisy, pipeline.synthesize(first.ws, noise_mode="random", generator=seeded(1), output_type="pt").images
        )
        with raises_value_error("ws must be a torch.Tensor of shape (batch, 6, 16)", "got (2, 16)"):
            pipeline.synthesize(first.ws[:, 0])
        with raises_value_error("got 1 generators for batch_size=2"):
            pipeline.synthesize(first.ws, generator=[seeded(0)])
