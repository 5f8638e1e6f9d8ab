"""ScoreSdePipeline: the shared pipeline tests, then the predictor-corrector sampler against a score known in closed
form."""

import math

import torch
from diffusers import ScoreSdeVeScheduler, UNet2DModel

from hfgen import ScoreSdePipeline
from hfgen.testing.pipeline_tester import PipelineTesterMixin, seeded

from .test_pipeline_ddpm import tiny_unet


def tiny_score_unet(**overrides) -> UNet2DModel:
    """The tiny UNet of the DDPM tests with Fourier (log-sigma) time embedding, as a score network has."""
    return tiny_unet(**{"time_embedding_type": "fourier", **overrides})


class TestScoreSdePipeline(PipelineTesterMixin):
    pipeline_class = ScoreSdePipeline
    # Generated once from this code (tiny_score_unet, 2 predictor-corrector steps): regenerate after an intended
    # change by running test_expected_slice and pasting the values its failure prints.
    expected_slice = (0.238890, 1.000000, 0.000000, 1.000000, 1.000000, 0.078141, 0.916226, 1.000000, 0.147954)

    def get_components(self, correct_steps: int = 1, **config_overrides):
        scheduler = ScoreSdeVeScheduler(sigma_min=0.01, sigma_max=1.0, correct_steps=correct_steps)
        return {"unet": tiny_score_unet(**config_overrides), "scheduler": scheduler}

    def latent_shape(self, pipeline):
        return (1, 16, 16)

    def get_inputs(self, generator, batch_size: int = 2) -> dict:
        return {"batch_size": batch_size, "generator": generator, "num_inference_steps": 2}

    def test_list_of_generators_matches_single_image_calls(self):
        # The corrector's step size is the batch's (Song et al.), so images match alone only without it; the
        # starting noise and the predictor's noise always come from each image's generator.
        pipeline = self.get_pipeline(correct_steps=0)
        together = self.run_pipeline(pipeline, seed=[1, 2], batch_size=2)
        for index, seed in enumerate((1, 2)):
            alone = self.run_pipeline(pipeline, seed=seed, batch_size=1)
            assert torch.equal(together.latents[index], alone.latents[0])
            assert torch.allclose(together.images[index], alone.images[0], atol=1e-6)

    def test_to_float64_and_cpu(self):
        # Every step adds noise, so a run is replayed with its generator, not its latents alone; a float64 run draws
        # other numbers from the same seed, so it is compared with itself.
        pipeline = self.get_pipeline()
        reference = self.run_pipeline(pipeline, seed=5).images
        assert torch.equal(self.run_pipeline(pipeline.to("cpu"), seed=5).images, reference)
        pipeline = pipeline.to(torch.float64)
        assert pipeline.unet.dtype == torch.float64
        images = [self.run_pipeline(pipeline, seed=5).images for _ in range(2)]
        assert images[0].dtype == torch.float64 and torch.equal(*images)


class GaussianScore(torch.nn.Module):
    """The exact score of N(0, s^2 I) smoothed by noise sigma, -x / (s^2 + sigma^2), behind the UNet interface."""

    def __init__(self, data_std: float, channels: int = 1, size: int = 16):
        super().__init__()
        self.data_std = data_std
        self.config = type("Config", (), {"sample_size": size, "in_channels": channels})()
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # gives the module a device and dtype

    @property
    def dtype(self):
        return self.anchor.dtype

    @property
    def device(self):
        return self.anchor.device

    def forward(self, sample, sigma):
        variance = self.data_std**2 + sigma.reshape(-1, 1, 1, 1) ** 2
        return type("Output", (), {"sample": -sample / variance})()


def test_predictor_corrector_sampling_recovers_a_gaussian():
    # With the true score of N(0, 0.25^2), reverse-SDE sampling from sigma_max = 10 must end at that distribution.
    data_std = 0.25
    pipeline = ScoreSdePipeline(
        unet=tiny_score_unet(),
        scheduler=ScoreSdeVeScheduler(sigma_min=0.01, sigma_max=10.0, snr=0.16),
    )
    pipeline.unet = GaussianScore(data_std)
    pipeline.set_progress_bar_config(disable=True)
    images = pipeline(batch_size=64, generator=seeded(0), num_inference_steps=200, output_type="pt").images
    samples = images * 2 - 1  # back to the data range [-1, 1]
    assert abs(samples.mean().item()) < 0.02
    assert math.isclose(samples.std().item(), data_std, rel_tol=0.05)
