"""Vanilla GAN / DCGAN generator and discriminator: the shared model tests, every variant, fixed values, LoRA."""

import os
from typing import ClassVar

import pytest
import torch
import transformers
from peft import LoraConfig, PeftModel, get_peft_model

import hfgen
from hfgen import GANConfig, GANDiscriminator, GANGenerator
from hfgen.losses import discriminator_loss, generator_loss
from hfgen.models.gan import LORA_GENERATOR_TARGETS
from hfgen.testing.model_tester import ModelTesterMixin

VARIANTS = [
    {"architecture": "mlp"},
    {"architecture": "dcgan"},
    {"architecture": "mlp", "num_classes": 10, "discriminator_conditioning": "projection"},
    {"architecture": "mlp", "num_classes": 10, "discriminator_conditioning": "concat"},
    {"architecture": "dcgan", "num_classes": 10, "discriminator_conditioning": "projection"},
    {
        "architecture": "dcgan",
        "num_classes": 10,
        "discriminator_conditioning": "concat",
        "discriminator_norm": "layer",
    },
    {"architecture": "dcgan", "discriminator_norm": "none"},
    {"architecture": "dcgan", "generator_upsampling": "transposed"},
    {"architecture": "dcgan", "num_classes": 10, "generator_upsampling": "pixel_shuffle"},
]


def tiny_config(**changes) -> GANConfig:
    settings = {
        "latent_dim": 8,
        "image_size": 16,
        "generator_channels": 4,
        "discriminator_channels": 4,
        "max_channels": 16,
        "generator_hidden_sizes": [16, 32],
        "discriminator_hidden_sizes": [32, 16],
        "class_embedding_dim": 4,
    }
    return GANConfig(**{**settings, **changes})


def build(config: GANConfig) -> tuple[GANGenerator, GANDiscriminator]:
    torch.manual_seed(0)
    return GANGenerator(config).eval(), GANDiscriminator(config).eval()


def labels_for(config: GANConfig, batch: int) -> torch.Tensor | None:
    return torch.arange(batch) % config.num_classes if config.is_conditional else None


def z_batch(batch: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 8, generator=torch.Generator().manual_seed(seed))


