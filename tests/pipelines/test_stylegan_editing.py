"""StyleGAN inversion and latent editing on a tiny generator: inverting the generator's own images recovers them
(much closer than the start, W+ at least as close as W), principal directions are orthonormal and ordered by the
variance of w, a linear classifier finds a planted attribute direction, and edits move the ws exactly."""

import numpy as np
import pytest
import torch
from PIL import Image

from hfgen import StyleGANConfig, StyleGANGenerator, StyleGANPipeline
from hfgen.metrics import psnr
from hfgen.pipelines.stylegan.editing import classifier_direction, mapped_ws, principal_directions


@pytest.fixture(scope="module")
def pipeline():
    config = StyleGANConfig(
        resolution=16, num_channels=1, latent_dim=16, w_dim=16, mapping_layers=2, channel_base=128, channel_max=16
    )
    torch.manual_seed(0)
    generator = StyleGANGenerator(config).eval()
    with torch.no_grad():  # varied synthesis weights: an untrained generator's images barely differ
        for name, parameter in generator.named_parameters():
            if parameter.ndim > 1 and name.startswith("synthesis"):
                parameter.normal_(0.0, 1.0)
    return StyleGANPipeline(stylegan=generator)


def own_images(pipeline, count: int = 2) -> torch.Tensor:
    z = torch.randn(count, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        return pipeline.stylegan.synthesize(pipeline.stylegan.map(z), noise_mode="const")


def test_inverting_the_generators_own_images_recovers_them(pipeline):
    targets = own_images(pipeline)
    start = mapped_ws(pipeline.stylegan).mean(0).expand(2, pipeline.stylegan.num_ws, -1)
    with torch.no_grad():
        start_psnr = psnr(pipeline.stylegan.synthesize(start, noise_mode="const"), targets).item()
    results = {}
    for space in ("w", "w+"):
        output = pipeline.invert((targets + 1) / 2, num_steps=150, space=space, output_type="pt")
        assert output.ws.shape == (2, pipeline.stylegan.num_ws, 16) and output.distances.shape == (2,)
        if space == "w":  # one w shared by every layer
            assert torch.equal(output.ws[:, :1].expand_as(output.ws), output.ws)
        results[space] = (psnr(output.images * 2 - 1, targets).item(), output.distances.sum().item())
        # the ws given back draw the reconstruction
        redrawn = pipeline.synthesize(output.ws, output_type="pt").images
        assert torch.allclose(redrawn, output.images, atol=1e-5)
    assert results["w"][0] > start_psnr + 8, (results, start_psnr)
    assert results["w+"][1] <= results["w"][1] * 1.05  # more freedom fits at least as well


def test_inversion_takes_pil_images_of_any_size_and_mode(pipeline):
    targets = own_images(pipeline, 1)
    pixels = ((targets[0, 0] + 1) * 127.5).clamp(0, 255).round().byte().numpy()
    image = Image.fromarray(pixels).convert("RGB").resize((40, 40), Image.BICUBIC)
    output = pipeline.invert(image, num_steps=5, space="w")
    assert output.images[0].size == (16, 16)
    with pytest.raises(ValueError, match="space must be 'w' or 'w\\+'"):
        pipeline.invert(image, num_steps=1, space="z")
    with pytest.raises(ValueError, match="images must be a PIL image"):
        pipeline.invert("face.png", num_steps=1)


def test_principal_directions_are_orthonormal_and_ordered_by_variance(pipeline):
    directions, deviations = principal_directions(pipeline.stylegan, num_components=4, num_samples=2000)
    assert directions.shape == (4, 16)
    assert torch.allclose(directions @ directions.T, torch.eye(4), atol=1e-5)
    assert torch.all(deviations[:-1] >= deviations[1:])
    ws = mapped_ws(pipeline.stylegan, 2000)
    projected = (ws - ws.mean(0)) @ directions.T
    assert torch.allclose(projected.std(dim=0), deviations, rtol=1e-3)
    # no direction of w varies more than the first
    random_direction = torch.nn.functional.normalize(
        torch.randn(16, generator=torch.Generator().manual_seed(5)), dim=0
    )
    assert ((ws - ws.mean(0)) @ random_direction).std() <= deviations[0] + 1e-6


def test_a_linear_classifier_finds_a_planted_attribute_direction():
    generator = torch.Generator().manual_seed(0)
    planted = torch.nn.functional.normalize(torch.randn(16, generator=generator), dim=0)
    ws = torch.randn(400, 16, generator=generator)
    labels = (ws @ planted > 0.1).long().numpy()
    found = classifier_direction(ws, labels)
    assert found.norm().item() == pytest.approx(1.0) and (found @ planted).item() > 0.9
    with pytest.raises(ValueError, match="labels must be 0"):
        classifier_direction(ws, np.ones(400))


def test_edits_move_the_ws_along_the_direction_on_the_layers_asked(pipeline):
    ws = pipeline.stylegan.map(torch.randn(2, 16, generator=torch.Generator().manual_seed(1)))
    direction = torch.nn.functional.normalize(torch.ones(16), dim=0)
    unchanged = pipeline.edit(ws, direction, strength=0.0, output_type="pt")
    assert torch.equal(unchanged.ws, ws)
    edited = pipeline.edit(ws, direction, strength=[1.0, -2.0], layers=(2, 4), output_type="pt")
    expected = ws.clone()
    expected[0, 2:4] += direction
    expected[1, 2:4] -= 2 * direction
    assert torch.allclose(edited.ws, expected)
    assert not torch.allclose(edited.images, unchanged.images)
    with pytest.raises(ValueError, match="direction must have shape"):
        pipeline.edit(ws, torch.ones(3))
    with pytest.raises(ValueError, match="layers must be"):
        pipeline.edit(ws, direction, layers=(3, 3))
