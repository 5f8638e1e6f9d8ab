"""hfgen's VAE: the shared model tests, loss terms, posterior, fixed values, errors, LoRA on the decoder."""

import math
import os
from typing import ClassVar

import pytest
import torch
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file

from hfgen import VAEConfig, VAEModel
from hfgen.models.vae import LORA_DECODER_TARGETS
from hfgen.models.vae.modeling_vae import VAEResnetBlock
from hfgen.testing.model_tester import ModelTesterMixin


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_pixels(batch: int = 2, channels: int = 1, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, channels, size, size, generator=seeded(seed)) * 2 - 1


def copy_of(model: VAEModel, **config_changes) -> VAEModel:
    """A VAE with `model`'s weights and a config changed in `config_changes`."""
    config = VAEConfig(**{**model.config.to_dict(), **config_changes})
    other = VAEModel(config).eval()
    other.load_state_dict(model.state_dict())
    return other


def lora_on_decoder_config() -> LoraConfig:
    return LoraConfig(r=4, lora_alpha=4, target_modules=LORA_DECODER_TARGETS, exclude_modules=r"encoder\..*")


class TestVAEModel(ModelTesterMixin):
    model_class = VAEModel
    output_name = "sample"
    random_call_kwargs: ClassVar[dict] = {"sample_posterior": True}

    def get_config(self) -> VAEConfig:
        return VAEConfig(
            in_channels=1, sample_size=16, block_out_channels=[8, 16], norm_num_groups=4, latent_channels=2
        )

    def get_inputs(self, batch_size: int = 2) -> dict:
        return {"pixel_values": random_pixels(batch=batch_size)}

    def lora_config(self) -> LoraConfig:
        return lora_on_decoder_config()

    def expected_buffers(self, model: VAEModel) -> dict:
        return {}  # GroupNorm keeps no running statistics


# --- fixed values: a silent change in the maths fails here ---

# Generated once from this code (torch 2.13, CPU) with the seeded tiny VAE of `TestVAEModel`; regenerate only for an
# intended change.
EXPECTED_POSTERIOR_MEAN = [-0.264566, -0.180883, -0.480537, -0.132707, -0.416844, -0.329352]
EXPECTED_DECODED = [0.210037, -0.060622, 0.025827, -0.2408, 0.218089, -0.171742]


def test_fixed_values_of_encode_and_decode():
    vae = TestVAEModel().build_model()
    with torch.no_grad():
        mean = vae.encode(random_pixels()).latent_dist.mean
        decoded = vae.decode(torch.randn(2, 2, 8, 8, generator=seeded(5))).sample
    assert torch.allclose(mean.flatten()[:6], torch.tensor(EXPECTED_POSTERIOR_MEAN), atol=1e-4)
    assert torch.allclose(decoded.flatten()[:6], torch.tensor(EXPECTED_DECODED), atol=1e-4)


# --- outputs ---


def test_output_shapes(tiny_vae):
    pixels = random_pixels(batch=3)
    posterior = tiny_vae.encode(pixels).latent_dist
    assert posterior.mean.shape == (3, 2, 8, 8)
    assert posterior.logvar.shape == (3, 2, 8, 8)
    assert tiny_vae.decode(posterior.mode()).sample.shape == (3, 1, 16, 16)

    output = tiny_vae(pixels, sample_posterior=True, generator=seeded(0))
    assert output.sample.shape == (3, 1, 16, 16)
    for term in (output.loss, output.reconstruction_loss, output.kl_loss):
        assert term.shape == () and torch.isfinite(term)


def test_latent_size_follows_the_number_of_levels():
    config = VAEConfig(
        in_channels=3, sample_size=32, block_out_channels=[4, 8, 8], norm_num_groups=4, latent_channels=3
    )
    assert config.latent_size == 8
    torch.manual_seed(0)
    vae = VAEModel(config).eval()
    assert vae.encode(random_pixels(channels=3, size=32)).latent_dist.mean.shape == (2, 3, 8, 8)
    assert vae.decode(torch.zeros(1, 3, 8, 8)).sample.shape == (1, 3, 32, 32)


def test_forward_decodes_the_posterior_mean_unless_asked_to_sample(tiny_vae):
    # Evaluation must be deterministic without a generator, as with diffusers' AutoencoderKL.
    pixels = random_pixels()
    first, second = tiny_vae(pixels), tiny_vae(pixels)
    assert torch.equal(first.sample, second.sample)
    assert torch.equal(first.sample, tiny_vae.decode(tiny_vae.encode(pixels).latent_dist.mean).sample)
    sampled = tiny_vae(pixels, sample_posterior=True, generator=seeded(0))
    assert not torch.allclose(sampled.sample, first.sample)


