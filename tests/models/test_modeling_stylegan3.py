"""StyleGAN 3 (`generator_architecture="alias_free"`): the shared model tests for the translation- and
rotation-equivariant configs, the layer schedule and filter design against hand-checkable properties, the resampling
against `upfirdn2d`, equivariance, the magnitude averages, noise arguments, config errors and fixed values. That the
network computes what NVIDIA's does is checked against NVIDIA's code by `benchmarks/verify_stylegan_conversion.py`."""

import math
from typing import ClassVar

import numpy as np
import pytest
import torch
from peft import LoraConfig

from hfgen import StyleGANConfig, StyleGANDiscriminator, StyleGANGenerator, StyleGANPipeline
from hfgen.models.stylegan import LORA_STYLE_TARGETS
from hfgen.models.stylegan.alias_free import (
    alias_free_layout,
    design_lowpass_filter,
    downsample_filter,
    upsample_filter,
)
from hfgen.models.stylegan.resampling import upfirdn2d
from hfgen.testing.model_tester import ModelTesterMixin


def tiny_config(**changes) -> StyleGANConfig:
    settings = {
        "resolution": 16,
        "latent_dim": 16,
        "w_dim": 16,
        "mapping_layers": 2,
        "channel_base": 64,
        "channel_max": 8,
        "generator_architecture": "alias_free",
        "use_noise": False,
        "num_synthesis_layers": 4,
        "margin_size": 4,
    }
    return StyleGANConfig(**{**settings, **changes})


def z_batch(batch: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 16, generator=torch.Generator().manual_seed(seed))


def psnr(images: torch.Tensor, reference: torch.Tensor) -> float:
    """Peak signal-to-noise ratio of images in [-1, 1] (peak-to-peak 2)."""
    return 10 * math.log10(4 / (images - reference).square().mean().item())


class TestStyleGAN3GeneratorT(ModelTesterMixin):
    model_class = StyleGANGenerator
    output_name = "sample"
    random_call_kwargs = None  # no noise inputs: a call draws nothing at random
    variant: ClassVar[dict] = {"equivariance": "translation", "num_classes": 10}

    def get_config(self) -> StyleGANConfig:
        return tiny_config(**self.variant)

    def get_inputs(self, batch_size: int = 2) -> dict:
        labels = torch.arange(batch_size) % 10 if self.get_config().num_classes else None
        return {"latents": z_batch(batch_size), "labels": labels, "truncation_psi": 0.7}

    def prepare_model(self, model: StyleGANGenerator) -> None:
        # Trained-looking state: the w average, the magnitude averages and the user transform away from their
        # initial values, so that saving, loading and the maths use them.
        generator = torch.Generator().manual_seed(9)
        with torch.no_grad():
            model.mapping.w_avg.copy_(torch.randn(model.config.w_dim, generator=generator))
            for layer in model.synthesis.layers:
                layer.magnitude_ema.fill_(0.5 + torch.rand((), generator=generator).item())
            model.synthesis.input.transform[:2, 2] = torch.tensor([0.1, -0.05])

    def lora_config(self) -> LoraConfig:
        return LoraConfig(r=2, lora_alpha=2, target_modules=LORA_STYLE_TARGETS)

    def test_seeded_generator_reproduces_a_random_call_and_leaves_the_global_rng_alone(self):
        # StyleGAN 3 draws nothing at random: `forward` keeps the family's `generator` argument, which changes
        # nothing (the shared test expects a generator-taking forward to be random)
        model = self.build_model()
        state = torch.get_rng_state()
        first = self.run(model, generator=torch.Generator().manual_seed(1), noise_mode="random")
        assert torch.equal(first, self.run(model, generator=torch.Generator().manual_seed(2), noise_mode="random"))
        assert torch.equal(torch.get_rng_state(), state)

    def expected_buffers(self, model: StyleGANGenerator) -> dict:
        expected = {
            "mapping.w_avg": torch.zeros(model.config.w_dim),
            "synthesis.input.transform": torch.eye(3),
            "synthesis.input.frequencies": None,  # random, inside the first layer's band
            "synthesis.input.phases": None,
        }
        for index in range(model.config.num_synthesis_layers + 1):
            expected[f"synthesis.layers.{index}.magnitude_ema"] = torch.ones(())
        return expected


class TestStyleGAN3GeneratorR(TestStyleGAN3GeneratorT):
    variant: ClassVar[dict] = {"equivariance": "rotation", "num_classes": 0, "num_channels": 3}


# --- fixed values: a silent change in the maths fails here ---

# Generated once from this code (torch 2.13, CPU) with the seeded tiny models of the tester classes above; regenerate
# only for an intended change.
EXPECTED_T_SAMPLE = [0.019226, 0.034949, 0.040414, 0.030101, 0.002048, -0.017476]
EXPECTED_R_SAMPLE = [0.028701, 0.027272, 0.027839, 0.030706, 0.034261, 0.038104]


