"""The tokenizer written from captions and the small CLIP text encoder trained from scratch."""

import pytest
import torch
from transformers import CLIPTokenizer

from hfgen.models.latent_diffusion import build_caption_text_encoder, load_clip_text_encoder, write_caption_tokenizer


def test_caption_words_are_single_tokens_and_any_text_tokenizes(tmp_path):
    tokenizer = write_caption_tokenizer(["a", "handwritten", "digit", "Seven"], tmp_path, model_max_length=12)
    ids = tokenizer("A handwritten digit seven").input_ids
    assert tokenizer.convert_ids_to_tokens(ids) == [
        "<|startoftext|>",
        "a</w>",
        "handwritten</w>",
        "digit</w>",
        "seven</w>",
        "<|endoftext|>",
    ]
    unknown = tokenizer("zebra!?").input_ids  # words never seen fall back to byte pieces, never to an unknown id
    assert len(unknown) > 3 and max(unknown) < len(tokenizer)
    padded = tokenizer("a digit", padding="max_length", max_length=12).input_ids
    assert len(padded) == 12 and padded[-1] == tokenizer.pad_token_id == tokenizer.eos_token_id
    reloaded = CLIPTokenizer.from_pretrained(tmp_path, model_max_length=12)
    assert reloaded("a handwritten digit seven").input_ids == ids


def test_text_encoder_fits_the_tokenizer_and_round_trips(tmp_path):
    tokenizer = write_caption_tokenizer(["the", "digit", "two"], tmp_path / "tokenizer", model_max_length=8)
    encoder = build_caption_text_encoder(tokenizer, hidden_size=32, num_layers=1).eval()
    assert encoder.config.vocab_size == len(tokenizer) and encoder.config.max_position_embeddings == 8
    ids = tokenizer(["the digit two", ""], padding="max_length", max_length=8, return_tensors="pt").input_ids
    hidden = encoder(ids)[0]
    assert hidden.shape == (2, 8, 32) and not torch.allclose(hidden[0], hidden[1])
    encoder.save_pretrained(tmp_path / "encoder")
    reloaded = type(encoder).from_pretrained(tmp_path / "encoder").eval()
    assert torch.equal(reloaded(ids)[0], hidden)


@pytest.mark.parametrize("layout", ["one folder", "pipeline folder"])
def test_a_given_text_encoder_loads_from_its_folder_or_a_pipeline_folder(tmp_path, layout):
    tokenizer = write_caption_tokenizer(["a", "digit"], tmp_path / "written", model_max_length=8)
    encoder = build_caption_text_encoder(tokenizer, hidden_size=16, num_layers=1).eval()
    if layout == "one folder":
        encoder.save_pretrained(tmp_path / "given")
        tokenizer.save_pretrained(tmp_path / "given")
    else:
        encoder.save_pretrained(tmp_path / "given" / "text_encoder")
        tokenizer.save_pretrained(tmp_path / "given" / "tokenizer")
    loaded_encoder, loaded_tokenizer = load_clip_text_encoder(str(tmp_path / "given"))
    ids = loaded_tokenizer(["a digit"], return_tensors="pt").input_ids
    assert ids.tolist() == tokenizer(["a digit"], return_tensors="pt").input_ids.tolist()
    assert torch.equal(loaded_encoder.eval()(ids)[0], encoder(ids)[0])


def test_a_folder_without_a_text_encoder_is_an_error_naming_the_flag(tmp_path):
    with pytest.raises(ValueError, match=r"^--text_encoder_name_or_path '.*empty' holds no CLIP text encoder"):
        load_clip_text_encoder(str(tmp_path / "empty"))
