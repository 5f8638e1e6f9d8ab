import json

import numpy as np
import PIL.Image
import pytest
import torch

from hfgen import VAEPipeline, VAEPipelineOutput


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


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


def test_output_types(pipeline):
    pil = pipeline(batch_size=2, generator=seeded(0)).images
    array = pipeline(batch_size=2, generator=seeded(0), output_type="np").images
    tensor = pipeline(batch_size=2, generator=seeded(0), output_type="pt").images
    latent = pipeline(batch_size=2, generator=seeded(0), output_type="latent")

    assert len(pil) == 2 and all(image.size == (16, 16) and image.mode == "L" for image in pil)
    assert isinstance(array, np.ndarray) and array.shape == (2, 16, 16, 1)
    assert 0 <= array.min() and array.max() <= 1
    assert torch.allclose(torch.from_numpy(array).permute(0, 3, 1, 2), tensor, atol=1e-6)
    assert np.array_equal(np.asarray(pil[1]), (array[1, :, :, 0] * 255).round().astype(np.uint8))
    assert torch.equal(latent.images, latent.latents) and latent.images.shape == (2, 2, 8, 8)


def test_return_dict_false_gives_images_and_latents(pipeline):
    images, latents = pipeline(batch_size=2, generator=seeded(0), output_type="pt", return_dict=False)
    output = pipeline(batch_size=2, generator=seeded(0), output_type="pt")
    assert torch.equal(images, output.images) and torch.equal(latents, output.latents)


def test_seeded_sampling_is_deterministic(pipeline):
    first = pipeline(batch_size=2, generator=seeded(5), output_type="np").images
    again = pipeline(batch_size=2, generator=seeded(5), output_type="np").images
    other = pipeline(batch_size=2, generator=seeded(6), output_type="np").images
    assert np.array_equal(first, again)
    assert not np.allclose(first, other)


def test_a_list_of_generators_gives_one_per_image(pipeline):
    together = pipeline(batch_size=2, generator=[seeded(1), seeded(2)], output_type="pt")
    for index, seed in enumerate((1, 2)):
        alone = pipeline(batch_size=1, generator=seeded(seed), output_type="pt")
        assert torch.equal(together.latents[index], alone.latents[0])
        assert torch.allclose(together.images[index], alone.images[0], atol=1e-6)
    with pytest.raises(ValueError, match="got 3 generators for batch_size=2"):
        pipeline(batch_size=2, generator=[seeded(0), seeded(1), seeded(2)])


def test_given_latents_are_decoded(pipeline, tiny_vae):
    latents = torch.randn(3, 2, 8, 8, generator=seeded(9))
    output = pipeline(latents=latents, output_type="pt")
    assert torch.equal(output.latents, latents)
    with torch.no_grad():
        assert torch.allclose(output.images, to_unit_range(tiny_vae.decode(latents).sample), atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 3, 8, 8), (1, 2, 4, 4), (2, 8, 8)])
def test_latents_of_the_wrong_shape_raise(pipeline, shape):
    with pytest.raises(ValueError, match=r"latents must have shape \(batch, 2, 8, 8\)"):
        pipeline(latents=torch.zeros(shape))


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
    first = pipeline.reconstruct(digit_images, sample_posterior=True, generator=seeded(3), output_type="latent").latents
    again = pipeline.reconstruct(digit_images, sample_posterior=True, generator=seeded(3), output_type="latent").latents
    other = pipeline.reconstruct(digit_images, sample_posterior=True, generator=seeded(4), output_type="latent").latents
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
    with pytest.raises(ValueError, match="num_steps must be at least 2"):
        pipeline.interpolate(digit_images[0], digit_images[1], num_steps=1)


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


def test_save_and_load_round_trip(pipeline, digit_images, tmp_path):
    pipeline.save_pretrained(tmp_path)
    model_index = json.loads((tmp_path / "model_index.json").read_text())
    assert model_index["_class_name"] == "VAEPipeline"
    assert model_index["vae"] == ["hfgen.models.vae.modeling_vae", "VAEModel"]
    assert (tmp_path / "vae" / "model.safetensors").is_file() and (tmp_path / "vae" / "config.json").is_file()

    loaded = VAEPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert torch.equal(
        loaded(batch_size=2, generator=seeded(0), output_type="pt").images,
        pipeline(batch_size=2, generator=seeded(0), output_type="pt").images,
    )
    reconstructions = pipeline.reconstruct(digit_images, output_type="pt").images
    assert torch.equal(loaded.reconstruct(digit_images, output_type="pt").images, reconstructions)
