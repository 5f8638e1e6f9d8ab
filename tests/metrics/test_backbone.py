import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor, BertConfig, BertModel, CLIPModel, Dinov2Config, Dinov2Model

from hfgen.data import BUILTIN_DIGITS, BUILTIN_FACES
from hfgen.metrics import (
    BackboneFeatureExtractor,
    DigitsFeatureExtractor,
    GenerativeMetrics,
    MetricsModelError,
    load_backbone_feature_extractor,
    metric_protocol,
    resolve_feature_extractor,
)


def random_images(num: int, channels: int = 1, size: int = 32, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(num, channels, size, size, generator=generator) * 2 - 1


@pytest.fixture(scope="module")
def dinov2(dinov2_folder) -> BackboneFeatureExtractor:
    return load_backbone_feature_extractor(dinov2_folder)


def test_dinov2_gives_its_pooled_cls_token_in_float64(dinov2, dinov2_folder):
    images = random_images(4)
    features = dinov2(images)
    assert features.shape == (4, 32) and features.dtype == torch.float64 and dinov2.num_features == 32
    # The layer-normed CLS token of the same model on the same pixel values (FD-DINOv2's features).
    model = Dinov2Model.from_pretrained(dinov2_folder).eval()
    with torch.no_grad():
        expected = model(pixel_values=dinov2.preprocess(images)).last_hidden_state[:, 0]
    assert torch.allclose(features, expected.double(), atol=1e-6)


def test_preprocessing_matches_the_image_processor(dinov2, dinov2_folder):
    # uint8 pixels at the backbone's size: the processor's PIL path does no resampling, only rescale and normalise.
    pixels = np.random.default_rng(0).integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
    processor = AutoImageProcessor.from_pretrained(dinov2_folder, backend="pil")
    expected = processor([Image.fromarray(p) for p in pixels], return_tensors="pt")["pixel_values"]
    ours = dinov2.preprocess(torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous())
    assert ours.shape == expected.shape == (3, 3, 32, 32)
    assert torch.allclose(ours, expected.float(), atol=1e-5)


def test_grey_images_are_the_same_as_their_rgb_copies_and_any_size_is_resized(dinov2):
    grey = random_images(3)
    assert torch.allclose(dinov2(grey), dinov2(grey.expand(-1, 3, -1, -1)), atol=1e-10)
    small = dinov2.preprocess(random_images(2, size=16))
    assert small.shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match=r"float images must lie in \[-1, 1\]"):
        dinov2(grey + 2)


def test_protocol_states_the_backbone_size_and_normalisation(dinov2, dinov2_folder):
    protocol = dinov2.protocol
    assert protocol["feature_extractor"] == f"{dinov2_folder} (dinov2, Dinov2Model)"
    assert protocol["input_resolution"] == 32
    assert "32-d" in protocol["features"] and "no Inception Score" in protocol["features"]
    assert "bicubic" in protocol["resize"]
    assert "mean [0.485, 0.456, 0.406], std [0.229, 0.224, 0.225]" in protocol["normalization"]
    assert "preprocessor_config.json" in protocol["normalization"]
    assert protocol["color"] == "grey repeated to 3 channels"


def test_the_extractor_stays_frozen_in_eval_mode(dinov2):
    dinov2.train()
    assert not dinov2.training and not dinov2.model.training
    assert not any(parameter.requires_grad for parameter in dinov2.parameters())


def test_a_full_clip_checkpoint_gives_its_vision_tower(clip_folder):
    extractor = load_backbone_feature_extractor(clip_folder)
    assert type(extractor.model).__name__ == "CLIPVisionModel"
    images = random_images(3, channels=3)
    clip = CLIPModel.from_pretrained(clip_folder).eval()
    with torch.no_grad():
        expected = clip.vision_model(pixel_values=extractor.preprocess(images)).pooler_output
    # Equal to the full model's vision tower: the weights were loaded, not initialised at random.
    assert torch.allclose(extractor(images), expected.double(), atol=1e-6)
    # No preprocessor_config.json: CLIP's processor defaults, at the config's image size.
    assert "mean [0.4815, 0.4578, 0.4082]" in extractor.protocol["normalization"]
    assert "defaults of CLIPImageProcessor" in extractor.protocol["normalization"]
    assert extractor.protocol["input_resolution"] == 32