def batch_norm_buffers(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The running statistics every batch norm starts with: mean 0, variance 1, no batch seen."""
    expected = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            expected[f"{name}.running_mean"] = torch.zeros(module.num_features)
            expected[f"{name}.running_var"] = torch.ones(module.num_features)
            expected[f"{name}.num_batches_tracked"] = torch.tensor(0)
    return expected


class TestGANGeneratorDCGAN(ModelTesterMixin):
    model_class = GANGenerator
    output_name = "sample"
    variant: ClassVar[dict] = {"architecture": "dcgan", "num_classes": 10}

    def get_config(self) -> GANConfig:
        return tiny_config(**self.variant)

    def get_inputs(self, batch_size: int = 2) -> dict:
        return {"latents": z_batch(batch_size), "labels": labels_for(self.get_config(), batch_size)}

    def lora_config(self) -> LoraConfig:
        # Batch norms cannot take LoRA; they are trained and saved whole with the adapter.
        return LoraConfig(
            r=4, lora_alpha=4, target_modules=LORA_GENERATOR_TARGETS, modules_to_save=["norm", "input_norm"]
        )

    def expected_buffers(self, model: GANGenerator) -> dict:
        return batch_norm_buffers(model)


class TestGANGeneratorMLP(TestGANGeneratorDCGAN):
    variant: ClassVar[dict] = {"architecture": "mlp"}


class TestGANGeneratorPixelShuffle(TestGANGeneratorDCGAN):
    """Sub-pixel convolutions: every layer is a Conv2d or Linear, so LoRA reaches all of them."""

    variant: ClassVar[dict] = {"architecture": "dcgan", "num_classes": 10, "generator_upsampling": "pixel_shuffle"}


class TestGANGeneratorTransposed(TestGANGeneratorDCGAN):
    """The paper's transposed convolutions: PEFT cannot adapt them, so LoRA reaches the input projection only."""

    variant: ClassVar[dict] = {"architecture": "dcgan", "num_classes": 10, "generator_upsampling": "transposed"}

    def lora_config(self) -> LoraConfig:
        return LoraConfig(
            r=4, lora_alpha=4, target_modules=["input_projection"], modules_to_save=["norm", "input_norm"]
        )


class TestGANDiscriminator(ModelTesterMixin):
    model_class = GANDiscriminator
    output_name = "logits"
    loaded_by_auto_model = False  # AutoModel maps GANConfig to the generator

    def get_config(self) -> GANConfig:
        return tiny_config(architecture="dcgan", num_classes=10)

    def get_inputs(self, batch_size: int = 2) -> dict:
        pixels = torch.rand(batch_size, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
        return {"pixel_values": pixels, "labels": labels_for(self.get_config(), batch_size)}

    def lora_config(self) -> LoraConfig:
        return LoraConfig(r=4, lora_alpha=4, target_modules=["conv", "output"], modules_to_save=["norm"])

    def expected_buffers(self, model: GANDiscriminator) -> dict:
        return batch_norm_buffers(model)


# --- fixed values: a silent change in the maths fails here ---

# Generated once from this code (torch 2.13, CPU) with the seeded tiny models of the tester classes above; regenerate
# only for an intended change. The DCGAN networks run in training mode: with the running statistics of a fresh model
# (mean 0, variance 1) and DCGAN's N(0, 0.02) weights their eval outputs are ~1e-4, too small for a 1e-4 tolerance to
# see anything; batch statistics bring them to the scale of real outputs.
EXPECTED_DCGAN_SAMPLE = [0.057005, 0.06661, -0.010908, -0.078451, -0.112485, -0.054196]
EXPECTED_MLP_SAMPLE = [0.052383, -0.137729, 0.079036, -0.208229, 0.129498, -0.023573]
EXPECTED_DISCRIMINATOR_LOGITS = [0.070045, -0.437582]
EXPECTED_SAMPLE_BY_UPSAMPLING = {
    "pixel_shuffle": [-0.0137, -0.010174, 0.018956, 0.037627, 0.012323, -0.043933],
    "transposed": [0.045177, 0.027842, -0.013766, 0.020805, -0.008259, 0.019417],
}


def test_fixed_values_of_the_generators_and_the_discriminator():
    with torch.no_grad():
        dcgan, mlp = TestGANGeneratorDCGAN(), TestGANGeneratorMLP()
        dcgan_sample = dcgan.build_model().train()(**dcgan.get_inputs()).sample
        mlp_sample = mlp.build_model()(**mlp.get_inputs()).sample
        tester = TestGANDiscriminator()
        logits = tester.build_model().train()(**tester.get_inputs()).logits
    assert torch.allclose(dcgan_sample.flatten()[:6], torch.tensor(EXPECTED_DCGAN_SAMPLE), atol=1e-4)
    assert torch.allclose(mlp_sample.flatten()[:6], torch.tensor(EXPECTED_MLP_SAMPLE), atol=1e-4)
    assert torch.allclose(logits, torch.tensor(EXPECTED_DISCRIMINATOR_LOGITS), atol=1e-4)


@pytest.mark.parametrize("tester", [TestGANGeneratorPixelShuffle, TestGANGeneratorTransposed])
@torch.no_grad()
def test_fixed_values_of_each_upsampling(tester):
    tester = tester()
    sample = tester.build_model().train()(**tester.get_inputs()).sample
    expected = EXPECTED_SAMPLE_BY_UPSAMPLING[tester.variant["generator_upsampling"]]
    assert torch.allclose(sample.flatten()[:6], torch.tensor(expected), atol=1e-4)


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(str(x) for x in v.values()))
def test_shapes_range_and_determinism(variant):
    config = tiny_config(**variant)
    generator, discriminator = build(config)
    z = torch.randn(5, 8, generator=torch.Generator().manual_seed(0))
    labels = labels_for(config, 5)
    with torch.no_grad():
        images = generator(z, labels=labels).sample
        again = generator(z, labels=labels).sample
        logits = discriminator(images, labels=labels).logits
    assert images.shape == (5, 1, 16, 16)
    assert images.abs().max() <= 1.0
    assert torch.equal(images, again)
    assert logits.shape == (5,) and torch.isfinite(logits).all()
    generator.train()  # batch statistics, as in training: the images vary with z from the start
    assert generator(z, labels=labels).sample.std() > 1e-3


def test_conditional_labels_change_the_output_and_projection_uses_them():
    config = tiny_config(architecture="dcgan", num_classes=10)
    generator, discriminator = build(config)
    z = torch.randn(1, 8).repeat(2, 1)
    with torch.no_grad():
        images = generator(z, labels=torch.tensor([3, 7])).sample
        assert not torch.allclose(images[0], images[1])
        same = images[:1].repeat(2, 1, 1, 1)
        logits = discriminator(same, labels=torch.tensor([3, 7])).logits
    assert logits[0] != logits[1]


def test_bad_inputs_fail_clearly():
    conditional, _ = build(tiny_config(num_classes=10))
    unconditional, discriminator = build(tiny_config())
    with pytest.raises(ValueError, match="conditional on 10 classes: pass `labels`"):
        conditional(torch.randn(2, 8))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 9\]"):
        conditional(torch.randn(2, 8), labels=torch.tensor([1, 10]))
    with pytest.raises(ValueError, match="takes no `labels`"):
        unconditional(torch.randn(2, 8), labels=torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"latents must have shape \(batch, 8\)"):
        unconditional(torch.randn(2, 9))
    with pytest.raises(ValueError, match=r"pixel_values must have shape \(batch, 1, 16, 16\)"):
        discriminator(torch.randn(2, 1, 32, 32))


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"architecture": "dcgan", "image_size": 24}, r"GANConfig.image_size must be a power of two >= 8 .*got 24"),
        ({"architecture": "dcgan", "image_size": 4}, "GANConfig.image_size must be an integer >= 8, got 4"),
        ({"architecture": "resnet"}, "GANConfig.architecture must be one of"),
        ({"discriminator_norm": "spectral"}, "GANConfig.discriminator_norm must be one of"),
        ({"latent_dim": 0}, "GANConfig.latent_dim must be an integer >= 1, got 0"),
        ({"latent_dim": -4}, "GANConfig.latent_dim must be an integer >= 1, got -4"),
        ({"num_channels": 0}, "GANConfig.num_channels must be an integer >= 1"),
        ({"num_classes": -1}, "GANConfig.num_classes must be an integer >= 0, got -1"),
        ({"generator_channels": -8}, "GANConfig.generator_channels must be an integer >= 1"),
        ({"discriminator_channels": 0}, "GANConfig.discriminator_channels must be an integer >= 1"),
        ({"max_channels": 0}, "GANConfig.max_channels must be an integer >= 1"),
        ({"class_embedding_dim": 0}, "GANConfig.class_embedding_dim must be an integer >= 1"),
        ({"generator_hidden_sizes": [16, 0]}, "GANConfig.generator_hidden_sizes entries must be integers >= 1"),
        ({"discriminator_hidden_sizes": [-1]}, "GANConfig.discriminator_hidden_sizes entries must be integers >= 1"),
        ({"image_size": 16.0}, "GANConfig.image_size must be an integer >= 1, got 16.0"),
    ],
)
def test_config_rejects_impossible_settings(changes, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**changes)