@pytest.mark.parametrize(
    "tester, expected", [(TestStyleGAN3GeneratorT, EXPECTED_T_SAMPLE), (TestStyleGAN3GeneratorR, EXPECTED_R_SAMPLE)]
)
def test_fixed_values(tester, expected):
    tester_instance = tester()
    sample = tester_instance.run(tester_instance.build_model())
    assert np.abs(sample[0, 0, 5, 5:11].numpy() - np.array(expected)).max() < 1e-4


# --- the schedule and the filters ---


def test_layout_follows_the_papers_schedule():
    config = tiny_config(resolution=32, num_synthesis_layers=6, num_critical_layers=2, margin_size=10)
    layout = alias_free_layout(config)
    # cutoffs: geometric from 2 to the Nyquist frequency 16 over the first 4 layers, then constant
    assert np.allclose(layout["cutoff"], [2, 2 * 8**0.25, 2 * 8**0.5, 2 * 8**0.75, 16, 16, 16])
    # the sampling rate: the power of two at least twice the stopband, at most the resolution
    assert list(layout["sampling_rate"]) == [16, 16, 32, 32, 32, 32, 32]
    assert np.all(layout["sampling_rate"] >= np.minimum(2 * layout["stopband"], 32))
    # margins around the image, none in the last two (critically sampled output and RGB) layers
    assert list(layout["size"][:-2]) == list(layout["sampling_rate"][:-2].astype(int) + 20)
    assert list(layout["size"][-2:]) == [32, 32]
    assert list(layout["channels"]) == [8, 8, 6, 3, 2, 2, 1]  # min(round(64 / 2 / cutoff), 8), then the image's


def frequency_response(taps: np.ndarray, frequency: float, sampling_rate: float) -> float:
    positions = np.arange(len(taps)) - (len(taps) - 1) / 2
    return abs(np.sum(taps * np.exp(-2j * np.pi * frequency / sampling_rate * positions)))


def test_lowpass_filters_pass_the_band_and_stop_above_it():
    taps = design_lowpass_filter(12, cutoff=4.0, transition_width=4.0, sampling_rate=32).numpy()
    assert taps.shape == (12,) and taps.sum() == pytest.approx(1, abs=1e-6)
    assert np.allclose(taps, taps[::-1])  # linear phase: symmetric
    assert frequency_response(taps, 0, 32) == pytest.approx(1, abs=1e-6)
    assert frequency_response(taps, 4.0, 32) == pytest.approx(0.5, abs=0.05)  # firwin's -6 dB at the cutoff
    assert frequency_response(taps, 9.0, 32) < 0.05  # past the transition band
    radial = design_lowpass_filter(12, cutoff=4.0, transition_width=4.0, sampling_rate=32, radial=True).numpy()
    assert radial.shape == (12, 12) and radial.sum() == pytest.approx(1, abs=1e-6)
    # radially symmetric: unchanged by transposition and by flips
    assert np.allclose(radial, radial.T, atol=1e-7) and np.allclose(radial, radial[::-1], atol=1e-7)
    assert design_lowpass_filter(1, cutoff=4.0, transition_width=4.0, sampling_rate=32) is None


@pytest.mark.parametrize("radial", [False, True])
def test_strided_resampling_equals_upfirdn2d(radial):
    images = torch.randn(2, 3, 9, 9, generator=torch.Generator().manual_seed(0))
    taps = design_lowpass_filter(12, cutoff=3.0, transition_width=3.0, sampling_rate=16)
    kernel = torch.outer(taps, taps)
    for padding in [(9, 8, 9, 8), (-1, -2, 2, 1)]:
        expected = upfirdn2d(images, kernel, up=2, padding=padding, gain=4)
        assert torch.allclose(upsample_filter(images, taps, 2, padding), expected, atol=1e-6)
    down = design_lowpass_filter(12, cutoff=3.0, transition_width=3.0, sampling_rate=16, radial=radial)
    big = torch.randn(2, 3, 30, 30, generator=torch.Generator().manual_seed(1))
    down_kernel = down if radial else torch.outer(down, down)
    assert torch.allclose(downsample_filter(big, down, 2), upfirdn2d(big, down_kernel, down=2), atol=1e-6)


# --- behaviour ---


def test_integer_translation_of_the_input_shifts_the_image():
    """StyleGAN3-T is translation-equivariant: shifting the Fourier features by two output pixels (through the user
    transform) shifts the image by two pixels, away from the borders, nearly exactly."""
    torch.manual_seed(0)
    generator = StyleGANGenerator(tiny_config()).eval()
    z = z_batch(8)
    with torch.no_grad():
        image = generator(z).sample
        generator.synthesis.input.transform[0, 2] = 2 / 16  # the inverse transform: content moves 2 px left
        moved = generator(z).sample
    inside = (..., slice(3, -3), slice(3, -3))
    assert psnr(moved[inside], torch.roll(image, -2, dims=3)[inside]) > 55
    assert psnr(moved[inside], image[inside]) < 40  # the shift is real


