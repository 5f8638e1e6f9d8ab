"""VAEPipeline: the shared pipeline tests, then sampling, reconstruction, interpolation and attribute vectors."""

import numpy as np
import PIL.Image
import pytest
import torch

from hfgen import VAEConfig, VAEModel, VAEPipeline, VAEPipelineOutput
from hfgen.testing.pipeline_tester import PipelineTesterMixin, raises_value_error, seeded


class TestVAEPipeline(PipelineTesterMixin):
    pipeline_class = VAEPipeline
    # Generated once from this code, with the model changes then in the working tree (VAE decoding the
    # posterior mean, StyleGAN noise from the passed generator): regenerate whenever the model's maths or
    # initialisation change, by running test_expected_slice and pasting the values its failure prints.
    expected_slice = (0.541630, 0.547302, 0.543180, 0.727228, 0.463075, 0.307692, 0.429292, 0.318566, 0.355466)

    def get_components(self, **config_overrides):
        torch.manual_seed(0)
        config = VAEConfig(
            in_channels=1,
            sample_size=16,
            block_out_channels=[8, 16],
            norm_num_groups=4,
            latent_channels=2,
            **config_overrides,
        )
        return {"vae": VAEModel(config).eval()}

    def latent_shape(self, pipeline):
        return (pipeline.vae.config.latent_channels, pipeline.vae.config.latent_size, pipeline.vae.config.latent_size)


@pytest.fixture
def pipeline(tiny_vae) -> VAEPipeline:
    pipeline = VAEPipeline(vae=tiny_vae)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@pytest.fixture(scope="module")
def digit_images(digits16) -> list[PIL.Image.Image]:
    """Four real digits (0, 1, 2, 3) as 16x16 greyscale PIL images."""
    train = digits16["train"]
    labels = list(train["label"])
    return [train[labels.index(digit)]["image"] for digit in range(4)]


def to_unit_range(decoded: torch.Tensor) -> torch.Tensor:
    """What `output_type="pt"` gives for decoder outputs in [-1, 1]."""
    return (decoded / 2 + 0.5).clamp(0, 1)


def posterior_means(vae, images: list[PIL.Image.Image]) -> torch.Tensor:
    arrays = np.stack([np.asarray(image, dtype=np.float32) / 127.5 - 1 for image in images])
    pixels = torch.from_numpy(arrays).unsqueeze(1)
    with torch.no_grad():
        return vae.encode(pixels).latent_dist.mean


# --- sampling from the prior ---


def test_call_samples_from_the_prior(pipeline, tiny_vae):
    output = pipeline(batch_size=3, generator=seeded(0), output_type="pt")
    assert isinstance(output, VAEPipelineOutput)
    assert output.images.shape == (3, 1, 16, 16)
    assert output.latents.shape == (3, 2, 8, 8)
    assert torch.equal(output.latents, torch.randn(3, 2, 8, 8, generator=seeded(0)))
    with torch.no_grad():
        assert torch.allclose(output.images, to_unit_range(tiny_vae.decode(output.latents).sample), atol=1e-6)


def test_latent_output_type_returns_the_latents_undecoded(pipeline):
    latent = pipeline(batch_size=2, generator=seeded(0), output_type="latent")
    assert torch.equal(latent.images, latent.latents) and latent.images.shape == (2, 2, 8, 8)
    assert torch.equal(latent.latents, pipeline(batch_size=2, generator=seeded(0), output_type="pt").latents)


@pytest.mark.parametrize("shape", [(1, 3, 8, 8), (1, 2, 4, 4), (2, 8, 8), (0, 2, 8, 8)])
def test_latents_of_the_wrong_shape_raise(pipeline, shape):
    with raises_value_error("latents must be a torch.Tensor of shape (batch, 2, 8, 8)", f"got {shape}"):
        pipeline(latents=torch.zeros(shape))
    with raises_value_error("latents must be a torch.Tensor of shape (batch, 2, 8, 8)", "got ndarray"):
        pipeline(latents=np.zeros((1, 2, 8, 8)))


# --- reconstruction ---


