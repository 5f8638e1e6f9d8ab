"""hfgen's head on BLIP: the shared model tests, fixed values, caption scoring against a hand computation and
BLIP's own loss, the decoder inputs (padding masked out of the loss), and the processor written offline."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from peft import LoraConfig
from transformers import AutoModel, BlipConfig, BlipForConditionalGeneration, BlipProcessor

import hfgen
from hfgen.models.blip_heads import (
    IGNORE_INDEX,
    BLIPCaptionScorer,
    BLIPCaptionScorerConfig,
    blip_config_for,
    blip_decoder_inputs,
    build_blip_processor,
    caption_log_likelihoods,
    write_wordpiece_vocabulary,
)
from hfgen.testing.model_tester import ModelTesterMixin

LORA_TARGETS = ["qkv", "projection", "query", "key", "value"]
CAPTIONS = ["a handwritten digit seven", "the digit one", "a picture of the number two"]


def tiny_blip_config() -> BlipConfig:
    """Two-layer towers of width 32; 16 px images in 8 px patches; captions of at most 16 tokens of a vocabulary of
    99, [CLS] = 2, [SEP] = 3, [PAD] = 0. Weights drawn with std 0.2 rather than 0.02, so that the image moves the
    scores of a freshly built model well above the tests' tolerances."""
    tower = dict(
        hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, initializer_range=0.2
    )
    text = dict(tower, vocab_size=99, max_position_embeddings=16, bos_token_id=2, eos_token_id=3, sep_token_id=3)
    return BlipConfig(
        text_config=dict(text, pad_token_id=0),
        vision_config=dict(tower, image_size=16, patch_size=8),
        initializer_range=0.2,
    )