def test_quarter_turn_rotates_the_image_of_the_rotation_config_only():
    """StyleGAN3-R (1x1 convolutions, radial filters) turns its image with the input; StyleGAN3-T does not."""
    quality = {}
    for equivariance in ("translation", "rotation"):
        torch.manual_seed(0)
        generator = StyleGANGenerator(tiny_config(equivariance=equivariance)).eval()
        z = z_batch(8)
        with torch.no_grad():
            image = generator(z).sample
            generator.synthesis.input.transform[:2, :2] = torch.tensor([[0.0, -1.0], [1.0, 0.0]])
            turned = generator(z).sample
        quality[equivariance] = psnr(turned, torch.rot90(image, 1, dims=(2, 3)))
    assert quality["rotation"] > 80 and quality["translation"] < 45


def test_magnitude_averages_track_inputs_in_training_only():
    torch.manual_seed(0)
    generator = StyleGANGenerator(tiny_config(magnitude_ema_beta=0.5))
    layer = generator.synthesis.layers[1]
    generator.eval()
    with torch.no_grad():
        generator(z_batch(4))
    assert layer.magnitude_ema.item() == 1.0
    first = generator.synthesis.layers[0]
    with torch.no_grad():
        fourier_features = generator.synthesis.input(generator.map(z_batch(4))[:, 0])  # the first layer's input
        generator.train()
        generator(z_batch(4))
    # one step with beta 0.5: halfway from 1 to the mean square of the layer's input
    expected = (1 + fourier_features.square().mean().item()) / 2
    assert first.magnitude_ema.item() == pytest.approx(expected, rel=1e-5)
    assert layer.magnitude_ema.item() != 1.0


def test_noise_arguments_draw_the_same_image_and_noise_maps_are_refused():
    torch.manual_seed(0)
    generator = StyleGANGenerator(tiny_config()).eval()
    ws = generator.map(z_batch(2))
    with torch.no_grad():
        images = [generator.synthesize(ws, noise_mode=mode) for mode in ("random", "const", "none")]
    assert torch.equal(images[0], images[1]) and torch.equal(images[0], images[2])
    assert generator.synthesis.noise_shapes(2) == []
    with pytest.raises(ValueError, match="has no noise inputs"):
        generator.synthesize(ws, noise=[torch.zeros(2, 1, 16, 16)])
    with pytest.raises(ValueError, match="noise_mode must be"):
        generator.synthesize(ws, noise_mode="fresh")


def test_num_ws_truncation_style_mixing_and_the_stylegan2_discriminator():
    torch.manual_seed(0)
    config = tiny_config(num_classes=3)
    generator, discriminator = StyleGANGenerator(config).eval(), StyleGANDiscriminator(config).eval()
    assert generator.num_ws == config.num_synthesis_layers + 2 == 6
    labels = torch.tensor([0, 2])
    with torch.no_grad():
        output = generator(z_batch(2), labels=labels, mixing_latents=z_batch(2, seed=1), crossover_layer=3)
        assert torch.equal(output.ws[:, 3:], generator.map(z_batch(2, seed=1), labels)[:, 3:])
        assert discriminator(output.sample, labels=labels).logits.shape == (2,)
        # psi 0 draws the image of the w average, whatever z
        centre = generator(z_batch(2), labels=torch.tensor([1, 1]), truncation_psi=0.0).sample
    assert torch.allclose(centre[0], centre[1], atol=1e-6)


def test_the_pipeline_samples_edits_and_inverts_a_stylegan3_generator():
    torch.manual_seed(0)
    pipeline = StyleGANPipeline(stylegan=StyleGANGenerator(tiny_config()).eval())
    pipeline.set_progress_bar_config(disable=True)
    first = pipeline(batch_size=2, generator=torch.Generator().manual_seed(0), output_type="pt").images
    again = pipeline(batch_size=2, generator=torch.Generator().manual_seed(0), output_type="pt").images
    assert first.shape == (2, 1, 16, 16) and torch.equal(first, again)
    mixed = pipeline.style_mixing(crossover_layer=2, batch_size=2, output_type="pt").images
    assert mixed.shape == (2, 1, 16, 16)
    # inversion: a few Adam steps in W+ bring the reconstruction of a drawn image closer
    inverted = pipeline.invert((first + 1) / 2, num_steps=15, learning_rate=0.1, output_type="pt")
    assert inverted.ws.shape == (2, 6, 16) and inverted.distances.shape == (2,)
    start = pipeline.synthesize(pipeline.stylegan.mapping.w_avg.expand(2, 6, -1), output_type="pt").images
    assert (inverted.images - (first + 1) / 2).abs().mean() < (start - (first + 1) / 2).abs().mean()


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"use_noise": True}, "use_noise must be False"),
        ({"style_block": "adain"}, "style_block must be 'modulated'"),
        ({"equivariance": "scale"}, "equivariance must be one of"),
        ({"num_critical_layers": 4}, "must be below num_synthesis_layers"),
        ({"first_cutoff": 5.0}, "0 < first_cutoff < first_stopband"),
        ({"magnitude_ema_beta": 1.0}, "magnitude_ema_beta must lie in"),
    ],
)
def test_config_errors_name_the_field(changes, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**changes)