def test_config_accepts_what_the_architectures_allow():
    assert GANConfig(architecture="mlp", image_size=24).image_size == 24  # any size for the MLP
    assert (
        GANConfig(architecture="mlp", generator_hidden_sizes=[]).generator_hidden_sizes == []
    )  # z straight to pixels
    assert GANConfig(num_classes=0).is_conditional is False


def test_dcgan_channels_double_towards_the_coarse_end():
    config = GANConfig(image_size=32, generator_channels=16, discriminator_channels=16, max_channels=48)
    assert config.generator_block_channels() == [48, 48, 32, 16]  # 4x4, 8x8, 16x16, 32x32
    assert config.discriminator_block_channels() == [16, 32, 48]  # 16x16, 8x8, 4x4
    # the paper's layout: the last upsampling makes the image, so the blocks stop at half resolution
    paper = GANConfig(image_size=32, generator_channels=16, max_channels=48, generator_upsampling="transposed")
    assert paper.generator_block_channels() == [48, 32, 16]  # 4x4, 8x8, 16x16


def test_the_paper_layout_is_pytorch_examples_dcgan_generator():
    """At 64 px RGB, nz 100, ngf 64 the transposed layout has the layers of the DCGAN paper (and of pytorch/examples'
    dcgan): 4x4 stride-2 transposed convolutions 512 -> 256 -> 128 -> 64 -> 3 after a 4x4x512 start."""
    config = GANConfig(
        image_size=64, num_channels=3, latent_dim=100, generator_channels=64, max_channels=512,
        generator_upsampling="transposed",
    )  # fmt: skip
    generator = GANGenerator(config)
    shapes = [
        tuple(module.weight.shape) for module in generator.modules() if isinstance(module, torch.nn.ConvTranspose2d)
    ]
    assert shapes == [(512, 256, 4, 4), (256, 128, 4, 4), (128, 64, 4, 4), (64, 3, 4, 4)]
    assert generator.input_projection.weight.shape == (512 * 16, 100)
    assert generator(torch.randn(2, 100)).sample.shape == (2, 3, 64, 64)


