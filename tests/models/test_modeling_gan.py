"""Vanilla GAN / DCGAN generator and discriminator: every variant, save/load, AutoModel, LoRA."""

import os

import pytest
import torch
import transformers
from peft import LoraConfig, PeftModel, get_peft_model

import hfgen
from hfgen import GANConfig, GANDiscriminator, GANGenerator
from hfgen.losses import discriminator_loss, generator_loss
from hfgen.models.gan import LORA_GENERATOR_TARGETS

VARIANTS = [
    dict(architecture="mlp"),
    dict(architecture="dcgan"),
    dict(architecture="mlp", num_classes=10, discriminator_conditioning="projection"),
    dict(architecture="mlp", num_classes=10, discriminator_conditioning="concat"),
    dict(architecture="dcgan", num_classes=10, discriminator_conditioning="projection"),
    dict(architecture="dcgan", num_classes=10, discriminator_conditioning="concat", discriminator_norm="layer"),
    dict(architecture="dcgan", discriminator_norm="none"),
]


def tiny_config(**changes) -> GANConfig:
    settings = dict(latent_dim=8, image_size=16, generator_channels=4, discriminator_channels=4, max_channels=16,
                    generator_hidden_sizes=[16, 32], discriminator_hidden_sizes=[32, 16], class_embedding_dim=4)
    return GANConfig(**{**settings, **changes})


def build(config: GANConfig) -> tuple[GANGenerator, GANDiscriminator]:
    torch.manual_seed(0)
    return GANGenerator(config).eval(), GANDiscriminator(config).eval()


def labels_for(config: GANConfig, batch: int) -> torch.Tensor | None:
    return torch.arange(batch) % config.num_classes if config.is_conditional else None


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


@pytest.mark.parametrize("variant", VARIANTS[:2] + VARIANTS[4:5], ids=["mlp", "dcgan", "dcgan-conditional"])
def test_save_load_round_trip_and_automodel(variant, tmp_path):
    config = tiny_config(**variant)
    generator, discriminator = build(config)
    generator.save_pretrained(tmp_path / "g")
    discriminator.save_pretrained(tmp_path / "d")
    assert {"config.json", "model.safetensors"} <= set(os.listdir(tmp_path / "g"))
    z = torch.randn(3, 8)
    labels = labels_for(config, 3)
    loaded_g = GANGenerator.from_pretrained(tmp_path / "g").eval()
    auto_g = transformers.AutoModel.from_pretrained(tmp_path / "g").eval()
    loaded_d = GANDiscriminator.from_pretrained(tmp_path / "d").eval()
    assert isinstance(auto_g, GANGenerator)
    with torch.no_grad():
        images = generator(z, labels=labels).sample
        assert torch.allclose(loaded_g(z, labels=labels).sample, images, atol=1e-5)
        assert torch.allclose(auto_g(z, labels=labels).sample, images, atol=1e-5)
        assert torch.allclose(loaded_d(images, labels=labels).logits, discriminator(images, labels=labels).logits,
                              atol=1e-5)


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


def test_config_rejects_impossible_settings():
    with pytest.raises(ValueError, match="power-of-two image_size"):
        GANConfig(architecture="dcgan", image_size=24)
    with pytest.raises(ValueError, match="architecture must be one of"):
        GANConfig(architecture="resnet")
    with pytest.raises(ValueError, match="discriminator_norm must be one of"):
        GANConfig(discriminator_norm="spectral")
    assert GANConfig(architecture="mlp", image_size=24).image_size == 24  # any size for the MLP


def test_dcgan_channels_double_towards_the_coarse_end():
    config = GANConfig(image_size=32, generator_channels=16, discriminator_channels=16, max_channels=48)
    assert config.generator_block_channels() == [48, 48, 32, 16]  # 4x4, 8x8, 16x16, 32x32
    assert config.discriminator_block_channels() == [16, 32, 48]  # 16x16, 8x8, 4x4


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

    lora_config = LoraConfig(r=4, lora_alpha=4, target_modules=LORA_GENERATOR_TARGETS, modules_to_save=["norm",
                                                                                                           "input_norm"])
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
    assert set(os.listdir(tmp_path / "adapter")) - {"README.md"} == {"adapter_model.safetensors", "adapter_config.json"}
    reloaded = PeftModel.from_pretrained(GANGenerator.from_pretrained(tmp_path / "base"), tmp_path / "adapter").eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(z, labels=labels).sample, tuned, atol=1e-5)


def test_importing_hfgen_registers_the_generator_with_automodel():
    assert transformers.AutoConfig.for_model("hfgen_gan").__class__ is hfgen.GANConfig