def images(batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def caption_ids() -> tuple[torch.Tensor, torch.Tensor]:
    """Three captions of 5, 4 and 2 tokens between [CLS] = 2 and [SEP] = 3, padded with 0."""
    input_ids = torch.tensor(
        [[2, 11, 12, 13, 14, 15, 3], [2, 16, 17, 18, 19, 3, 0], [2, 20, 21, 3, 0, 0, 0]], dtype=torch.long
    )
    return input_ids, (input_ids != 0).long()


@pytest.fixture(scope="module")
def processor(tmp_path_factory) -> BlipProcessor:
    return build_blip_processor(CAPTIONS, tmp_path_factory.mktemp("vocab"), image_size=16, max_length=16)


@pytest.fixture(scope="module")
def blip(processor) -> BlipForConditionalGeneration:
    """A tiny BLIP captioner whose vocabulary and special tokens are the processor's."""
    torch.manual_seed(0)
    return BlipForConditionalGeneration(blip_config_for(processor.tokenizer, 16, tiny_blip_config())).eval()


class TestBLIPCaptionScorer(ModelTesterMixin):
    model_class = BLIPCaptionScorer
    output_name = "logits"

    def get_config(self):
        return BLIPCaptionScorerConfig(blip_config=tiny_blip_config().to_dict())

    def get_inputs(self, batch_size: int = 2) -> dict:
        input_ids, attention_mask = caption_ids()
        return {"pixel_values": images(batch_size), "input_ids": input_ids, "attention_mask": attention_mask}

    def lora_config(self):
        return LoraConfig(r=2, lora_alpha=2, target_modules=LORA_TARGETS)

    def expected_buffers(self, model):
        return {}


# Generated once from this code (torch 2.13, CPU) with the seeded tiny model above; regenerate only for an intended
# change.
EXPECTED_SCORES = [-5.155751, -5.1705, -4.675284, -5.375315, -5.458055, -5.140144]


def test_fixed_values_of_the_scores():
    tester = TestBLIPCaptionScorer()
    with torch.no_grad():
        logits = tester.build_model()(**tester.get_inputs()).logits
    assert logits.shape == (2, 3)
    assert torch.allclose(logits.flatten(), torch.tensor(EXPECTED_SCORES), atol=1e-4)


def test_scores_are_the_captions_mean_token_log_likelihoods_by_hand():
    scorer = TestBLIPCaptionScorer().build_model()
    input_ids, attention_mask = caption_ids()
    pixel_values = images(2)
    with torch.no_grad():
        scores = scorer(pixel_values, input_ids, attention_mask).logits
        for image in range(2):
            for caption in range(3):
                # the caption alone, unpadded, its first token the decoder's start token
                ids = input_ids[caption][attention_mask[caption].bool()][None].clone()
                ids[0, 0] = scorer.config.blip_config.text_config.bos_token_id
                logits = scorer.blip(pixel_values=pixel_values[image : image + 1], input_ids=ids).logits
                log_probs = logits[0, :-1].log_softmax(dim=-1).gather(1, ids[0, 1:, None])
                assert torch.allclose(scores[image, caption], log_probs.mean(), atol=1e-5)
                # which is minus BLIP's own loss on that caption
                loss = scorer.blip(pixel_values=pixel_values[image : image + 1], input_ids=ids, labels=ids).loss
                assert torch.allclose(scores[image, caption], -loss, atol=1e-5)


def test_summed_scores_per_image_captions_and_the_loss():
    tester = TestBLIPCaptionScorer()
    scorer = tester.build_model()
    inputs = tester.get_inputs()
    input_ids, attention_mask = inputs["input_ids"], inputs["attention_mask"]
    with torch.no_grad():
        mean = scorer(**inputs).logits
        # captions given per image give the same scores as shared ones
        per_image = scorer(inputs["pixel_values"], input_ids.expand(2, -1, -1), attention_mask.expand(2, -1, -1))
        assert torch.allclose(per_image.logits, mean, atol=1e-6)
        scorer.config.length_normalize = False
        summed = scorer(**inputs).logits
        # 6, 5 and 3 tokens follow the start token (the end token counts, the padding does not)
        assert torch.allclose(summed, mean * torch.tensor([6.0, 5.0, 3.0]), atol=1e-5)
        labels = torch.tensor([2, 0])
        loss = scorer(**inputs, labels=labels).loss
    assert torch.allclose(loss, F.cross_entropy(summed, labels))
    with pytest.raises(ValueError, match=r"input_ids must be \(num_captions, length\) or \(2, num_captions, length\)"):
        scorer(inputs["pixel_values"], input_ids[None].expand(3, -1, -1))


def test_decoder_inputs_start_with_bos_and_mask_padding_out_of_the_loss(blip, processor):
    texts = ["the digit one", "a picture of the number two"]
    inputs = processor.tokenizer(texts, padding=True, return_tensors="pt")
    bos = blip.config.text_config.bos_token_id
    decoder_input_ids, labels = blip_decoder_inputs(inputs.input_ids, inputs.attention_mask, bos)
    assert (decoder_input_ids[:, 0] == bos).all() and torch.equal(decoder_input_ids[:, 1:], inputs.input_ids[:, 1:])
    padding = inputs.attention_mask == 0
    assert padding.any() and (labels[padding] == IGNORE_INDEX).all()
    assert torch.equal(labels[~padding], decoder_input_ids[~padding])
    pixel_values = images(2)
    with torch.no_grad():
        padded = blip(pixel_values, decoder_input_ids, inputs.attention_mask, labels=labels).loss
        # each caption alone, without padding: the token-weighted mean of their losses is the padded batch's loss
        losses, counts = [], []
        for index, text in enumerate(texts):
            alone = processor.tokenizer([text], return_tensors="pt")
            ids, alone_labels = blip_decoder_inputs(alone.input_ids, alone.attention_mask, bos)
            losses.append(blip(pixel_values[index : index + 1], ids, alone.attention_mask, labels=alone_labels).loss)
            counts.append(ids.shape[1] - 1)
        unpadded = sum(loss * count for loss, count in zip(losses, counts, strict=True)) / sum(counts)
        # labels left at the pad id would make BLIP learn to predict padding after the end token
        unmasked = blip(pixel_values, decoder_input_ids, inputs.attention_mask, labels=decoder_input_ids).loss
    assert torch.allclose(padded, unpadded, atol=1e-5)
    assert not torch.allclose(padded, unmasked, atol=1e-3)
    with pytest.raises(ValueError, match="must both be"):
        blip_decoder_inputs(inputs.input_ids, inputs.attention_mask[:, :-1], bos)


def test_from_blip_scores_with_the_blip_model_and_auto_model_loads_it(blip, processor, tmp_path):
    scorer = BLIPCaptionScorer.from_blip(blip).eval()
    prompts = processor.tokenizer(CAPTIONS, padding=True, return_tensors="pt")
    pixel_values = images(3)
    with torch.no_grad():
        expected = caption_log_likelihoods(blip, pixel_values, prompts.input_ids, prompts.attention_mask)
        scores = scorer(pixel_values, prompts.input_ids, prompts.attention_mask).logits
    assert scores.shape == (3, 3) and torch.allclose(scores, expected, atol=1e-6)
    scorer.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path)
    assert type(loaded) is BLIPCaptionScorer
    with torch.no_grad():
        assert torch.allclose(loaded(pixel_values, prompts.input_ids, prompts.attention_mask).logits, scores)
    assert hfgen.BLIPCaptionScorerConfig.model_type.startswith("hfgen_")


