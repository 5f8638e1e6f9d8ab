"""GANPipeline and StyleGANPipeline: every mode, determinism under a seeded generator, save/load, bad inputs."""

import json

import numpy as np
import PIL.Image
import pytest
import torch

from hfgen import (
    GANConfig,
    GANGenerator,
    GANPipeline,
    GANPipelineOutput,
    StyleGANConfig,
    StyleGANGenerator,
    StyleGANPipeline,
    StyleGANPipelineOutput,
)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def gan_pipeline() -> GANPipeline:
    torch.manual_seed(0)
    config = GANConfig(latent_dim=8, image_size=16, generator_channels=4, max_channels=16, num_classes=10)
    pipeline = GANPipeline(gan=GANGenerator(config).eval())
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@pytest.fixture
def stylegan_pipeline() -> StyleGANPipeline:
    torch.manual_seed(0)
    config = StyleGANConfig(resolution=16, latent_dim=16, w_dim=16, mapping_layers=2, channel_base=128, channel_max=16)
    stylegan = StyleGANGenerator(config).eval()
    with torch.no_grad():
        for module in stylegan.modules():  # visible noise, so noise handling is tested too
            if hasattr(module, "strength"):
                module.strength.fill_(0.3)
        stylegan.mapping.w_avg.copy_(torch.randn(16, generator=seeded(9)))
    return StyleGANPipeline(stylegan=stylegan)


# --- GANPipeline ---


def test_gan_pipeline_output_types_and_determinism(gan_pipeline):
    pil = gan_pipeline(batch_size=3, class_labels=4, generator=seeded(0))
    assert isinstance(pil, GANPipelineOutput) and len(pil.images) == 3
    assert isinstance(pil.images[0], PIL.Image.Image) and pil.images[0].size == (16, 16)
    array = gan_pipeline(batch_size=3, class_labels=4, generator=seeded(0), output_type="np").images
    tensor = gan_pipeline(batch_size=3, class_labels=4, generator=seeded(0), output_type="pt").images
    assert array.shape == (3, 16, 16, 1) and tensor.shape == (3, 1, 16, 16)
    assert 0 <= tensor.min() and tensor.max() <= 1
    assert np.allclose(array[..., 0], tensor[:, 0].numpy(), atol=1e-6)
    assert np.array_equal(np.asarray(pil.images[1]), np.round(array[1, ..., 0] * 255).astype(np.uint8))
    other = gan_pipeline(batch_size=3, class_labels=4, generator=seeded(1), output_type="pt").images
    assert not torch.allclose(tensor, other)
    images, latents, labels = gan_pipeline(batch_size=3, class_labels=4, generator=seeded(0), output_type="pt",
                                           return_dict=False)
    assert torch.equal(images, tensor) and latents.shape == (3, 8) and labels.tolist() == [4, 4, 4]


def test_gan_pipeline_class_labels_and_latents(gan_pipeline):
    z = torch.randn(2, 8, generator=seeded(0))
    by_label = gan_pipeline(latents=z.clone(), class_labels=[1, 7], output_type="pt")
    assert by_label.class_labels.tolist() == [1, 7]
    expected = gan_pipeline.gan(z, labels=torch.tensor([1, 7])).sample * 0.5 + 0.5
    assert torch.allclose(by_label.images, expected.clamp(0, 1), atol=1e-6)
    per_image = [seeded(0), seeded(1)]
    drawn = gan_pipeline(batch_size=2, class_labels=3, generator=per_image, output_type="pt").latents
    assert torch.equal(drawn[1], torch.randn(1, 8, generator=seeded(1))[0])


def test_gan_pipeline_interpolates_between_latents(gan_pipeline):
    start, end = torch.randn(8, generator=seeded(0)), torch.randn(8, generator=seeded(1))
    output = gan_pipeline.interpolate(start, end, num_steps=5, class_labels=2, output_type="pt")
    assert output.images.shape == (5, 1, 16, 16)
    assert torch.allclose(output.latents[0], start) and torch.allclose(output.latents[-1], end, atol=1e-6)
    ends = gan_pipeline(latents=torch.stack([start, end]), class_labels=2, output_type="pt").images
    assert torch.allclose(output.images[[0, -1]], ends, atol=1e-5)


