"""hfgen's digits classifier: the shared model tests, outputs, fixed values, config checks, training."""

import pytest
import torch
import torch.nn.functional as F
from peft import LoraConfig

import hfgen  # noqa: F401  (registers hfgen's models with the Auto classes)
from hfgen.models.digits_classifier import DigitsClassifier, DigitsClassifierConfig
from hfgen.testing.model_tester import ModelTesterMixin


@pytest.fixture
def tiny_config() -> DigitsClassifierConfig:
    """16x16 greyscale images, two levels of 4 and 8 channels, one conv each, 3 classes."""
    return DigitsClassifierConfig(image_size=16, hidden_channels=[4, 8], layers_per_block=1, num_labels=3)


@pytest.fixture
def tiny_model(tiny_config) -> DigitsClassifier:
    torch.manual_seed(0)
    return DigitsClassifier(tiny_config).eval()


def images(batch: int = 2, size: int = 16) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.rand(batch, 1, size, size, generator=generator) * 2 - 1


class TestDigitsClassifier(ModelTesterMixin):
    model_class = DigitsClassifier
    output_name = "logits"

    def get_config(self) -> DigitsClassifierConfig:
        return DigitsClassifierConfig(image_size=16, hidden_channels=[4, 8], layers_per_block=1, num_labels=3)

    def get_inputs(self, batch_size: int = 2) -> dict:
        return {"pixel_values": images(batch=batch_size)}

    def lora_config(self) -> LoraConfig:
        return LoraConfig(r=2, lora_alpha=2, target_modules=r".*(convs\.\d+|classifier)")

    def expected_buffers(self, model: DigitsClassifier) -> dict:
        return {}


# Generated once from this code (torch 2.13, CPU) with the seeded tiny classifier above; regenerate only for an
# intended change.
EXPECTED_LOGITS = [-0.857095, -1.364227, -0.447847, -0.852959, -1.266863, -0.413676]


def test_fixed_values_of_the_logits():
    tester = TestDigitsClassifier()
    with torch.no_grad():
        logits = tester.build_model()(**tester.get_inputs()).logits
    assert torch.allclose(logits.flatten(), torch.tensor(EXPECTED_LOGITS), atol=1e-4)


def test_config_defaults_describe_the_ten_digits():
    config = DigitsClassifierConfig()
    assert config.model_type == "hfgen_digits_classifier"
    assert config.num_labels == 10
    assert config.id2label == {i: str(i) for i in range(10)}
    assert config.label2id["7"] == 7


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"hidden_channels": []}, "DigitsClassifierConfig.hidden_channels must name at least one level"),
        ({"hidden_channels": [16, 0]}, "DigitsClassifierConfig.hidden_channels entries must be integers >= 1"),
        ({"layers_per_block": 0}, "DigitsClassifierConfig.layers_per_block must be an integer >= 1, got 0"),
        ({"num_channels": -1}, "DigitsClassifierConfig.num_channels must be an integer >= 1, got -1"),
        ({"image_size": 0}, "DigitsClassifierConfig.image_size must be an integer >= 1, got 0"),
        ({"image_size": 30}, "DigitsClassifierConfig.image_size=30 must be divisible by 4"),
        ({"num_labels": 0}, "DigitsClassifierConfig.num_labels must be an integer >= 1, got 0"),
        ({"classifier_dropout": 1.0}, "DigitsClassifierConfig.classifier_dropout"),
    ],
)
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DigitsClassifierConfig(**kwargs)


def test_forward_shapes_loss_and_features(tiny_model):
    pixel_values = images()
    labels = torch.tensor([0, 2])
    output = tiny_model(pixel_values, labels=labels)
    assert output.logits.shape == (2, 3)
    # The loss is the cross-entropy of the returned logits (dropout is off in eval mode).
    torch.testing.assert_close(output.loss, F.cross_entropy(output.logits, labels))
    assert tiny_model(pixel_values).loss is None
    assert tiny_model.get_image_features(pixel_values).shape == (2, 8)
    # Without labels the tuple holds the logits alone, with labels the loss comes first.
    (logits,) = tiny_model(pixel_values, return_dict=False)
    loss, _logits_with_loss = tiny_model(pixel_values, labels=labels, return_dict=False)
    torch.testing.assert_close(logits, output.logits)
    torch.testing.assert_close(loss, output.loss)


def test_logits_are_the_linear_head_on_the_features(tiny_model):
    pixel_values = images()
    features = tiny_model.get_image_features(pixel_values)
    expected = features @ tiny_model.classifier.weight.T + tiny_model.classifier.bias
    torch.testing.assert_close(tiny_model(pixel_values).logits, expected)


def test_wrong_channel_count_is_rejected(tiny_model):
    with pytest.raises(ValueError, match=r"\(batch, 1, height, width\)"):
        tiny_model(torch.zeros(2, 3, 16, 16))


def test_training_step_reduces_the_loss(tiny_config):
    torch.manual_seed(0)
    model = DigitsClassifier(tiny_config).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    pixel_values, labels = images(batch=6), torch.tensor([0, 1, 2, 0, 1, 2])
    first = model(pixel_values, labels=labels).loss.item()
    for _ in range(20):
        loss = model(pixel_values, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert loss.item() < first
