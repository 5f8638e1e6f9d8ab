"""CycleGAN / pix2pix generators and discriminators: the shared model tests, every option's shapes, the PatchGAN's
receptive field and output map, fixed values, and clear errors."""

from typing import ClassVar

import pytest
import torch
from peft import LoraConfig

from hfgen import CycleGANConfig, CycleGANDiscriminator, CycleGANGenerator
from hfgen.models.cyclegan import LORA_GENERATOR_TARGETS, patch_receptive_field
from hfgen.testing.model_tester import ModelTesterMixin


def tiny_config(**changes) -> CycleGANConfig:
    settings = {
        "in_channels": 1,
        "out_channels": 3,
        "generator_channels": 4,
        "discriminator_channels": 4,
        "num_residual_blocks": 2,
        "unet_num_downs": 4,
    }
    return CycleGANConfig(**{**settings, **changes})


def images(batch: int, channels: int, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, channels, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def batch_norm_buffers(model: torch.nn.Module) -> dict:
    expected = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            expected[f"{name}.running_mean"] = torch.zeros(module.num_features)
            expected[f"{name}.running_var"] = torch.ones(module.num_features)
            expected[f"{name}.num_batches_tracked"] = torch.tensor(0)
    return expected


class TestCycleGANGeneratorResNet(ModelTesterMixin):
    model_class = CycleGANGenerator
    output_name = "sample"
    variant: ClassVar[dict] = {"generator_architecture": "resnet"}

    def get_config(self) -> CycleGANConfig:
        return tiny_config(**self.variant)

    def get_inputs(self, batch_size: int = 2) -> dict:
        return {"pixel_values": images(batch_size, 1)}

    def lora_config(self) -> LoraConfig:
        return LoraConfig(r=2, lora_alpha=2, target_modules=LORA_GENERATOR_TARGETS, modules_to_save=["norm"])

    def expected_buffers(self, model) -> dict:
        return batch_norm_buffers(model)


class TestCycleGANGeneratorUNet(TestCycleGANGeneratorResNet):
    variant: ClassVar[dict] = {"generator_architecture": "unet", "norm": "batch", "use_dropout": True}


class TestCycleGANDiscriminatorPatch(ModelTesterMixin):
    model_class = CycleGANDiscriminator
    output_name = "logits"
    loaded_by_auto_model = False  # AutoModel maps CycleGANConfig to the generator
    variant: ClassVar[dict] = {"discriminator_architecture": "patch"}

    def get_config(self) -> CycleGANConfig:
        return tiny_config(**self.variant)

    def get_inputs(self, batch_size: int = 2) -> dict:
        return {"pixel_values": images(batch_size, self.get_config().discriminator_in_channels, size=32, seed=1)}

    def lora_config(self) -> LoraConfig:
        return LoraConfig(r=2, lora_alpha=2, target_modules=["convs.0", "convs.1", "conv_out"])

    def expected_buffers(self, model) -> dict:
        return batch_norm_buffers(model)


class TestCycleGANDiscriminatorPixelConditional(TestCycleGANDiscriminatorPatch):
    variant: ClassVar[dict] = {"discriminator_architecture": "pixel", "conditional_discriminator": True}


GENERATOR_OPTIONS = [
    {"generator_architecture": architecture, "norm": norm, "upsampling": upsampling, "use_dropout": dropout}
    for architecture in ("resnet", "unet")
    for norm in ("instance", "batch", "none")
    for upsampling in ("nearest", "transposed")
    for dropout in (False, True)
]


@pytest.mark.parametrize("options", GENERATOR_OPTIONS, ids=lambda o: "-".join(str(v) for v in o.values()))
def test_every_generator_option_translates_at_the_input_size(options):
    generator = CycleGANGenerator(tiny_config(**options)).eval()
    with torch.no_grad():
        output = generator(images(2, 1, size=32)).sample
    assert output.shape == (2, 3, 32, 32) and output.abs().max() <= 1
    assert torch.isfinite(output).all() and output.std() > 0
    if options["upsampling"] == "nearest":  # every weight is a Conv2d, which LoRA reaches
        assert not any(isinstance(module, torch.nn.ConvTranspose2d) for module in generator.modules())
    reverse = CycleGANGenerator(tiny_config(**options).reversed()).eval()
    with torch.no_grad():
        assert reverse(output).sample.shape == (2, 1, 32, 32)


def test_patchgan_receptive_field_and_output_map():
    assert [patch_receptive_field(layers) for layers in (1, 2, 3, 4)] == [16, 34, 70, 142]
    discriminator = CycleGANDiscriminator(CycleGANConfig(discriminator_channels=4)).eval()
    with torch.no_grad():
        assert discriminator(images(1, 3, size=256)).logits.shape == (1, 1, 30, 30)  # pix2pix's 30x30 map at 256 px
        assert discriminator(images(1, 3, size=64)).logits.shape == (1, 1, 6, 6)
    # the output at one patch depends on its 70x70 window only (without instance norm, which sees the whole image)
    pixels = images(1, 3, size=128).requires_grad_(True)
    unnormalised = CycleGANDiscriminator(CycleGANConfig(discriminator_channels=4, norm="none")).eval()
    unnormalised(pixels).logits[0, 0, 7, 7].backward()
    rows = pixels.grad[0].abs().sum(dim=(0, 2)).nonzero().flatten()
    assert rows.max() - rows.min() + 1 <= 70
    pixel = CycleGANDiscriminator(tiny_config(discriminator_architecture="pixel")).eval()
    with torch.no_grad():
        assert pixel(images(2, 3, size=20)).logits.shape == (2, 1, 20, 20)


# Generated once from this code (torch 2.13, CPU) with the seeded tiny models of the tester classes above; regenerate
# only for an intended change.
EXPECTED_RESNET_SAMPLE = [-0.146146, 0.054672, -0.116566, -0.322285, -0.347203, -0.398803]
EXPECTED_UNET_SAMPLE = [-0.011098, -0.022729, -0.060483, 0.038648, -0.01937, 0.015932]
EXPECTED_PATCH_LOGITS = [0.62205, -0.061827, 0.154072, 0.227326]


@torch.no_grad()
def test_fixed_values():
    resnet, unet, patch = TestCycleGANGeneratorResNet(), TestCycleGANGeneratorUNet(), TestCycleGANDiscriminatorPatch()
    resnet_sample = resnet.build_model()(**resnet.get_inputs()).sample.flatten()[:6]
    # in training mode without dropout: a fresh U-Net's batch norms with running statistics of a unit normal give
    # outputs of ~1e-3, too small for the tolerance to see anything
    unet_model = unet.build_model(tiny_config(generator_architecture="unet", norm="batch")).train()
    unet_sample = unet_model(**unet.get_inputs()).sample.flatten()[:6]
    logits = patch.build_model()(**patch.get_inputs()).logits.flatten()[:4]
    outputs = (("resnet", resnet_sample), ("unet", unet_sample), ("patch", logits))
    printed = {name: [round(value, 6) for value in values.tolist()] for name, values in outputs}
    assert torch.allclose(resnet_sample, torch.tensor(EXPECTED_RESNET_SAMPLE), atol=1e-4), printed
    assert torch.allclose(unet_sample, torch.tensor(EXPECTED_UNET_SAMPLE), atol=1e-4), printed
    assert torch.allclose(logits, torch.tensor(EXPECTED_PATCH_LOGITS), atol=1e-4), printed


def test_bad_sizes_and_configs_fail_clearly():
    generator = CycleGANGenerator(tiny_config(generator_architecture="unet"))
    with pytest.raises(ValueError, match=r"images of 24x24 pixels: this generator needs sides divisible by 16"):
        generator(images(1, 1, size=24))
    with pytest.raises(ValueError, match=r"pixel_values must have shape \(batch, 1, height, width\)"):
        generator(images(1, 3))
    with pytest.raises(ValueError, match=r"pixel_values must have shape \(batch, 3, height, width\)"):
        CycleGANDiscriminator(tiny_config())(images(1, 1))
    with pytest.raises(ValueError, match="CycleGANConfig.norm must be one of"):
        tiny_config(norm="layer")
    with pytest.raises(ValueError, match="CycleGANConfig.unet_num_downs must be an integer >= 2"):
        tiny_config(unet_num_downs=1)
