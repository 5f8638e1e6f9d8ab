"""hfgen's heads on CLIP: the shared model tests, fixed values, zero-shot and linear-probe behaviour, the processor
written offline, and the contrastive loss against transformers' own and a hand computation."""

import math

import pytest
import torch
import torch.nn.functional as F
from peft import LoraConfig
from transformers import AutoModelForImageClassification, CLIPConfig, CLIPModel, CLIPProcessor

import hfgen
from hfgen.data.captions import LabelCaptions
from hfgen.losses.contrastive import clip_contrastive_loss, same_caption_positives
from hfgen.models.clip_heads import (
    CLIPLinearProbe,
    CLIPLinearProbeConfig,
    CLIPZeroShotClassifier,
    CLIPZeroShotClassifierConfig,
    build_clip_processor,
    prompt_ensemble_embeddings,
)
from hfgen.testing.model_tester import ModelTesterMixin

CLASS_NAMES = ["zero", "one", "two"]
TEMPLATES = ["the digit {}", "a handwritten digit {}"]
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


def tiny_clip_config(vocab_size: int = 99, bos: int = 1, eos: int = 2, pad: int = 2) -> CLIPConfig:
    """Two-layer towers of width 32; 16 px images in 8 px patches; 16-dimensional projections."""
    tower = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4)
    text = dict(tower, vocab_size=vocab_size, max_position_embeddings=16, bos_token_id=bos, eos_token_id=eos)
    return CLIPConfig(
        text_config=dict(text, pad_token_id=pad),
        vision_config=dict(tower, image_size=16, patch_size=8),
        projection_dim=16,
    )


def images(batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, 16, 16, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def processor(tmp_path_factory) -> CLIPProcessor:
    captions = LabelCaptions(["0", "1", "2"])
    texts = [template.format(name) for template in TEMPLATES for name in captions.phrases]
    return build_clip_processor(texts, tmp_path_factory.mktemp("tokenizer"), image_size=16, max_length=16)


@pytest.fixture(scope="module")
def clip(processor) -> CLIPModel:
    tokenizer = processor.tokenizer
    torch.manual_seed(0)
    config = tiny_clip_config(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
    return CLIPModel(config).eval()


class TestCLIPZeroShotClassifier(ModelTesterMixin):
    model_class = CLIPZeroShotClassifier
    output_name = "logits"

    def get_config(self):
        return CLIPZeroShotClassifierConfig(
            clip_config=tiny_clip_config().to_dict(), class_names=CLASS_NAMES, templates=TEMPLATES
        )

    def get_inputs(self, batch_size: int = 2) -> dict:
        return {"pixel_values": images(batch_size)}

    def lora_config(self):
        return LoraConfig(r=2, lora_alpha=2, target_modules=LORA_TARGETS)

    def expected_buffers(self, model):
        return {"class_embeddings": None}  # random until set_classes computes them


class TestCLIPLinearProbe(ModelTesterMixin):
    model_class = CLIPLinearProbe
    output_name = "logits"

    def get_config(self):
        vision = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4)
        return CLIPLinearProbeConfig(
            vision_config=dict(vision, image_size=16, patch_size=8, projection_dim=16), class_names=CLASS_NAMES
        )

    def get_inputs(self, batch_size: int = 2) -> dict:
        return {"pixel_values": images(batch_size)}

    def lora_config(self):
        return LoraConfig(r=2, lora_alpha=2, target_modules=LORA_TARGETS)

    def expected_buffers(self, model):
        return {}


# Generated once from this code (torch 2.13, CPU) with the seeded tiny models above; regenerate only for an intended
# change.
EXPECTED_ZERO_SHOT_LOGITS = [-3.167732, 3.596298, 2.177866, -2.300528, 0.94074, 1.641428]
EXPECTED_PROBE_LOGITS = [0.011851, 0.00739, 0.007025, 0.005969, 0.006718, 0.000318]


def test_fixed_values_of_the_logits():
    for tester, expected in (
        (TestCLIPZeroShotClassifier(), EXPECTED_ZERO_SHOT_LOGITS),
        (TestCLIPLinearProbe(), EXPECTED_PROBE_LOGITS),
    ):
        with torch.no_grad():
            logits = tester.build_model()(**tester.get_inputs()).logits
        assert torch.allclose(logits.flatten(), torch.tensor(expected), atol=1e-4)


def test_zero_shot_classifier_from_clip_classifies_as_clip_compares(clip, processor, tmp_path):
    classifier = CLIPZeroShotClassifier.from_clip(clip, processor.tokenizer, CLASS_NAMES, TEMPLATES).eval()
    assert classifier.config.id2label == {0: "zero", 1: "one", 2: "two"}
    pixel_values = images(4)
    with torch.no_grad():
        logits = classifier(pixel_values).logits
        # by hand: each class's prompts through CLIP, their normalised mean, the cosine with each image
        prompts = processor.tokenizer(
            [template.format(name) for name in CLASS_NAMES for template in TEMPLATES],
            padding=True,
            return_tensors="pt",
        )
        text = F.normalize(clip.get_text_features(**prompts).pooler_output, dim=-1).view(3, 2, -1).mean(dim=1)
        image = F.normalize(clip.get_image_features(pixel_values=pixel_values).pooler_output, dim=-1)
        expected = clip.logit_scale.exp() * image @ F.normalize(text, dim=-1).t()
    assert torch.allclose(logits, expected, atol=1e-5)
    # the class embeddings are saved with the weights: the loaded classifier needs no tokenizer
    classifier.save_pretrained(tmp_path)
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path)
    assert type(loaded) is CLIPZeroShotClassifier and loaded.config.templates == TEMPLATES
    with torch.no_grad():
        assert torch.allclose(loaded(pixel_values).logits, logits, atol=1e-5)