def test_a_clip_vision_tower_alone_loads(clip_vision_folder):
    extractor = load_backbone_feature_extractor(clip_vision_folder)
    assert extractor(random_images(2)).shape == (2, 32)
    assert "(clip_vision_model, CLIPVisionModel)" in extractor.protocol["feature_extractor"]


def test_features_only_metrics_through_a_backbone(dinov2, dinov2_folder):
    real, fake = random_images(12, seed=0), random_images(12, seed=1)
    metrics = GenerativeMetrics(dinov2, kid_subsets=5)
    metrics.update(real, real=True)
    metrics.update(real, real=False)
    same = metrics.compute()
    assert set(same) == {"fid", "kid_mean", "kid_std", "precision", "recall"}
    assert abs(same["fid"]) < 1e-6 and same["precision"] == same["recall"] == 1.0
    metrics.reset()
    metrics.update(real, real=True)
    metrics.update(fake.clamp(-1, 1) * 0.1, real=False)  # low-contrast images: clearly another distribution
    assert metrics.compute()["fid"] > 1.0
    protocol = metric_protocol(12, 12, metrics, dataset="my_images", split="validation")
    assert protocol["feature_extractor"].startswith(dinov2_folder)
    assert protocol["inception_score"] == "not measured: the feature extractor gives no class logits"


def test_an_id_not_available_offline_fails_in_one_line():
    with pytest.raises(MetricsModelError) as error:
        load_backbone_feature_extractor("facebook/dinov2-small")
    message = str(error.value)
    assert message.startswith("--metrics_model 'facebook/dinov2-small' cannot be loaded")
    assert "download it first" in message and "pass a local folder" in message and "\n" not in message


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(MetricsModelError, match=r"--metrics_model '.*nowhere' is not a folder"):
        load_backbone_feature_extractor(str(tmp_path / "nowhere"))


def test_a_text_model_is_refused(tmp_path):
    BertModel(
        BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37, vocab_size=99)
    ).save_pretrained(tmp_path)
    with pytest.raises(MetricsModelError, match="is a bert model that does not take images"):
        load_backbone_feature_extractor(str(tmp_path))


def test_a_checkpoint_missing_weights_is_refused(tmp_path):
    torch.manual_seed(0)
    Dinov2Model(
        Dinov2Config(
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=37,
            patch_size=8,
            image_size=32,
        )
    ).save_pretrained(tmp_path)
    config = Dinov2Config.from_pretrained(tmp_path)
    config.num_hidden_layers = 2  # the second layer has no weights in the file
    config.save_pretrained(tmp_path)
    with pytest.raises(MetricsModelError, match=r"has no weights for \d+ parameters of Dinov2Model \(e.g. encoder"):
        load_backbone_feature_extractor(str(tmp_path))


def test_resolve_feature_extractor(dinov2_folder):
    extractor, note = resolve_feature_extractor(None, BUILTIN_DIGITS)
    assert isinstance(extractor, DigitsFeatureExtractor) and "digits classifier" in note
    assert isinstance(resolve_feature_extractor(None, None)[0], DigitsFeatureExtractor)
    for dataset_name, train_data_dir, data in (
        (BUILTIN_FACES, None, BUILTIN_FACES),
        (BUILTIN_DIGITS, "my_images", "my_images"),
        ("user/pets", None, "user/pets"),
    ):
        extractor, note = resolve_feature_extractor(None, dataset_name, train_data_dir)
        assert extractor is None
        assert note == (
            f"no feature extractor for FID on {data}: pass --metrics_model facebook/dinov2-small (or a "
            "local folder) to measure FID/KID/precision/recall"
        )
    extractor, note = resolve_feature_extractor(dinov2_folder, BUILTIN_FACES)
    assert isinstance(extractor, BackboneFeatureExtractor) and note.endswith("(32-d features)")
    # An explicit backbone is used on the digits too.
    assert isinstance(resolve_feature_extractor(dinov2_folder, BUILTIN_DIGITS)[0], BackboneFeatureExtractor)