def test_gan_pipeline_draws_labels_from_the_generator_when_none_are_given(gan_pipeline):
    drawn = gan_pipeline(batch_size=16, generator=seeded(0), output_type="pt")
    again = gan_pipeline(batch_size=16, generator=seeded(0), output_type="pt")
    assert torch.equal(drawn.class_labels, again.class_labels) and torch.equal(drawn.images, again.images)
    assert len(set(drawn.class_labels.tolist())) > 3  # uniform over the 10 classes, not one class
    expected = gan_pipeline(latents=drawn.latents, class_labels=drawn.class_labels, output_type="pt").images
    assert torch.allclose(drawn.images, expected)
    with pytest.raises(ValueError, match="pass class_labels for the path"):
        gan_pipeline.interpolate(torch.zeros(8), torch.ones(8))


def test_gan_pipeline_bad_inputs(gan_pipeline):
    with pytest.raises(ValueError, match=r"class_labels must lie in \[0, 9\]"):
        gan_pipeline(batch_size=1, class_labels=10)
    with pytest.raises(ValueError, match="got 3 class_labels for 2 images"):
        gan_pipeline(batch_size=2, class_labels=[1, 2, 3])
    with pytest.raises(ValueError, match="output_type must be one of"):
        gan_pipeline(class_labels=1, output_type="latent")
    with pytest.raises(ValueError, match=r"latents must have shape \(batch, 8\)"):
        gan_pipeline(latents=torch.zeros(2, 3), class_labels=1)


def test_gan_pipeline_save_and_reload(gan_pipeline, tmp_path):
    gan_pipeline.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["_class_name"] == "GANPipeline"
    assert index["gan"] == ["hfgen.models.gan.modeling_gan", "GANGenerator"]
    loaded = GANPipeline.from_pretrained(tmp_path)
    assert torch.equal(loaded(batch_size=2, class_labels=5, generator=seeded(3), output_type="pt").images,
                       gan_pipeline(batch_size=2, class_labels=5, generator=seeded(3), output_type="pt").images)


# --- StyleGANPipeline ---


def test_stylegan_pipeline_is_deterministic_under_a_seeded_generator(stylegan_pipeline):
    first = stylegan_pipeline(batch_size=2, generator=seeded(0), output_type="pt")
    again = stylegan_pipeline(batch_size=2, generator=seeded(0), output_type="pt")
    assert isinstance(first, StyleGANPipelineOutput)
    assert torch.equal(first.images, again.images)  # z and the random noise both come from the generator
    assert not torch.equal(first.images, stylegan_pipeline(batch_size=2, generator=seeded(1), output_type="pt").images)
    # same z, other noise: a different image (the noise strengths are not zero here)
    renoised = stylegan_pipeline(latents=first.latents, generator=seeded(5), output_type="pt").images
    assert not torch.allclose(renoised, first.images)
    constant = stylegan_pipeline(latents=first.latents, noise_mode="const", output_type="pt").images
    assert torch.equal(constant, stylegan_pipeline(latents=first.latents, noise_mode="const", output_type="pt").images)
    pil = stylegan_pipeline(batch_size=2, generator=seeded(0)).images
    assert len(pil) == 2 and pil[0].size == (16, 16)


def test_stylegan_pipeline_draws_labels_for_a_conditional_model():
    torch.manual_seed(0)
    config = StyleGANConfig(resolution=16, latent_dim=16, w_dim=16, mapping_layers=2, channel_base=128, channel_max=16,
                            num_classes=10)
    pipeline = StyleGANPipeline(stylegan=StyleGANGenerator(config).eval())
    drawn = pipeline(batch_size=12, generator=seeded(0), output_type="pt")
    assert drawn.class_labels.shape == (12,) and len(set(drawn.class_labels.tolist())) > 3
    assert torch.equal(drawn.images, pipeline(batch_size=12, generator=seeded(0), output_type="pt").images)
    given = pipeline(latents=drawn.latents, class_labels=drawn.class_labels, noise_mode="none", output_type="pt")
    assert torch.allclose(given.ws, drawn.ws)


