"""StyleGAN 1 / 2 generator and discriminator: the shared model tests, variants, truncation, style mixing, noise,
equalised learning rate, fixed values, LoRA."""

import json
import math
import os
from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F
from peft import LoraConfig, PeftModel, get_peft_model

from hfgen import StyleGANConfig, StyleGANDiscriminator, StyleGANGenerator
from hfgen.models.stylegan import LORA_STYLE_TARGETS, mix_styles
from hfgen.models.stylegan.modeling_stylegan import EqualizedConv2d, EqualizedLinear, MinibatchStdDev, StyleLayer
from hfgen.testing.model_tester import ModelTesterMixin

VARIANTS = [
    {"style_block": "modulated", "generator_architecture": "skip", "discriminator_architecture": "resnet"},
    {"style_block": "adain", "generator_architecture": "plain", "discriminator_architecture": "plain"},
    {
        "style_block": "adain",
        "generator_architecture": "skip",
        "discriminator_architecture": "resnet",
        "num_classes": 10,
    },
    {
        "style_block": "modulated",
        "generator_architecture": "plain",
        "discriminator_architecture": "plain",
        "num_classes": 10,
    },
    {"style_block": "modulated", "use_noise": False},
]


def tiny_config(**changes) -> StyleGANConfig:
    settings = {
        "resolution": 16,
        "latent_dim": 16,
        "w_dim": 16,
        "mapping_layers": 2,
        "channel_base": 128,
        "channel_max": 16,
    }
    return StyleGANConfig(**{**settings, **changes})


def build(config: StyleGANConfig) -> tuple[StyleGANGenerator, StyleGANDiscriminator]:
    torch.manual_seed(0)
    return StyleGANGenerator(config).eval(), StyleGANDiscriminator(config).eval()


def labels_for(config, batch: int):
    return torch.arange(batch) % config.num_classes if config.is_conditional else None


def z_batch(batch: int, seed: int = 0, dim: int = 16) -> torch.Tensor:
    return torch.randn(batch, dim, generator=torch.Generator().manual_seed(seed))


class TestStyleGANGenerator(ModelTesterMixin):
    model_class = StyleGANGenerator
    output_name = "sample"
    random_call_kwargs: ClassVar[dict] = {"noise_mode": "random"}
    variant: ClassVar[dict] = {"style_block": "modulated", "num_classes": 10}

    def get_config(self) -> StyleGANConfig:
        return tiny_config(**self.variant)

    def get_inputs(self, batch_size: int = 2) -> dict:
        return {
            "latents": z_batch(batch_size),
            "labels": labels_for(self.get_config(), batch_size),
            "truncation_psi": 0.7,
            "noise_mode": "const",
        }

    def prepare_model(self, model: StyleGANGenerator) -> None:
        # Trained-looking state: noise strengths start at 0 (noise would change nothing) and w_avg at 0 (truncation
        # would not need it): give both values, so that the noise and the saved average are exercised.
        with torch.no_grad():
            for module in model.modules():
                if hasattr(module, "strength"):
                    module.strength.fill_(0.3)
            model.mapping.w_avg.copy_(torch.randn(model.config.w_dim, generator=torch.Generator().manual_seed(9)))

    def lora_config(self) -> LoraConfig:
        return LoraConfig(r=2, lora_alpha=2, target_modules=LORA_STYLE_TARGETS)

    def expected_buffers(self, model: StyleGANGenerator) -> dict:
        expected = {"mapping.w_avg": torch.zeros(model.config.w_dim)}
        for index in range(len(model.synthesis.layer_resolutions())):
            expected[f"synthesis.noise_const_{index}"] = None  # drawn from N(0, 1)
        return expected


class TestStyleGANGeneratorAdaIN(TestStyleGANGenerator):
    variant: ClassVar[dict] = {"style_block": "adain", "generator_architecture": "plain"}


class TestStyleGANGeneratorClamped(TestStyleGANGenerator):
    """The activation clamp of StyleGAN2-ADA (conversion target of published weights)."""

    variant: ClassVar[dict] = {"style_block": "modulated", "num_classes": 10, "conv_clamp": 256.0}