def test_encode_and_decode_follow_config_return_dict(tiny_vae):
    pixels = random_pixels()
    expected = tiny_vae.encode(pixels).latent_dist
    tiny_vae.config.return_dict = False
    (latent_dist,) = tiny_vae.encode(pixels)
    assert torch.equal(latent_dist.mean, expected.mean)
    (decoded,) = tiny_vae.decode(latent_dist.mode())
    assert torch.equal(decoded, tiny_vae.decode(expected.mode(), return_dict=True).sample)


def test_return_dict_false_gives_the_same_values_as_a_tuple(tiny_vae):
    pixels = random_pixels()
    as_dict = tiny_vae(pixels, sample_posterior=False)
    as_tuple = tiny_vae(pixels, sample_posterior=False, return_dict=False)
    loss, reconstruction_loss, kl_loss, sample, latent_dist = as_tuple
    assert torch.equal(loss, as_dict.loss)
    assert torch.equal(reconstruction_loss, as_dict.reconstruction_loss)
    assert torch.equal(kl_loss, as_dict.kl_loss)
    assert torch.equal(sample, as_dict.sample)
    assert torch.equal(latent_dist.mean, as_dict.latent_dist.mean)
    (latent_dist,) = tiny_vae.encode(pixels, return_dict=False)
    (decoded,) = tiny_vae.decode(latent_dist.mode(), return_dict=False)
    assert torch.equal(decoded, as_dict.sample)


# --- loss terms ---


def test_kl_loss_matches_the_closed_form_for_a_known_posterior(tiny_vae):
    # Zero weights on the last encoder conv make the posterior the conv's bias: known mean and log-variance per
    # channel.
    mean, logvar = torch.tensor([0.5, -1.5]), torch.tensor([-0.7, 0.4])
    with torch.no_grad():
        tiny_vae.encoder.conv_out.weight.zero_()
        tiny_vae.encoder.conv_out.bias.copy_(torch.cat([mean, logvar]))
    output = tiny_vae(random_pixels(), sample_posterior=False)

    positions = 8 * 8  # every latent position has the same mean and variance
    expected = (
        0.5 * positions * sum(m**2 + math.exp(v) - 1 - v for m, v in zip(mean.tolist(), logvar.tolist(), strict=True))
    )
    assert output.kl_loss.item() == pytest.approx(expected, rel=1e-5)
    assert torch.allclose(output.latent_dist.mean, mean.view(1, 2, 1, 1).expand(2, 2, 8, 8))


def test_kl_of_the_posterior_matches_torch_distributions():
    generator = seeded(1)
    mean, logvar = torch.randn(3, 2, 4, 4, generator=generator), torch.randn(3, 2, 4, 4, generator=generator)
    posterior = DiagonalGaussianDistribution(torch.cat([mean, logvar], dim=1))
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(mean, torch.exp(0.5 * logvar)), torch.distributions.Normal(0.0, 1.0)
    ).sum(dim=(1, 2, 3))
    assert torch.allclose(posterior.kl(), expected, atol=1e-5)


def test_reconstruction_loss_is_the_per_image_error_sum_averaged_over_the_batch(tiny_vae):
    pixels = random_pixels(batch=3)
    output = tiny_vae(pixels, sample_posterior=False)
    errors = output.sample - pixels
    assert output.reconstruction_loss.item() == pytest.approx((errors**2).sum().item() / 3, rel=1e-5)

    l1 = copy_of(tiny_vae, reconstruction_loss="l1")(pixels, sample_posterior=False)
    assert torch.equal(l1.sample, output.sample)
    assert l1.reconstruction_loss.item() == pytest.approx(errors.abs().sum().item() / 3, rel=1e-5)


@pytest.mark.parametrize("kl_weight", [0.0, 1.0, 4.0])
def test_loss_is_reconstruction_plus_weighted_kl(tiny_vae, kl_weight):
    vae = copy_of(tiny_vae, kl_weight=kl_weight)
    output = vae(random_pixels(), sample_posterior=True, generator=seeded(3))
    assert output.kl_loss > 0
    expected = output.reconstruction_loss.item() + kl_weight * output.kl_loss.item()
    assert output.loss.item() == pytest.approx(expected, rel=1e-6)


