"""StackGAN generator and discriminator: the shared model tests (both stages), what each stage uses and returns,
conditioning augmentation's sample and KL term, fixed values, and the checks of inputs and configs."""

from typing import ClassVar

import pytest
import torch
from peft import LoraConfig

from hfgen import StackGANConfig, StackGANDiscriminator, StackGANGenerator
from hfgen.models.stackgan import LORA_STACKGAN_TARGETS
from hfgen.testing.model_tester import ModelTesterMixin

from .test_modeling_gan import batch_norm_buffers


def tiny_config(**changes) -> StackGANConfig:
    settings = dict(
        resolution=16,
        stage1_resolution=8,
        text_embedding_dim=8,
        condition_dim=4,
        latent_dim=8,
        generator_channels=16,
        stage2_channels=8,
        stage2_residual_blocks=1,
        discriminator_channels=4,
        discriminator_text_dim=4,
    )
    return StackGANConfig(**{**settings, **changes})


def seeded_normal(*shape, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def calibrate_batch_norms(model: torch.nn.Module, inputs: dict) -> None:
    """Fresh from DCGAN's N(0, 0.02) initialisation, the networks' outputs are near 0 in eval mode (batch norm's
    running statistics are those of a unit normal), too small for the shared tests' tolerances to see a change (a
    LoRA adapter's effect, say). One training-mode pass sets the running statistics to those of a batch, as training
    does."""
    norms = [module for module in model.modules() if isinstance(module, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.momentum = None  # the running statistics become those of the pass
    with torch.no_grad():
        model.train()(**inputs)
    for norm in norms:
        norm.momentum = 0.1


class TestStackGANGenerator(ModelTesterMixin):
    """Both stages (the default of `forward`: what a saved model draws), conditions sampled with given noise."""

    model_class = StackGANGenerator
    output_name = "sample"
    stage: ClassVar[int] = 2

    def get_config(self) -> StackGANConfig:
        return tiny_config()

    def get_inputs(self, batch_size: int = 2) -> dict:
        return {
            "text_embeds": seeded_normal(batch_size, 8, seed=0),
            "latents": seeded_normal(batch_size, 8, seed=1),
            "condition_noise": seeded_normal(batch_size, 2, 4, seed=2),
            "stage": self.stage,
        }

    def lora_config(self) -> LoraConfig:
        return LoraConfig(r=2, lora_alpha=2, target_modules=LORA_STACKGAN_TARGETS, modules_to_save=["norm"])

    def expected_buffers(self, model: StackGANGenerator) -> dict:
        return batch_norm_buffers(model)

    def prepare_model(self, model: StackGANGenerator) -> None:
        calibrate_batch_norms(model, self.get_inputs(batch_size=4))


class TestStackGANGeneratorStage1(TestStackGANGenerator):
    stage: ClassVar[int] = 1


class TestStackGANDiscriminator(ModelTesterMixin):
    model_class = StackGANDiscriminator
    output_name = "logits"
    loaded_by_auto_model = False  # AutoModel maps StackGANConfig to the generator
    stage: ClassVar[int] = 2

    def get_config(self) -> StackGANConfig:
        return tiny_config()

    def get_inputs(self, batch_size: int = 2) -> dict:
        size = 16 if self.stage == 2 else 8
        return {
            "pixel_values": torch.rand(batch_size, 1, size, size, generator=torch.Generator().manual_seed(3)) * 2 - 1,
            "text_embeds": seeded_normal(batch_size, 8, seed=0),
            "stage": self.stage,
        }

    def lora_config(self) -> LoraConfig:
        return LoraConfig(r=2, lora_alpha=2, target_modules=["conv", "projection", "output"], modules_to_save=["norm"])

    def expected_buffers(self, model: StackGANDiscriminator) -> dict:
        return batch_norm_buffers(model)

    def prepare_model(self, model: StackGANDiscriminator) -> None:
        calibrate_batch_norms(model, self.get_inputs(batch_size=4))


class TestStackGANDiscriminatorStage1(TestStackGANDiscriminator):
    stage: ClassVar[int] = 1


# --- the two stages ---


def test_stage_two_refines_the_stage_one_image_and_each_stage_trains_only_its_own_layers():
    generator = TestStackGANGenerator().build_model().train()
    inputs = TestStackGANGenerator().get_inputs(batch_size=4)
    both = generator(**inputs)
    first = generator(**{**inputs, "stage": 1})
    assert both.sample.shape == (4, 1, 16, 16) and both.stage1_sample.shape == (4, 1, 8, 8)
    assert first.sample.shape == (4, 1, 8, 8) and torch.equal(first.sample, first.stage1_sample)
    # stage II reads stage I's image: the same z, text and stage-I noise give the same stage-I image
    torch.testing.assert_close(both.stage1_sample, first.sample, rtol=0, atol=0)
    # stage II's image depends on stage I's: another z changes it
    other = generator(**{**inputs, "latents": seeded_normal(4, 8, seed=9)})
    assert not torch.allclose(other.sample, both.sample, atol=1e-3)
    # a stage-1 call uses no stage-II layer; a stage-2 call's KL term is stage II's conditioning augmentation's
    first.sample.sum().backward()
    assert all(p.grad is None for p in generator.stage2.parameters())
    assert all(p.grad is not None for p in generator.stage1.parameters())
    generator.zero_grad(set_to_none=True)
    both.kl_loss.backward()
    assert all(p.grad is None for p in generator.stage1.parameters())
    assert generator.stage2.conditioning.projection.weight.grad is not None


def test_conditioning_augmentation_samples_around_the_mean_and_its_kl_is_the_closed_form():
    generator = TestStackGANGenerator().build_model()
    conditioning = generator.stage1.conditioning
    text = seeded_normal(5, 8, seed=0)
    with torch.no_grad():
        mean, log_variance = conditioning.projection(text).chunk(2, dim=1)
        noise = seeded_normal(5, 4, seed=4)
        sampled, kl = conditioning(text, noise)
        torch.testing.assert_close(sampled, mean + torch.exp(0.5 * log_variance) * noise)
        # without noise the condition is its mean, and so is it with zero noise
        torch.testing.assert_close(conditioning(text, None)[0], mean, rtol=0, atol=0)
        torch.testing.assert_close(conditioning(text, torch.zeros(5, 4))[0], mean, rtol=0, atol=0)
        # KL(N(mean, sigma^2) || N(0, 1)) per dimension, summed, averaged over the batch, by torch.distributions
        normal = torch.distributions.Normal(mean, torch.exp(0.5 * log_variance))
        expected = torch.distributions.kl_divergence(normal, torch.distributions.Normal(0.0, 1.0)).sum(1).mean()
        torch.testing.assert_close(kl, expected, rtol=1e-5, atol=1e-6)
        # the generator's output: without condition noise every condition is its mean, so the call is deterministic
        inputs = TestStackGANGenerator().get_inputs()
        inputs.pop("condition_noise")
        mean_call = generator(**inputs).sample
        assert torch.equal(generator(**inputs).sample, mean_call)
        zero_noise = generator(**inputs, condition_noise=torch.zeros(2, 2, 4)).sample
        torch.testing.assert_close(zero_noise, mean_call, rtol=0, atol=0)


def test_the_discriminator_scores_image_and_text_together():
    discriminator = TestStackGANDiscriminator().build_model()
    inputs = TestStackGANDiscriminator().get_inputs(batch_size=3)
    with torch.no_grad():
        logits = discriminator(**inputs).logits
        other_text = discriminator(**{**inputs, "text_embeds": seeded_normal(3, 8, seed=7)}).logits
        other_stage = discriminator(**TestStackGANDiscriminatorStage1().get_inputs(batch_size=3)).logits
    assert logits.shape == (3,) and not torch.allclose(logits, other_text, atol=1e-4)
    assert other_stage.shape == (3,)


# --- fixed values: a silent change in the maths fails here ---

# Generated once from this code (torch 2.13, CPU) with the seeded tiny models of the tester classes above, in training
# mode (batch statistics); regenerate only for an intended change, by running this test and pasting the values its
# failure prints.
EXPECTED = {
    "stage2": [-0.105966, -0.128205, -0.086540, -0.099206],
    "stage1": [0.108079, 0.118256, 0.141256, 0.098710],
    "discriminator2": [0.025678, 0.359276],
    "discriminator1": [0.195693, 0.053205],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixed_values(name):
    tester = {
        "stage2": TestStackGANGenerator,
        "stage1": TestStackGANGeneratorStage1,
        "discriminator2": TestStackGANDiscriminator,
        "discriminator1": TestStackGANDiscriminatorStage1,
    }[name]()
    output = tester.run(tester.build_model().train())
    values = output.flatten()[-4:] if output.ndim > 1 else output
    printed = "[" + ", ".join(f"{value:.6f}" for value in values.tolist()) + "]"
    assert torch.allclose(values, torch.tensor(EXPECTED[name]), atol=1e-4), f"{name}: {printed}"


# --- checks ---


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"stage1_resolution": 12}, "StackGANConfig.stage1_resolution must be a power of two >= 8"),
        ({"stage1_resolution": 4}, "StackGANConfig.stage1_resolution must be an integer >= 8"),
        ({"resolution": 8}, "StackGANConfig.resolution must be an integer >= 16"),
        ({"resolution": 16, "stage1_resolution": 16}, "resolution (16) must be at least twice stage1_resolution (16)"),
        ({"condition_dim": 0}, "StackGANConfig.condition_dim must be an integer >= 1, got 0"),
        ({"stage2_residual_blocks": -1}, "StackGANConfig.stage2_residual_blocks must be an integer >= 0"),
    ],
)
def test_bad_configs_name_the_field(changes, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        tiny_config(**changes)


def test_bad_inputs_are_one_line_errors():
    generator, discriminator = TestStackGANGenerator().build_model(), TestStackGANDiscriminator().build_model()
    inputs = TestStackGANGenerator().get_inputs()
    cases = [
        (generator, {**inputs, "stage": 3}, "stage must be 1 (the low-resolution images) or 2"),
        (generator, {**inputs, "stage": True}, "stage must be 1"),
        (generator, {**inputs, "text_embeds": torch.zeros(2, 5)}, "text_embeds must have shape (batch, 8)"),
        (generator, {**inputs, "latents": torch.zeros(3, 8)}, "latents must have shape (2, 8), got (3, 8)"),
        (generator, {**inputs, "condition_noise": torch.zeros(2, 1, 4)}, "condition_noise must have shape (2, 2, 4)"),
        (
            discriminator,
            {"pixel_values": torch.zeros(2, 1, 8, 8), "text_embeds": torch.zeros(2, 8)},
            "pixel_values must have shape (2, 1, 16, 16) for stage 2",
        ),
    ]
    for model, call, message in cases:
        with pytest.raises(ValueError) as error:
            model(**call)
        assert message in str(error.value) and "\n" not in str(error.value)