class TestStyleGANGeneratorBilinear(TestStyleGANGenerator):
    """hfgen's first StyleGAN 2 (bilinear upsampling), which folders saved before the FIR default still load as."""

    variant: ClassVar[dict] = {"style_block": "modulated", "num_classes": 10, "resample_filter": None}


class TestStyleGANDiscriminator(ModelTesterMixin):
    model_class = StyleGANDiscriminator
    output_name = "logits"
    variant: ClassVar[dict] = {}  # FIR filter before the strided convolutions
    loaded_by_auto_model = False  # AutoModel maps StyleGANConfig to the generator

    def get_config(self) -> StyleGANConfig:
        return tiny_config(num_classes=10, **self.variant)

    def get_inputs(self, batch_size: int = 2) -> dict:
        pixels = torch.rand(batch_size, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
        return {"pixel_values": pixels, "labels": labels_for(self.get_config(), batch_size)}

    def lora_config(self) -> LoraConfig:
        return LoraConfig(r=2, lora_alpha=2, target_modules=["from_image", "conv0", "conv1", "conv", "fc", "output"])

    def expected_buffers(self, model: StyleGANDiscriminator) -> dict:
        return {}


class TestStyleGANDiscriminatorAveragePooling(TestStyleGANDiscriminator):
    variant: ClassVar[dict] = {"resample_filter": None}


# --- fixed values: a silent change in the maths fails here ---

# Generated once from this code (torch 2.13, CPU) with the seeded tiny models of the tester classes above (constant
# noise); regenerate only for an intended change.
EXPECTED_FIR_SAMPLE = [0.212544, 0.26056, 0.185803, -0.068641, 0.148609, 0.111496]
EXPECTED_ADAIN_SAMPLE = [-0.201031, 0.150202, 0.576043, 0.815829, 0.762179, 1.02385]
EXPECTED_BILINEAR_SAMPLE = [-0.992041, 0.151153, 0.853294, 0.360166, 0.440322, 0.811062]
EXPECTED_DISCRIMINATOR_LOGITS = [0.588789, 0.393957]
EXPECTED_AVERAGE_POOLING_LOGITS = [0.723671, 0.403046]


def test_fixed_values_of_the_generators_and_the_discriminator():
    with torch.no_grad():
        for tester, expected in (
            (TestStyleGANGenerator(), EXPECTED_FIR_SAMPLE),
            (TestStyleGANGeneratorClamped(), EXPECTED_FIR_SAMPLE),  # a clamp at 256 is never reached here
            (TestStyleGANGeneratorAdaIN(), EXPECTED_ADAIN_SAMPLE),
            (TestStyleGANGeneratorBilinear(), EXPECTED_BILINEAR_SAMPLE),
        ):
            sample = tester.build_model()(**tester.get_inputs()).sample
            assert torch.allclose(sample.flatten()[:6], torch.tensor(expected), atol=1e-4), type(tester).__name__
        for tester, expected in (
            (TestStyleGANDiscriminator(), EXPECTED_DISCRIMINATOR_LOGITS),
            (TestStyleGANDiscriminatorAveragePooling(), EXPECTED_AVERAGE_POOLING_LOGITS),
        ):
            logits = tester.build_model()(**tester.get_inputs()).logits
            assert torch.allclose(logits, torch.tensor(expected), atol=1e-4), type(tester).__name__


def test_a_folder_saved_before_the_fir_default_loads_with_bilinear_resampling(tmp_path):
    """hfgen's first StyleGAN 2 folders have no `resample_filter` in config.json: they were trained with bilinear
    upsampling and average pooling, and must keep drawing what they drew."""
    for tester, subfolder in ((TestStyleGANGeneratorBilinear(), "generator"), (TestStyleGANDiscriminator(), "d")):
        model = tester.build_model()
        model.save_pretrained(tmp_path / subfolder)
        config_file = tmp_path / subfolder / "config.json"
        saved = json.loads(config_file.read_text())
        del saved["resample_filter"]
        config_file.write_text(json.dumps(saved))
    generator = StyleGANGenerator.from_pretrained(tmp_path / "generator").eval()
    assert generator.config.resample_filter is None
    discriminator = StyleGANDiscriminator.from_pretrained(tmp_path / "d").eval()
    tester = TestStyleGANGeneratorBilinear()
    with torch.no_grad():
        sample = generator(**tester.get_inputs()).sample
        logits = discriminator(**TestStyleGANDiscriminator().get_inputs()).logits
    assert torch.allclose(sample.flatten()[:6], torch.tensor(EXPECTED_BILINEAR_SAMPLE), atol=1e-4)
    assert torch.allclose(logits, torch.tensor(EXPECTED_AVERAGE_POOLING_LOGITS), atol=1e-4)
    # a config written in code (no model_type) takes the current default
    assert StyleGANConfig.from_dict({"resolution": 16}).resample_filter == [1, 3, 3, 1]


# --- noise ---


def test_a_list_of_generators_draws_each_image_s_noise_from_its_own_generator():
    generator = TestStyleGANGenerator().build_model()
    z, labels = z_batch(2), torch.tensor([3, 3])

    def seeded(seed: int) -> torch.Generator:
        return torch.Generator().manual_seed(seed)

    with torch.no_grad():
        both = generator(z, labels=labels, generator=[seeded(1), seeded(2)]).sample
        first = generator(z[:1], labels=labels[:1], generator=seeded(1)).sample
        second = generator(z[1:], labels=labels[1:], generator=seeded(2)).sample
        assert torch.allclose(both, torch.cat([first, second]), atol=1e-6)
        # the same noise as the maps a caller draws in the order of `noise_shapes`, as the pipeline does
        maps_generator = seeded(1)
        noise = [torch.randn(shape, generator=maps_generator) for shape in generator.synthesis.noise_shapes(1)]
        assert torch.allclose(generator(z[:1], labels=labels[:1], noise=noise).sample, first, atol=1e-6)
    with pytest.raises(ValueError, match="got 3 generators for a batch of 2"):
        generator(z, labels=labels, generator=[seeded(1)] * 3)


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(str(x) for x in v.values()))
def test_shapes_and_determinism_with_constant_noise(variant):
    config = tiny_config(**variant)
    generator, discriminator = build(config)
    z, labels = z_batch(4), labels_for(config, 4)
    with torch.no_grad():
        output = generator(z, labels=labels, noise_mode="const")
        again = generator(z, labels=labels, noise_mode="const")
        logits = discriminator(output.sample, labels=labels).logits
    assert output.sample.shape == (4, 1, 16, 16)
    assert output.ws.shape == (4, config.num_ws, 16) and config.num_ws == 6  # 4, 8, 16 px: 1 + 2 + 2 layers + 1
    assert torch.equal(output.sample, again.sample)
    assert logits.shape == (4,) and torch.isfinite(logits).all()
    assert output.sample.std() > 1e-2