def test_kl_weight_changes_the_loss_and_nothing_else(tiny_vae):
    pixels = random_pixels()
    plain = copy_of(tiny_vae, kl_weight=1.0)(pixels, sample_posterior=True, generator=seeded(3))
    beta = copy_of(tiny_vae, kl_weight=4.0)(pixels, sample_posterior=True, generator=seeded(3))
    assert torch.equal(plain.sample, beta.sample)
    assert torch.equal(plain.kl_loss, beta.kl_loss)
    assert beta.loss.item() == pytest.approx(plain.loss.item() + 3.0 * plain.kl_loss.item(), rel=1e-6)


# --- the posterior ---


def test_posterior_sample_is_deterministic_under_a_seeded_generator(tiny_vae):
    posterior = tiny_vae.encode(random_pixels()).latent_dist
    first = posterior.sample(generator=seeded(7))
    assert torch.equal(first, posterior.sample(generator=seeded(7)))
    assert not torch.allclose(first, posterior.sample(generator=seeded(8)))
    forward = tiny_vae(random_pixels(), sample_posterior=True, generator=seeded(7)).sample
    assert torch.equal(forward, tiny_vae(random_pixels(), sample_posterior=True, generator=seeded(7)).sample)


def test_mode_is_the_mean(tiny_vae):
    posterior = tiny_vae.encode(random_pixels()).latent_dist
    assert torch.equal(posterior.mode(), posterior.mean)
    assert not torch.equal(posterior.sample(generator=seeded(0)), posterior.mean)
    deterministic = tiny_vae(random_pixels(), sample_posterior=False)
    assert torch.equal(deterministic.sample, tiny_vae.decode(posterior.mean).sample)


# --- gradient checkpointing ---


def test_activation_checkpointing_recomputes_the_resnet_blocks_and_keeps_the_gradients(tiny_vae):
    pixels = random_pixels()
    checkpointed = copy_of(tiny_vae).train()
    checkpointed.activation_checkpointing_enable()
    resnets = [module for module in checkpointed.modules() if isinstance(module, VAEResnetBlock)]
    assert len(resnets) == 6  # one per level and one in the middle, in the encoder and in the decoder
    assert all(resnet.gradient_checkpointing for resnet in resnets)

    # A checkpointed block runs its convolutions again during the backward pass.
    calls = []
    checkpointed.decoder.mid.conv1.register_forward_hook(lambda *_: calls.append(1))
    checkpointed(pixels, sample_posterior=True, generator=seeded(0)).loss.backward()
    assert len(calls) == 2

    plain = copy_of(tiny_vae).train()
    plain(pixels, sample_posterior=True, generator=seeded(0)).loss.backward()
    for (name, parameter), (_, reference) in zip(
        checkpointed.named_parameters(), plain.named_parameters(), strict=True
    ):
        assert torch.allclose(parameter.grad, reference.grad, atol=1e-5), name

    checkpointed.activation_checkpointing_disable()
    assert not any(resnet.gradient_checkpointing for resnet in resnets)


# --- errors ---


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"block_out_channels": [8, 10]}, "VAEConfig.norm_num_groups=4 must divide"),
        ({"block_out_channels": []}, "VAEConfig.block_out_channels must name at least one level"),
        ({"block_out_channels": [0, 8]}, r"VAEConfig.block_out_channels entries must be integers >= 1, got \[0, 8\]"),
        ({"block_out_channels": [-8, 8]}, "VAEConfig.block_out_channels entries must be integers >= 1"),
        ({"latent_channels": -1}, "VAEConfig.latent_channels must be an integer >= 1, got -1"),
        ({"latent_channels": 0}, "VAEConfig.latent_channels must be an integer >= 1, got 0"),
        ({"in_channels": 0}, "VAEConfig.in_channels must be an integer >= 1"),
        ({"out_channels": -3}, "VAEConfig.out_channels must be an integer >= 1"),
        ({"sample_size": 0}, "VAEConfig.sample_size must be an integer >= 1"),
        ({"layers_per_block": 0}, "VAEConfig.layers_per_block must be an integer >= 1"),
        ({"norm_num_groups": 0}, "VAEConfig.norm_num_groups must be an integer >= 1"),
        ({"latent_channels": 2.5}, "VAEConfig.latent_channels must be an integer >= 1, got 2.5"),
        ({"sample_size": 18, "block_out_channels": [8, 8, 8]}, "VAEConfig.sample_size=18 must be divisible by 4"),
        ({"reconstruction_loss": "bce"}, "VAEConfig.reconstruction_loss must be 'mse' or 'l1'"),
        ({"kl_weight": -0.5}, "VAEConfig.kl_weight must be >= 0"),
        ({"scaling_factor": 0.0}, "VAEConfig.scaling_factor must be > 0"),
    ],
)
def test_config_validation(changes, message):
    # Each bad size fails where it is written, naming the class and field, not later as a "negative dimension".
    arguments = {"in_channels": 1, "sample_size": 16, "block_out_channels": [8, 16], "norm_num_groups": 4, **changes}
    with pytest.raises(ValueError, match=message):
        VAEConfig(**arguments)