def test_reconstruct_decodes_the_posterior_mean(pipeline, tiny_vae, digit_images):
    output = pipeline.reconstruct(digit_images, output_type="pt")
    means = posterior_means(tiny_vae, digit_images)
    assert torch.allclose(output.latents, means, atol=1e-6)
    with torch.no_grad():
        assert torch.allclose(output.images, to_unit_range(tiny_vae.decode(means).sample), atol=1e-6)


def test_reconstruct_accepts_pil_numpy_and_tensors_alike(pipeline, digit_images):
    arrays = np.stack([np.asarray(image, dtype=np.float32)[:, :, None] / 255 for image in digit_images])
    from_pil = pipeline.reconstruct(digit_images, output_type="latent").latents
    from_numpy = pipeline.reconstruct(arrays, output_type="latent").latents
    from_tensor = pipeline.reconstruct(torch.from_numpy(arrays).permute(0, 3, 1, 2), output_type="latent").latents
    single = pipeline.reconstruct(digit_images[2], output_type="latent").latents
    assert torch.allclose(from_numpy, from_pil, atol=1e-5)
    assert torch.allclose(from_tensor, from_pil, atol=1e-5)
    assert torch.allclose(single[0], from_pil[2], atol=1e-5)


def test_reconstruct_resizes_to_the_sample_size(pipeline, digit_images):
    large = [image.resize((32, 32)) for image in digit_images[:2]]
    assert pipeline.reconstruct(large, output_type="pt").images.shape == (2, 1, 16, 16)


def test_reconstruct_with_a_posterior_sample_follows_the_generator(pipeline, digit_images):
    first = pipeline.reconstruct(
        digit_images, sample_posterior=True, generator=seeded(3), output_type="latent"
    ).latents
    again = pipeline.reconstruct(
        digit_images, sample_posterior=True, generator=seeded(3), output_type="latent"
    ).latents
    other = pipeline.reconstruct(
        digit_images, sample_posterior=True, generator=seeded(4), output_type="latent"
    ).latents
    mean = pipeline.reconstruct(digit_images, output_type="latent").latents
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)
    assert not torch.allclose(first, mean)


def test_reconstruct_rejects_images_with_the_wrong_channel_count(pipeline):
    with pytest.raises(ValueError, match="images have 3 channels but the VAE expects 1"):
        pipeline.reconstruct(torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match="images is empty"):
        pipeline.reconstruct([])


# --- interpolation ---


@pytest.mark.parametrize("method", ["linear", "spherical"])
def test_interpolation_ends_are_the_reconstructions(pipeline, digit_images, method):
    start, end = digit_images[0], digit_images[1]
    output = pipeline.interpolate(start, end, num_steps=5, method=method, output_type="pt")
    reconstructions = pipeline.reconstruct([start, end], output_type="pt")
    assert output.images.shape == (5, 1, 16, 16)
    assert torch.allclose(output.latents[0], reconstructions.latents[0], atol=1e-6)
    assert torch.allclose(output.latents[-1], reconstructions.latents[1], atol=1e-6)
    assert torch.allclose(output.images[0], reconstructions.images[0], atol=1e-6)
    assert torch.allclose(output.images[-1], reconstructions.images[1], atol=1e-6)


def test_linear_and_spherical_midpoints(pipeline, digit_images, tiny_vae):
    start, end = posterior_means(tiny_vae, digit_images[:2])
    first, second = digit_images[:2]
    linear = pipeline.interpolate(first, second, num_steps=3, output_type="latent").latents
    spherical = pipeline.interpolate(first, second, num_steps=3, method="spherical", output_type="latent").latents
    assert torch.allclose(linear[1], (start + end) / 2, atol=1e-5)
    angle = torch.arccos(torch.dot(start.flatten(), end.flatten()) / (start.norm() * end.norm()))
    expected = (start + end) * torch.sin(angle / 2) / torch.sin(angle)
    assert torch.allclose(spherical[1], expected, atol=1e-5)
    assert not torch.allclose(spherical[1], linear[1], atol=1e-4)