def test_noise_inputs_vary_the_image_only_once_their_strength_is_learned():
    generator, _ = build(tiny_config())
    z = z_batch(2)
    with torch.no_grad():
        # strengths start at 0: random noise changes nothing yet
        assert torch.allclose(generator(z, noise_mode="random").sample, generator(z, noise_mode="none").sample)
        for module in generator.modules():
            if hasattr(module, "strength"):
                module.strength.fill_(0.5)
        first, second = generator(z, noise_mode="random").sample, generator(z, noise_mode="random").sample
        assert not torch.allclose(first, second)
        assert torch.equal(generator(z, noise_mode="const").sample, generator(z, noise_mode="const").sample)
        shapes = generator.synthesis.noise_shapes(2)
        noise = [torch.zeros(shape) for shape in shapes]
        assert torch.allclose(generator(z, noise=noise).sample, generator(z, noise_mode="none").sample)
    assert [s[-1] for s in shapes] == [4, 8, 8, 16, 16]


def test_truncation_with_psi_zero_gives_the_average_w_image():
    generator, _ = build(tiny_config())
    with torch.no_grad():
        generator.mapping.w_avg.copy_(torch.randn(16, generator=torch.Generator().manual_seed(5)))
        truncated = generator(z_batch(3), truncation_psi=0.0, noise_mode="const")
        average_ws = generator.mapping.w_avg[None, None].repeat(1, generator.num_ws, 1)
        average_image = generator(ws=average_ws, noise_mode="const").sample
    assert torch.allclose(truncated.ws, average_ws.expand(3, -1, -1))
    assert torch.allclose(truncated.sample, average_image.expand(3, -1, -1, -1), atol=1e-5)