def test_config_defaults_out_channels_to_in_channels(tiny_vae_config):
    assert tiny_vae_config.out_channels == 1
    assert VAEConfig(in_channels=3, out_channels=1, norm_num_groups=4).out_channels == 1


@pytest.mark.parametrize(
    "shape, message",
    [
        ((2, 3, 16, 16), r"must have shape \(batch, 1, height, width\)"),
        ((1, 16, 16), r"must have shape \(batch, 1, height, width\)"),
        ((2, 1, 15, 16), "must be divisible by 2"),
    ],
)
def test_bad_pixel_shapes_raise(tiny_vae, shape, message):
    with pytest.raises(ValueError, match=message):
        tiny_vae.encode(torch.zeros(shape))
    with pytest.raises(ValueError, match=message):
        tiny_vae(torch.zeros(shape))


@pytest.mark.parametrize("shape", [(1, 3, 8, 8), (2, 8, 8)])
def test_bad_latent_shapes_raise(tiny_vae, shape):
    with pytest.raises(ValueError, match=r"latents must have shape \(batch, 2, height, width\)"):
        tiny_vae.decode(torch.zeros(shape))


# --- LoRA on the decoder ---


def lora_on_decoder(model: VAEModel) -> PeftModel:
    return get_peft_model(model, lora_on_decoder_config())


def test_lora_decoder_targets_reach_every_decoder_conv_but_the_skips(tiny_vae):
    decoder_convs = {
        name
        for name, module in tiny_vae.named_modules()
        if name.startswith("decoder.") and isinstance(module, torch.nn.Conv2d)
    }
    adapted = lora_on_decoder(tiny_vae)
    targeted = {
        name.removeprefix("base_model.model.") for name, module in adapted.named_modules() if hasattr(module, "lora_A")
    }
    assert targeted == {name for name in decoder_convs if not name.endswith(".skip")}
    assert len(targeted) == 9
    trainable = {name for name, parameter in adapted.named_parameters() if parameter.requires_grad}
    assert trainable and all(".lora_" in name and ".decoder." in name for name in trainable)


def test_lora_trains_saves_only_the_adapter_and_reloads(tiny_vae, digit_batch, tmp_path):
    base_dir, adapter_dir = tmp_path / "base", tmp_path / "adapter"
    tiny_vae.save_pretrained(base_dir)
    base = VAEModel.from_pretrained(base_dir).eval()
    with torch.no_grad():
        base_output = base(digit_batch, sample_posterior=False)

    # 1. a few optimizer steps on real digits; only the LoRA weights move
    adapted = lora_on_decoder(base)
    optimizer = torch.optim.AdamW([p for p in adapted.parameters() if p.requires_grad], lr=1e-2)
    adapted.train()
    losses = []
    for _ in range(5):
        loss = adapted(digit_batch, sample_posterior=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(base_output.loss.item(), rel=1e-5)  # LoRA starts as the identity
    assert losses[-1] < losses[0]
    adapted.eval()
    with torch.no_grad():
        trained = adapted(digit_batch, sample_posterior=False)
    assert not torch.allclose(trained.sample, base_output.sample, atol=1e-3)
    assert torch.equal(trained.latent_dist.mean, base_output.latent_dist.mean)  # the encoder is untouched

    # 2. the adapter folder holds the LoRA weights and their config, no copy of the model
    adapted.save_pretrained(adapter_dir)
    files = set(os.listdir(adapter_dir))
    assert files - {"README.md"} == {"adapter_model.safetensors", "adapter_config.json"}
    adapter_weights = load_file(adapter_dir / "adapter_model.safetensors")
    assert len(adapter_weights) == 2 * 9 and all(".lora_" in key and ".decoder." in key for key in adapter_weights)

    # 3. a fresh base from the same folder plus the adapter gives the trained model back
    reloaded = PeftModel.from_pretrained(VAEModel.from_pretrained(base_dir), adapter_dir).eval()
    with torch.no_grad():
        again = reloaded(digit_batch, sample_posterior=False)
    assert torch.allclose(again.sample, trained.sample, atol=1e-5)
    assert not torch.allclose(again.sample, base_output.sample, atol=1e-3)