def test_set_classes_changes_the_classes(clip, processor):
    classifier = CLIPZeroShotClassifier.from_clip(clip, processor.tokenizer, CLASS_NAMES, TEMPLATES).eval()
    classifier.set_classes(processor.tokenizer, ["two", "zero"])
    assert classifier.config.id2label == {0: "two", 1: "zero"}
    assert classifier.class_embeddings.shape == (2, 16)
    expected = prompt_ensemble_embeddings(clip, processor.tokenizer, ["two", "zero"], TEMPLATES)
    assert torch.allclose(classifier.class_embeddings, expected)
    with torch.no_grad():
        assert classifier(images(3)).logits.shape == (3, 2)


def test_linear_probe_fits_separable_embeddings_and_keeps_the_tower_frozen(clip):
    probe = CLIPLinearProbe.from_clip(clip, class_names=CLASS_NAMES)
    assert not any(parameter.requires_grad for parameter in probe.vision.parameters())
    with torch.no_grad():
        expected = F.normalize(clip.get_image_features(pixel_values=images(2)).pooler_output, dim=-1)
    assert torch.allclose(probe.get_image_features(images(2)), expected, atol=1e-6)
    # three well-separated clusters of embeddings: the fitted probe must classify them all
    generator = torch.Generator().manual_seed(0)
    centres = F.normalize(torch.randn(3, 16, generator=generator), dim=-1)
    labels = torch.arange(3).repeat(20)
    embeddings = F.normalize(centres[labels] + 0.05 * torch.randn(60, 16, generator=generator), dim=-1)
    loss = probe.fit(embeddings, labels)
    assert loss < 0.5
    assert torch.equal(probe.classifier(embeddings).argmax(dim=1), labels)
    with pytest.raises(ValueError, match=r"labels must be \(60,\)"):
        probe.fit(embeddings, labels + 3)
    with pytest.raises(ValueError, match=r"embeddings must be \(n, 16\)"):
        probe.fit(embeddings[:, :8], labels)


def test_configs_need_their_classes_and_valid_templates():
    with pytest.raises(ValueError, match="needs its classes"):
        CLIPLinearProbeConfig()
    with pytest.raises(ValueError, match="each once"):
        CLIPZeroShotClassifierConfig(class_names=["a", "a"])
    with pytest.raises(ValueError, match="exactly one {}"):
        CLIPZeroShotClassifierConfig(class_names=["a"], templates=["a photo"])


def test_processor_written_offline_round_trips(processor, tmp_path):
    processor.save_pretrained(tmp_path)
    loaded = CLIPProcessor.from_pretrained(tmp_path)
    from PIL import Image

    image = Image.new("L", (20, 24), 128)  # greyscale and not square: converted to RGB and cropped
    inputs = loaded(
        text=["a handwritten digit two", "an unseen word"], images=image, return_tensors="pt", padding=True
    )
    assert inputs["pixel_values"].shape == (1, 3, 16, 16)
    # every caption word is one token between the start and end tokens; unseen words still tokenize
    assert inputs["input_ids"][0].tolist()[:6] == processor.tokenizer("a handwritten digit two").input_ids
    assert len(processor.tokenizer("a handwritten digit two").input_ids) == 6


def test_contrastive_loss_matches_transformers_clip_and_a_hand_computation(clip, processor):
    inputs = processor.tokenizer(
        ["the digit one", "the digit two", "a handwritten digit zero"], padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        output = clip(pixel_values=images(3), **inputs, return_loss=True)
    ours = clip_contrastive_loss(output.image_embeds, output.text_embeds, clip.logit_scale)
    assert torch.allclose(ours, output.loss, atol=1e-6)
    # by hand on 2 pairs with orthogonal embeddings and scale e^0 = 1: logits [[1, 0], [0, 1]]
    identity = torch.eye(2)
    hand = -math.log(math.e / (math.e + 1))
    assert math.isclose(clip_contrastive_loss(identity, identity, torch.tensor(0.0)).item(), hand, rel_tol=1e-6)
    # with both pairs marked as matching each other, every target is (1/2, 1/2)
    positives = torch.ones(2, 2, dtype=torch.bool)
    soft = -(0.5 * math.log(math.e / (math.e + 1)) + 0.5 * math.log(1 / (math.e + 1)))
    assert math.isclose(
        clip_contrastive_loss(identity, identity, torch.tensor(0.0), positives).item(), soft, rel_tol=1e-6
    )


def test_same_caption_positives_and_loss_errors():
    assert same_caption_positives([3, 1, 3]).tolist() == [
        [True, False, True],
        [False, True, False],
        [True, False, True],
    ]
    with pytest.raises(ValueError, match=r"must both be \(batch, dim\)"):
        clip_contrastive_loss(torch.ones(2, 4), torch.ones(3, 4), torch.tensor(0.0))
    with pytest.raises(ValueError, match="diagonal is all True"):
        clip_contrastive_loss(torch.ones(2, 4), torch.ones(2, 4), torch.tensor(0.0), torch.zeros(2, 2, dtype=bool))


def test_auto_classes_know_the_heads():
    assert hfgen.CLIPZeroShotClassifierConfig.model_type.startswith("hfgen_")
    assert hfgen.CLIPLinearProbeConfig.model_type.startswith("hfgen_")