def test_truncation_cutoff_leaves_the_later_layers_untouched():
    generator, _ = build(tiny_config())
    with torch.no_grad():
        full = generator.map(z_batch(2))
        cut = generator.map(z_batch(2), truncation_psi=0.5, truncation_cutoff=2)
    w_avg = generator.mapping.w_avg
    assert torch.allclose(cut[:, :2], w_avg + 0.5 * (full[:, :2] - w_avg))
    assert torch.equal(cut[:, 2:], full[:, 2:])


def test_style_mixing_changes_only_the_layers_after_the_crossover():
    generator, _ = build(tiny_config())
    crossover = 3
    activations = []
    hooks = [
        layer.register_forward_hook(lambda module, inputs, output: activations.append(output))
        for layer in generator.modules()
        if isinstance(layer, StyleLayer)
    ]
    with torch.no_grad():
        ws, other = generator.map(z_batch(2, seed=0)), generator.map(z_batch(2, seed=1))
        plain = generator(ws=ws, noise_mode="const").sample
        plain_activations, activations[:] = list(activations), []
        mixed = generator(ws=mix_styles(ws, other, crossover), noise_mode="const").sample
    for hook in hooks:
        hook.remove()
    assert len(plain_activations) == 5
    for index in range(crossover):  # layers fed ws[:, :crossover] see the same styles and compute the same features
        assert torch.equal(activations[index], plain_activations[index])
    for index in range(crossover, 5):
        assert not torch.allclose(activations[index], plain_activations[index])
    assert not torch.allclose(mixed, plain)
    with pytest.raises(ValueError, match=r"crossover_layer must lie in \[0, 6\]"):
        mix_styles(ws, other, 7)


def test_w_average_is_tracked_in_training_mode_only():
    generator, _ = build(tiny_config(w_avg_beta=0.5))
    z = z_batch(8)
    with torch.no_grad():
        generator(z)  # eval mode: untouched
        assert torch.equal(generator.mapping.w_avg, torch.zeros(16))
        generator.train()
        w = generator.mapping(z)
        expected = 0.5 * w.mean(dim=0)  # lerp(mean w, w_avg=0, 0.5); the forward updated w_avg once
        generator.mapping.w_avg.zero_()
        generator.mapping(z)
    assert torch.allclose(generator.mapping.w_avg, expected, atol=1e-6)


def test_equalized_learning_rate_scales_weights_at_run_time():
    layer = EqualizedLinear(64, 8, lr_multiplier=0.01)
    torch.nn.init.normal_(layer.weight, std=100.0)  # as _init_weights does: N(0, 1) / lr_multiplier
    torch.nn.init.zeros_(layer.bias)
    x = torch.randn(4096, 64)
    # effective weight std = 100 * 0.01 / sqrt(64): outputs of unit-variance inputs have variance 64 * that^2 = 1
    assert layer.weight_gain == pytest.approx(0.01 / 8)
    assert layer(x * layer.weight_gain).std().item() == pytest.approx(1.0, rel=0.15)
    generator, _ = build(tiny_config())
    mapping_layer = generator.mapping.layers[0]
    assert mapping_layer.weight.std().item() == pytest.approx(1 / generator.config.mapping_lr_multiplier, rel=0.2)