@torch.no_grad()
def test_a_pixel_shuffle_layer_can_compute_what_a_transposed_convolution_computes():
    """A 4x4 stride-2 transposed convolution is a 3x3 convolution to 4x the channels followed by a pixel shuffle: each
    output phase reads a 2x2 neighbourhood of the input, which the 3x3 kernel covers."""
    from hfgen.models.gan.modeling_gan import double_resolution, upsampling_convolution

    torch.manual_seed(0)
    transposed = upsampling_convolution(3, 2, "transposed", bias=False)
    sub_pixel = upsampling_convolution(3, 2, "pixel_shuffle", bias=False)
    weight = transposed.weight  # (in, out, 4, 4)
    kernel = torch.zeros(2, 4, 3, 3, 3)  # (out, phase, in, 3, 3); phase = 2 * row parity + column parity
    for row_parity in range(2):
        for column_parity in range(2):
            for dy in range(3):
                for dx in range(3):
                    ky, kx = row_parity + 3 - 2 * dy, column_parity + 3 - 2 * dx
                    if 0 <= ky < 4 and 0 <= kx < 4:
                        kernel[:, 2 * row_parity + column_parity, :, dy, dx] = weight[:, :, ky, kx].T
    sub_pixel.weight.copy_(kernel.reshape(8, 3, 3, 3))
    hidden = torch.randn(2, 3, 5, 5)
    expected = double_resolution(transposed, hidden, "transposed")
    torch.testing.assert_close(double_resolution(sub_pixel, hidden, "pixel_shuffle"), expected, atol=1e-5, rtol=1e-5)


def test_one_adversarial_step_lowers_the_discriminator_loss():
    config = tiny_config(architecture="dcgan")
    generator, discriminator = build(config)
    discriminator.train()
    optimizer = torch.optim.Adam(discriminator.parameters(), lr=1e-2)
    real = torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        fake = generator(torch.randn(8, 8)).sample
    losses = []
    for _ in range(5):
        loss = discriminator_loss(discriminator(real).logits, discriminator(fake).logits, "non-saturating")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_lora_on_the_generator_trains_saves_only_the_adapter_and_reloads(tmp_path):
    config = tiny_config(architecture="dcgan", num_classes=10)
    generator, discriminator = build(config)
    generator.save_pretrained(tmp_path / "base")
    base = GANGenerator.from_pretrained(tmp_path / "base").eval()
    z, labels = torch.randn(8, 8, generator=torch.Generator().manual_seed(0)), torch.full((8,), 7)
    with torch.no_grad():
        before = base(z, labels=labels).sample

    lora_config = LoraConfig(
        r=4, lora_alpha=4, target_modules=LORA_GENERATOR_TARGETS, modules_to_save=["norm", "input_norm"]
    )
    adapted = get_peft_model(base, lora_config)
    trainable = [name for name, p in adapted.named_parameters() if p.requires_grad]
    assert any("lora_A" in name for name in trainable)
    assert all("lora_" in name or "norm" in name for name in trainable)
    optimizer = torch.optim.Adam([p for p in adapted.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        loss = generator_loss(discriminator(adapted(z, labels=labels).sample, labels=labels).logits, "non-saturating")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    adapted.eval()
    with torch.no_grad():
        tuned = adapted(z, labels=labels).sample
    assert not torch.allclose(tuned, before, atol=1e-4)

    adapted.save_pretrained(tmp_path / "adapter")
    assert set(os.listdir(tmp_path / "adapter")) - {"README.md"} == {
        "adapter_model.safetensors",
        "adapter_config.json",
    }
    reloaded = PeftModel.from_pretrained(GANGenerator.from_pretrained(tmp_path / "base"), tmp_path / "adapter").eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(z, labels=labels).sample, tuned, atol=1e-5)


def test_importing_hfgen_registers_the_generator_with_automodel():
    assert transformers.AutoConfig.for_model("hfgen_gan").__class__ is hfgen.GANConfig
