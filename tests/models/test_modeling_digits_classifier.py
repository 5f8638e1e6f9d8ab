import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel

import hfgen  # noqa: F401  (registers hfgen's models with the Auto classes)
from hfgen.models.digits_classifier import DigitsClassifier, DigitsClassifierConfig


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


def test_config_defaults_describe_the_ten_digits():
    config = DigitsClassifierConfig()
    assert config.model_type == "hfgen_digits_classifier"
    assert config.num_labels == 10
    assert config.id2label == {i: str(i) for i in range(10)}
    assert config.label2id["7"] == 7


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"hidden_channels": []}, "at least one level"),
        ({"layers_per_block": 0}, "layers_per_block"),
        ({"image_size": 30}, "divisible by 4"),
        ({"classifier_dropout": 1.0}, "classifier_dropout"),
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
    loss, logits_with_loss = tiny_model(pixel_values, labels=labels, return_dict=False)
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


def test_save_load_round_trip(tiny_model, tmp_path):
    pixel_values = images()
    tiny_model.save_pretrained(tmp_path)
    reloaded = DigitsClassifier.from_pretrained(tmp_path).eval()
    for field in ("image_size", "hidden_channels", "layers_per_block", "classifier_dropout", "id2label"):
        assert getattr(reloaded.config, field) == getattr(tiny_model.config, field)
    torch.testing.assert_close(reloaded(pixel_values).logits, tiny_model(pixel_values).logits, atol=1e-5, rtol=0)


def test_auto_classes_load_it_after_import_hfgen(tiny_model, tmp_path):
    # hfgen/__init__.py registers the model; registering again here (exist_ok) keeps this test independent of it.
    AutoConfig.register(DigitsClassifierConfig.model_type, DigitsClassifierConfig, exist_ok=True)
    AutoModel.register(DigitsClassifierConfig, DigitsClassifier, exist_ok=True)
    tiny_model.save_pretrained(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), DigitsClassifierConfig)
    reloaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(reloaded, DigitsClassifier)
    pixel_values = images()
    torch.testing.assert_close(reloaded(pixel_values).logits, tiny_model(pixel_values).logits, atol=1e-5, rtol=0)


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