def test_minibatch_stddev_appends_the_group_spread():
    layer = MinibatchStdDev(group_size=2, num_channels=1)
    same = torch.ones(4, 3, 2, 2)
    assert torch.allclose(layer(same)[:, 3], torch.full((4, 2, 2), 1e-4), atol=1e-4)  # no spread: sqrt(eps)
    spread = torch.cat([torch.zeros(2, 3, 2, 2), 2 * torch.ones(2, 3, 2, 2)])  # groups pair image i with i + 2
    assert torch.allclose(layer(spread)[:, 3], torch.ones(4, 2, 2), atol=1e-4)
    assert layer(torch.randn(3, 3, 2, 2)).shape == (3, 4, 2, 2)  # a batch of 3 falls back to groups that divide it


def test_gain_on_the_input_computes_what_the_stored_weights_always_meant():
    # Saved folders keep their meaning: W (g x) + m b is the former (g W) x + m b, for linear and conv layers alike.
    generator = torch.Generator().manual_seed(0)
    linear = EqualizedLinear(12, 5, lr_multiplier=0.01, bias_init=1.0)
    conv = EqualizedConv2d(3, 4, 3)
    with torch.no_grad():
        for tensor in (linear.weight, linear.bias, conv.weight, conv.bias):
            tensor.copy_(torch.randn(tensor.shape, generator=generator))
        x, image = torch.randn(6, 12, generator=generator), torch.randn(2, 3, 5, 5, generator=generator)
        former_linear = F.linear(x, linear.weight * (0.01 / math.sqrt(12)), linear.bias * 0.01)
        former_conv = F.conv2d(image, conv.weight / math.sqrt(27), conv.bias, padding=1)
        assert torch.allclose(linear(x * linear.weight_gain), former_linear, atol=1e-6)
        assert torch.allclose(conv(image * conv.weight_gain), former_conv, atol=1e-6)


def test_merging_lora_keeps_the_output_of_every_targeted_kind_of_layer():
    # The equalised-learning-rate gain used to scale the stored weight only, so a merged adapter was scaled by it too
    # (max abs difference 1.7 on this tiny model); it now scales the layer input, which LoRA's path sees as well.
    for variant in ({"style_block": "modulated"}, {"style_block": "adain", "num_classes": 10}):
        tester = TestStyleGANGenerator()
        tester.variant = variant
        adapted = get_peft_model(
            tester.build_model(),
            LoraConfig(r=2, lora_alpha=2, target_modules=LORA_STYLE_TARGETS, init_lora_weights=False),
        )
        with torch.no_grad():
            unmerged = adapted(**tester.get_inputs()).sample
            merged = adapted.merge_and_unload()(**tester.get_inputs()).sample
            base = tester.build_model()(**tester.get_inputs()).sample
        assert not torch.allclose(unmerged, base, atol=1e-3)
        assert (merged - unmerged).abs().max() < 1e-5, variant


def test_bad_inputs_fail_clearly():
    generator, discriminator = build(tiny_config())
    with pytest.raises(ValueError, match="exactly one of `latents` \\(z\\) and `ws`"):
        generator()
    with pytest.raises(ValueError, match=r"ws must have shape \(batch, 6, 16\)"):
        generator(ws=torch.zeros(1, 5, 16))
    with pytest.raises(ValueError, match="noise_mode must be"):
        generator(z_batch(1), noise_mode="fixed")
    with pytest.raises(ValueError, match="takes no `labels`"):
        generator(z_batch(1), labels=torch.tensor([0]))
    with pytest.raises(ValueError, match="pixel_values must have shape"):
        discriminator(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="resolution must be a power of two"):
        StyleGANConfig(resolution=48)
    with pytest.raises(ValueError, match="style_block must be one of"):
        StyleGANConfig(style_block="conv")