def test_interpolation_errors(pipeline, digit_images):
    with pytest.raises(ValueError, match=r"method must be one of \('linear', 'spherical'\), got 'cubic'"):
        pipeline.interpolate(digit_images[0], digit_images[1], method="cubic")
    for bad in (1, 2.5, True):
        with raises_value_error("num_steps must be an int of at least 2", repr(bad)):
            pipeline.interpolate(digit_images[0], digit_images[1], num_steps=bad)


# --- attribute vectors ---


def test_attribute_vector_is_the_difference_of_mean_latents(pipeline, tiny_vae, digit_images):
    vector = pipeline.attribute_vector(digit_images[:2], digit_images[2:])
    means = posterior_means(tiny_vae, digit_images)
    assert vector.shape == (2, 8, 8)
    assert torch.allclose(vector, means[:2].mean(dim=0) - means[2:].mean(dim=0), atol=1e-5)


def test_apply_attribute_moves_the_latents_along_the_vector(pipeline, digit_images):
    vector = pipeline.attribute_vector(digit_images[:1], digit_images[1:2])
    reconstruction = pipeline.reconstruct(digit_images[2:], output_type="pt")
    unchanged = pipeline.apply_attribute(digit_images[2:], vector, strength=0.0, output_type="pt")
    assert torch.allclose(unchanged.images, reconstruction.images, atol=1e-6)
    moved = pipeline.apply_attribute(digit_images[2:], vector, strength=-1.5, output_type="pt")
    assert torch.allclose(moved.latents, reconstruction.latents - 1.5 * vector, atol=1e-5)
    assert not torch.allclose(moved.images, reconstruction.images, atol=1e-4)


def test_apply_attribute_rejects_a_vector_of_the_wrong_shape(pipeline, digit_images):
    with pytest.raises(ValueError, match=r"attribute_vector must have shape \(2, 8, 8\), got \(1, 2, 8, 8\)"):
        pipeline.apply_attribute(digit_images, torch.zeros(1, 2, 8, 8))


@pytest.mark.parametrize("mode", ["call", "reconstruct", "interpolate", "apply_attribute"])
def test_every_mode_rejects_an_unknown_output_type(pipeline, digit_images, mode):
    calls = {
        "call": lambda: pipeline(output_type="jpeg"),
        "reconstruct": lambda: pipeline.reconstruct(digit_images, output_type="jpeg"),
        "interpolate": lambda: pipeline.interpolate(digit_images[0], digit_images[1], output_type="jpeg"),
        "apply_attribute": lambda: pipeline.apply_attribute(digit_images, torch.zeros(2, 8, 8), output_type="jpeg"),
    }
    with pytest.raises(ValueError, match=r"output_type must be one of \('pil', 'np', 'pt', 'latent'\), got 'jpeg'"):
        calls[mode]()


# --- saving and loading ---


def test_reloaded_pipeline_reconstructs_alike(pipeline, digit_images, tmp_path):
    pipeline.save_pretrained(tmp_path)
    loaded = VAEPipeline.from_pretrained(tmp_path)
    reconstructions = pipeline.reconstruct(digit_images, output_type="pt").images
    assert torch.equal(loaded.reconstruct(digit_images, output_type="pt").images, reconstructions)


def test_reconstruct_takes_one_generator_per_image(pipeline, digit_images):
    together = pipeline.reconstruct(
        digit_images[:2], sample_posterior=True, generator=[seeded(1), seeded(2)], output_type="latent"
    ).latents
    for index, seed in enumerate((1, 2)):
        alone = pipeline.reconstruct(
            digit_images[index], sample_posterior=True, generator=seeded(seed), output_type="latent"
        ).latents
        assert torch.allclose(together[index], alone[0], atol=1e-6)
    with raises_value_error("got 1 generators for batch_size=2"):
        pipeline.reconstruct(digit_images[:2], sample_posterior=True, generator=[seeded(1)])
    with raises_value_error("generator must be a torch.Generator", "'seed'"):
        pipeline.reconstruct(digit_images[:2], sample_posterior=True, generator="seed")