def test_blip_config_for_puts_the_special_tokens_inside_the_vocabulary(blip, processor):
    tokenizer = processor.tokenizer
    text_config = blip.config.text_config
    assert text_config.vocab_size == len(tokenizer) and text_config.max_position_embeddings == 16
    assert (text_config.bos_token_id, text_config.sep_token_id, text_config.pad_token_id) == (
        tokenizer.cls_token_id,
        tokenizer.sep_token_id,
        tokenizer.pad_token_id,
    )
    # generation starts from [CLS] and stops at [SEP] (BLIP's default ids would index outside the embedding)
    with torch.no_grad():
        ids = blip.generate(pixel_values=images(2), num_beams=2, max_new_tokens=5)
    assert ids.shape[0] == 2 and (ids[:, 0] == tokenizer.cls_token_id).all() and ids.max() < len(tokenizer)
    with pytest.raises(ValueError, match="not a multiple of the BLIP config's patch_size 8"):
        blip_config_for(tokenizer, 20, tiny_blip_config())
    with pytest.raises(ValueError, match=r"text_config.sep_token_id 102 is not a token id of the 99-token"):
        config = tiny_blip_config()
        config.text_config.sep_token_id = 102
        BLIPCaptionScorerConfig(blip_config=config.to_dict())


def test_processor_written_offline_round_trips(processor, tmp_path):
    vocabulary = Path(write_wordpiece_vocabulary(CAPTIONS, tmp_path / "vocab")).read_text().split()
    assert vocabulary[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert {"handwritten", "z", "##z", "7", "##7", "!"} <= set(vocabulary)
    processor.save_pretrained(tmp_path / "processor")
    loaded = BlipProcessor.from_pretrained(tmp_path / "processor")
    tokenizer = loaded.tokenizer
    assert tokenizer.model_max_length == 16
    # a caption word is one token; an unseen word is spelt letter by letter, never [UNK]
    assert tokenizer.convert_ids_to_tokens(tokenizer("the digit seven").input_ids) == [
        "[CLS]",
        "the",
        "digit",
        "seven",
        "[SEP]",
    ]
    zebra = tokenizer("A Zebra!").input_ids
    assert tokenizer.unk_token_id not in zebra and tokenizer.decode(zebra, skip_special_tokens=True) == "a zebra!"
    from PIL import Image

    inputs = loaded(images=Image.new("L", (20, 24), 128), text=["the digit one"], return_tensors="pt")
    assert inputs["pixel_values"].shape == (1, 3, 16, 16) and "token_type_ids" not in inputs