def test_gradients_reach_every_generator_parameter():
    generator, discriminator = build(tiny_config(num_classes=10))
    generator.train()
    for module in generator.modules():  # noise strengths start at 0 and only get a gradient through the noise
        if hasattr(module, "strength"):
            torch.nn.init.constant_(module.strength, 0.1)
    labels = torch.arange(4)
    logits = discriminator(generator(z_batch(4), labels=labels).sample, labels=labels).logits
    logits.sum().backward()
    missing = [name for name, p in generator.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []


def test_lora_on_mapping_and_styles_trains_saves_only_the_adapter_and_reloads(tmp_path):
    generator, discriminator = build(tiny_config(num_classes=10))
    generator.save_pretrained(tmp_path / "base")
    base = StyleGANGenerator.from_pretrained(tmp_path / "base").eval()
    z, labels = z_batch(4), torch.full((4,), 3)
    with torch.no_grad():
        before = base(z, labels=labels, noise_mode="const").sample
    adapted = get_peft_model(base, LoraConfig(r=2, lora_alpha=2, target_modules=LORA_STYLE_TARGETS))
    targeted = {
        name.removeprefix("base_model.model.") for name, module in adapted.named_modules() if hasattr(module, "lora_A")
    }
    assert {"mapping.layers.0", "mapping.layers.1", "mapping.class_embedding"} <= targeted
    assert sum(name.endswith(".affine") for name in targeted) == 5 + 3  # every style layer and RGB output
    optimizer = torch.optim.Adam([p for p in adapted.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        fake = adapted(z, labels=labels, noise_mode="const").sample
        loss = torch.nn.functional.softplus(-discriminator(fake, labels=labels).logits).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        tuned = adapted(z, labels=labels, noise_mode="const").sample
    assert not torch.allclose(tuned, before, atol=1e-4)
    adapted.save_pretrained(tmp_path / "adapter")
    assert set(os.listdir(tmp_path / "adapter")) - {"README.md"} == {
        "adapter_model.safetensors",
        "adapter_config.json",
    }
    reloaded = PeftModel.from_pretrained(StyleGANGenerator.from_pretrained(tmp_path / "base"), tmp_path / "adapter")
    with torch.no_grad():
        assert torch.allclose(reloaded.eval()(z, labels=labels, noise_mode="const").sample, tuned, atol=1e-5)


def test_fir_upsampling_is_not_bilinear_and_the_clamp_bounds_every_activation():
    fir = TestStyleGANGenerator().build_model()
    bilinear = StyleGANGenerator(tiny_config(style_block="modulated", num_classes=10, resample_filter=None)).eval()
    bilinear.load_state_dict(fir.state_dict())
    inputs = TestStyleGANGenerator().get_inputs()
    with torch.no_grad():
        assert not torch.allclose(fir(**inputs).sample, bilinear(**inputs).sample, atol=1e-3)
        clamped = StyleGANGenerator(tiny_config(num_classes=10, resample_filter=[1, 3, 3, 1], conv_clamp=0.05)).eval()
        clamped.load_state_dict(fir.state_dict())
        # the RGB outputs are clamped before they are summed across the resolutions
        assert clamped(**inputs).sample.abs().max() <= 0.05 * len(clamped.config.resolutions) + 1e-6
    with pytest.raises(ValueError, match="resample_filter must be FIR taps"):
        tiny_config(resample_filter=[1, -1])
    with pytest.raises(ValueError, match="conv_clamp must be > 0"):
        tiny_config(conv_clamp=0)


def test_channels_follow_channel_base_and_max():
    config = StyleGANConfig(resolution=64, channel_base=1024, channel_max=128)
    assert [config.channels_at(r) for r in config.resolutions] == [128, 128, 64, 32, 16]
    assert config.num_ws == 2 * int(math.log2(64)) - 2


def test_the_discriminator_clamps_its_activations_as_nvidias_does():
    tester = TestStyleGANDiscriminator()
    inputs = tester.get_inputs()
    free = tester.build_model()
    with torch.no_grad():
        logits = free(**inputs).logits
        for clamp, changes in ((256.0, False), (0.05, True)):
            clamped = StyleGANDiscriminator(tiny_config(num_classes=10, conv_clamp=clamp)).eval()
            clamped.load_state_dict(free.state_dict())
            assert torch.allclose(clamped(**inputs).logits, logits) != changes, clamp