def test_stylegan_pipeline_truncation(stylegan_pipeline):
    average = stylegan_pipeline(batch_size=3, truncation_psi=0.0, noise_mode="const", generator=seeded(0),
                                output_type="pt")
    assert torch.allclose(average.images, average.images[:1].expand(3, -1, -1, -1), atol=1e-6)
    w_avg = stylegan_pipeline.stylegan.mapping.w_avg
    assert torch.allclose(average.ws, w_avg.expand_as(average.ws))
    half = stylegan_pipeline(batch_size=3, truncation_psi=0.5, generator=seeded(0), output_type="pt")
    full = stylegan_pipeline(batch_size=3, truncation_psi=1.0, generator=seeded(0), output_type="pt")
    assert torch.allclose(half.ws, w_avg + 0.5 * (full.ws - w_avg), atol=1e-6)
    with pytest.raises(ValueError, match=r"truncation_psi must lie in \[0, 1\]"):
        stylegan_pipeline(truncation_psi=1.5)


def test_stylegan_pipeline_style_mixing(stylegan_pipeline):
    z_a, z_b = torch.randn(2, 16, generator=seeded(0)), torch.randn(2, 16, generator=seeded(1))
    mixed = stylegan_pipeline.style_mixing(2, latents=z_a, mixing_latents=z_b, output_type="pt")
    ws_a, ws_b = stylegan_pipeline.stylegan.map(z_a), stylegan_pipeline.stylegan.map(z_b)
    assert torch.allclose(mixed.ws[:, :2], ws_a[:, :2]) and torch.allclose(mixed.ws[:, 2:], ws_b[:, 2:])
    only_a = stylegan_pipeline.style_mixing(6, latents=z_a, mixing_latents=z_b, output_type="pt")
    plain_a = stylegan_pipeline(latents=z_a, noise_mode="const", output_type="pt")
    assert torch.allclose(only_a.images, plain_a.images, atol=1e-6)  # crossover after the last layer: no mixing
    assert not torch.allclose(mixed.images, plain_a.images)
    drawn = stylegan_pipeline.style_mixing(3, batch_size=2, generator=seeded(4), output_type="pt")
    assert torch.equal(drawn.images, stylegan_pipeline.style_mixing(3, batch_size=2, generator=seeded(4),
                                                                    output_type="pt").images)
    with pytest.raises(ValueError, match=r"crossover_layer must lie in \[0, 6\]"):
        stylegan_pipeline.style_mixing(9)


@pytest.mark.parametrize("space", ["w", "z"])
def test_stylegan_pipeline_interpolation_ends_at_the_two_images(stylegan_pipeline, space):
    start, end = torch.randn(16, generator=seeded(0)), torch.randn(16, generator=seeded(1))
    path = stylegan_pipeline.interpolate(start, end, num_steps=4, space=space, output_type="pt")
    ends = stylegan_pipeline(latents=torch.stack([start, end]), noise_mode="const", output_type="pt").images
    assert path.images.shape == (4, 1, 16, 16)
    assert torch.allclose(path.images[[0, -1]], ends, atol=1e-5)
    if space == "w":
        middle = (path.ws[0] + path.ws[-1]) / 2
        assert torch.allclose((path.ws[1] + path.ws[2]) / 2, middle, atol=1e-5)  # evenly spaced on a line in W
        assert path.latents is None
    else:
        assert torch.allclose(path.latents.norm(dim=1)[[0, -1]], torch.stack([start.norm(), end.norm()]), atol=1e-5)
    with pytest.raises(ValueError, match="space must be 'w' or 'z'"):
        stylegan_pipeline.interpolate(start, end, space="s")


def test_stylegan_pipeline_synthesizes_given_ws_and_reloads(stylegan_pipeline, tmp_path):
    first = stylegan_pipeline(batch_size=2, generator=seeded(0), noise_mode="const", output_type="pt")
    again = stylegan_pipeline.synthesize(first.ws, output_type="pt")
    assert torch.equal(again.images, first.images)
    stylegan_pipeline.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["stylegan"] == ["hfgen.models.stylegan.modeling_stylegan", "StyleGANGenerator"]
    loaded = StyleGANPipeline.from_pretrained(tmp_path)
    reloaded = loaded(batch_size=2, generator=seeded(0), truncation_psi=0.7, output_type="pt").images
    assert torch.allclose(reloaded, stylegan_pipeline(batch_size=2, generator=seeded(0), truncation_psi=0.7,
                                                      output_type="pt").images, atol=1e-6)
