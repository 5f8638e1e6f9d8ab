"""unCLIP's regression prior: the shared model tests, fixed values, what it computes, config checks and a short fit."""

import pytest
import torch
import torch.nn.functional as F
from peft import LoraConfig

import hfgen  # noqa: F401  (registers hfgen's models with the Auto classes)
from hfgen.models.unclip import UnCLIPRegressionPrior, UnCLIPRegressionPriorConfig
from hfgen.testing.model_tester import ModelTesterMixin


def text_embeds(batch: int = 2, width: int = 8) -> torch.Tensor:
    return torch.randn(batch, width, generator=torch.Generator().manual_seed(1))


class TestUnCLIPRegressionPrior(ModelTesterMixin):
    model_class = UnCLIPRegressionPrior
    output_name = "image_embeds"

    def get_config(self) -> UnCLIPRegressionPriorConfig:
        return UnCLIPRegressionPriorConfig(embedding_dim=8, hidden_size=16, num_hidden_layers=2)

    def get_inputs(self, batch_size: int = 2) -> dict:
        return {"text_embeds": text_embeds(batch_size)}

    def lora_config(self) -> LoraConfig:
        return LoraConfig(r=2, lora_alpha=2, target_modules=r".*(mlp\.[04]|proj_out)")  # the linear layers

    def expected_buffers(self, model: UnCLIPRegressionPrior) -> dict:
        return {}


# Generated once from this code (torch 2.13, CPU) with the seeded tiny prior above; regenerate only for an intended
# change.
EXPECTED_EMBEDS = [-0.503921, -0.249285, -0.106865, -0.552548, -0.017017, -0.133337, -0.274535, -0.523215]


def test_fixed_values_of_the_prediction():
    tester = TestUnCLIPRegressionPrior()
    with torch.no_grad():
        embeds = tester.build_model()(**tester.get_inputs()).image_embeds
    assert torch.allclose(embeds[0], torch.tensor(EXPECTED_EMBEDS), atol=1e-4), embeds[0].tolist()


def test_the_prediction_is_the_normalised_text_embedding_plus_the_mlp_and_the_loss_its_cosine():
    torch.manual_seed(0)
    prior = UnCLIPRegressionPrior(UnCLIPRegressionPriorConfig(embedding_dim=8, hidden_size=16)).eval()
    text, target = text_embeds(3), F.normalize(text_embeds(3).flip(0), dim=-1)
    output = prior(text, image_embeds=target)
    direction = F.normalize(text, dim=-1)
    expected = F.normalize(direction + prior.proj_out(prior.mlp(direction)), dim=-1)
    assert torch.allclose(output.image_embeds, expected, atol=1e-6)
    assert torch.allclose(output.loss, 1 - (expected * target).sum(dim=-1).mean(), atol=1e-6)
    # the text embedding's scale does not matter
    assert torch.allclose(prior(5 * text).image_embeds, output.image_embeds, atol=1e-6)
    with torch.no_grad():
        prior.proj_out.weight.zero_()
        prior.proj_out.bias.zero_()
    assert torch.allclose(prior(text).image_embeds, direction, atol=1e-6), "a zero MLP keeps the text direction"


def test_a_short_fit_brings_the_predictions_to_their_targets():
    # eight text embeddings, each paired with an image embedding in another direction: 100 Adam steps
    torch.manual_seed(0)
    prior = UnCLIPRegressionPrior(UnCLIPRegressionPriorConfig(embedding_dim=8, hidden_size=32))
    text, target = text_embeds(8), F.normalize(torch.randn(8, 8, generator=torch.Generator().manual_seed(2)), dim=-1)
    optimizer = torch.optim.Adam(prior.parameters(), lr=1e-2)
    first = prior(text, image_embeds=target).loss.item()
    for _ in range(100):
        loss = prior(text, image_embeds=target).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert first > 0.5 and loss.item() < 0.05


def test_config_checks_name_the_field():
    for field, value in (("embedding_dim", 0), ("hidden_size", -1), ("num_hidden_layers", 1.5)):
        with pytest.raises(ValueError, match=f"UnCLIPRegressionPriorConfig.{field} must be an integer >= 1"):
            UnCLIPRegressionPriorConfig(**{field: value})
    with pytest.raises(ValueError, match=r"dropout must lie in \[0, 1\)"):
        UnCLIPRegressionPriorConfig(dropout=1.0)
    with pytest.raises(ValueError, match=r"text_embeds must have shape \(batch, 8\), got \(2, 4\)"):
        UnCLIPRegressionPrior(UnCLIPRegressionPriorConfig(embedding_dim=8))(torch.zeros(2, 4))
