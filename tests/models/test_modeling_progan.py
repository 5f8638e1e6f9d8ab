"""ProGAN generator and discriminator: the shared model tests (fully grown and mid-fade), the fade-in's meaning at
alpha 0 and 1, which layers a stage uses, fixed values, and the checks of the growing state."""

from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F
from peft import LoraConfig

from hfgen import ProGANConfig, ProGANDiscriminator, ProGANGenerator
from hfgen.models.progan import LORA_PROGAN_TARGETS
from hfgen.testing.model_tester import ModelTesterMixin


def tiny_config(**changes) -> ProGANConfig:
    settings = {"resolution": 16, "latent_dim": 16, "channel_base": 128, "channel_max": 16}
    return ProGANConfig(**{**settings, **changes})


def labels_for(config: ProGANConfig, batch: int):
    return torch.arange(batch) % config.num_classes if config.is_conditional else None


def z_batch(batch: int, seed: int = 0, dim: int = 16) -> torch.Tensor:
    return torch.randn(batch, dim, generator=torch.Generator().manual_seed(seed))


def pixels(batch: int, size: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(batch, 1, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


class TestProGANGenerator(ModelTesterMixin):
    """Conditional, fully grown (the defaults of `forward`: what a saved model draws)."""

    model_class = ProGANGenerator
    output_name = "sample"
    variant: ClassVar[dict] = {"num_classes": 10}
    stage: ClassVar[dict] = {}

    def get_config(self) -> ProGANConfig:
        return tiny_config(**self.variant)

    def get_inputs(self, batch_size: int = 2) -> dict:
        return {"latents": z_batch(batch_size), "labels": labels_for(self.get_config(), batch_size), **self.stage}

    def lora_config(self) -> LoraConfig:
        return LoraConfig(r=2, lora_alpha=2, target_modules=LORA_PROGAN_TARGETS)

    def expected_buffers(self, model: ProGANGenerator) -> dict:
        return {}


class TestProGANGeneratorMidFade(TestProGANGenerator):
    """Unconditional, halfway through fading in the 8x8 block."""

    variant: ClassVar[dict] = {}
    stage: ClassVar[dict] = {"resolution": 8, "alpha": 0.3}


class TestProGANDiscriminator(ModelTesterMixin):
    model_class = ProGANDiscriminator
    output_name = "logits"
    loaded_by_auto_model = False  # AutoModel maps ProGANConfig to the generator
    variant: ClassVar[dict] = {"num_classes": 10}
    stage: ClassVar[dict] = {}

    def get_config(self) -> ProGANConfig:
        return tiny_config(**self.variant)

    def get_inputs(self, batch_size: int = 2) -> dict:
        size = self.stage.get("resolution", 16)
        return {
            "pixel_values": pixels(batch_size, size),
            "labels": labels_for(self.get_config(), batch_size),
            **self.stage,
        }

    def lora_config(self) -> LoraConfig:
        return LoraConfig(
            r=2, lora_alpha=2, target_modules=["from_images.0", "conv0", "conv1", "conv", "fc", "output"]
        )

    def expected_buffers(self, model: ProGANDiscriminator) -> dict:
        return {}


class TestProGANDiscriminatorMidFade(TestProGANDiscriminator):
    variant: ClassVar[dict] = {}
    stage: ClassVar[dict] = {"resolution": 8, "alpha": 0.3}


# --- the fade-in ---


@pytest.mark.parametrize("num_classes", [0, 10])
def test_generator_fade_in_goes_from_the_upsampled_lower_stage_to_the_new_block(num_classes):
    generator = TestProGANGenerator().build_model(tiny_config(num_classes=num_classes))
    z = z_batch(3)
    labels = labels_for(generator.config, 3)
    with torch.no_grad():
        for resolution in (8, 16):
            lower = generator(z, labels=labels, resolution=resolution // 2).sample
            start = generator(z, labels=labels, resolution=resolution, alpha=0.0).sample
            end = generator(z, labels=labels, resolution=resolution, alpha=1.0).sample
            quarter = generator(z, labels=labels, resolution=resolution, alpha=0.25).sample
            # alpha 0: exactly the resolution below, enlarged; alpha 1: the new block; between: the straight line
            torch.testing.assert_close(start, F.interpolate(lower, scale_factor=2, mode="nearest"), rtol=0, atol=1e-6)
            assert not torch.allclose(end, start, atol=1e-3)
            torch.testing.assert_close(quarter, torch.lerp(start, end, 0.25), rtol=0, atol=1e-5)
        # fully grown by default
        torch.testing.assert_close(generator(z, labels=labels).sample, end, rtol=0, atol=0)


def test_alpha_one_is_the_new_block_alone_and_alpha_below_one_reads_the_lower_rgb_output():
    generator = TestProGANGenerator().build_model()
    z, labels = z_batch(2), torch.tensor([1, 2])
    with torch.no_grad():
        grown, fading = generator(z, labels=labels).sample, generator(z, labels=labels, alpha=0.5).sample
        generator.to_images[1].weight.mul_(3.0)  # the 8x8 RGB output: used only while 16x16 fades in
        assert torch.equal(generator(z, labels=labels).sample, grown)
        assert not torch.allclose(generator(z, labels=labels, alpha=0.5).sample, fading, atol=1e-4)


def test_discriminator_fade_in_goes_from_the_pooled_image_at_the_lower_stage_to_the_new_block():
    discriminator = TestProGANDiscriminator().build_model()
    images, labels = pixels(4, 16), torch.tensor([0, 3, 5, 9])
    with torch.no_grad():
        lower = discriminator(F.avg_pool2d(images, 2), labels=labels, resolution=8).logits
        start = discriminator(images, labels=labels, alpha=0.0).logits
        end = discriminator(images, labels=labels, alpha=1.0).logits
        torch.testing.assert_close(start, lower, rtol=0, atol=1e-5)
        assert not torch.allclose(start, end, atol=1e-3)
        # the fade blends features, not scores: alpha only has to move the score continuously from one end to the other
        near_start = discriminator(images, labels=labels, alpha=1e-4).logits
        torch.testing.assert_close(near_start, start, rtol=0, atol=1e-3)


def test_a_stage_trains_only_its_own_layers():
    config = tiny_config()
    generator, discriminator = ProGANGenerator(config), ProGANDiscriminator(config)
    fake = generator(z_batch(4), resolution=8, alpha=1.0).sample
    discriminator(fake, resolution=8, alpha=1.0).logits.sum().backward()
    unused = {name for name, p in generator.named_parameters() if p.grad is None}
    assert unused == {
        "blocks.1.conv0.weight",
        "blocks.1.conv0.bias",
        "blocks.1.conv1.weight",
        "blocks.1.conv1.bias",
    } | {f"to_images.{i}.{kind}" for i in (0, 2) for kind in ("weight", "bias")}
    unused = {name for name, p in discriminator.named_parameters() if p.grad is None}
    assert unused == {f"from_images.{i}.{kind}" for i in (0, 2) for kind in ("weight", "bias")} | {
        f"blocks.1.conv{i}.{kind}" for i in (0, 1) for kind in ("weight", "bias")
    }
    # mid-fade, the lower resolution's RGB layers take part too
    generator.zero_grad(set_to_none=True)
    generator(z_batch(4), resolution=8, alpha=0.5).sample.sum().backward()
    assert generator.to_images[0].weight.grad is not None and generator.to_images[1].weight.grad is not None


def test_growing_state_and_shapes_are_checked_with_one_line_errors():
    config = tiny_config()
    generator, discriminator = ProGANGenerator(config), ProGANDiscriminator(config)
    z = z_batch(2)
    for stage, message in (
        ({"resolution": 12}, r"resolution must be one of \[4, 8, 16\]"),
        ({"resolution": 32}, r"resolution must be one of \[4, 8, 16\]"),
        ({"alpha": 1.5}, r"alpha must be a number in \[0, 1\]"),
        ({"alpha": -0.1}, r"alpha must be a number in \[0, 1\]"),
        ({"resolution": 4, "alpha": 0.5}, "4x4 has none"),
    ):
        with pytest.raises(ValueError, match=message):
            generator(z, **stage)
    with pytest.raises(ValueError, match=r"pixel_values must have shape \(batch, 1, 8, 8\) at resolution 8"):
        discriminator(pixels(2, 16), resolution=8)
    with pytest.raises(ValueError, match="unconditional"):
        generator(z, labels=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="power of two"):
        ProGANConfig(resolution=24)
    with pytest.raises(ValueError, match="channel_base must be at least resolution"):
        ProGANConfig(resolution=64, channel_base=32)
    assert config.resolutions == [4, 8, 16] and ProGANConfig(resolution=4).resolutions == [4]


def test_equalised_learning_rate_keeps_unit_scale_weights_and_unit_rms_features():
    generator = TestProGANGenerator().build_model(tiny_config(channel_max=64, channel_base=1024))
    weights = torch.cat([generator.blocks[-1].conv1.weight.flatten(), generator.input_block.dense.weight.flatten()])
    assert abs(weights.std().item() - 1) < 0.05  # N(0, 1), scaled at run time
    features = generator.input_block(generator.normalize(z_batch(8)))
    # pixel norm: every feature vector has unit root mean square
    torch.testing.assert_close(features.pow(2).mean(dim=1), torch.ones(8, 4, 4), rtol=0, atol=1e-4)


# --- fixed values: a silent change in the maths fails here ---

# Generated once from this code (torch, CPU) with the seeded tiny models of the tester classes above; regenerate only
# for an intended change.
EXPECTED_SAMPLE = [-1.308176, -1.120219, -0.951181, -1.192988, -1.815911, -1.447603]
EXPECTED_MID_FADE_SAMPLE = [-0.486279, -0.129875, -0.249897, -0.621133, -0.801535, -0.807343]
EXPECTED_LOGITS = [0.521218, 0.083403]
EXPECTED_MID_FADE_LOGITS = [-0.335251, -0.220395]


def test_fixed_values_of_the_generator_and_the_discriminator():
    with torch.no_grad():
        for tester, expected in (
            (TestProGANGenerator(), EXPECTED_SAMPLE),
            (TestProGANGeneratorMidFade(), EXPECTED_MID_FADE_SAMPLE),
        ):
            sample = tester.build_model()(**tester.get_inputs()).sample
            assert torch.allclose(sample.flatten()[:6], torch.tensor(expected), atol=1e-4), type(tester).__name__
        for tester, expected in (
            (TestProGANDiscriminator(), EXPECTED_LOGITS),
            (TestProGANDiscriminatorMidFade(), EXPECTED_MID_FADE_LOGITS),
        ):
            logits = tester.build_model()(**tester.get_inputs()).logits
            assert torch.allclose(logits, torch.tensor(expected), atol=1e-4), type(tester).__name__
