"""A text encoder for latent diffusion trained from scratch, when no pretrained CLIP text encoder folder is at hand:
a CLIP tokenizer whose vocabulary the script writes from its captions, and a small `CLIPTextModel` (transformers')
trained jointly with the UNet.

The tokenizer is a real byte-level BPE `CLIPTokenizer`: every byte has a token, so any prompt tokenizes (words the
captions never used fall back to smaller pieces), and each caption word gets merges that make it one token (unless
an earlier word's merges split it first: then it takes two or three).
"""

import json
import os
import re
from collections.abc import Iterable

from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

START_TOKEN, END_TOKEN = "<|startoftext|>", "<|endoftext|>"
# How CLIP's tokenizer cuts lower-cased text into words before BPE: contractions, runs of letters, single digits,
# runs of other symbols.
CLIP_WORDS = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|[^\s\w]+|_")


def _byte_characters() -> list[str]:
    """The printable stand-in character of each of the 256 bytes, as GPT-2 and CLIP's byte-level BPE map them (bytes
    that print as themselves keep their character; the others are moved past 255)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    characters, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            characters[byte] = chr(byte)
        else:
            characters[byte] = chr(256 + extra)
            extra += 1
    return [characters[byte] for byte in range(256)]


def write_caption_tokenizer(texts: Iterable[str], folder: str, model_max_length: int) -> CLIPTokenizer:
    """Write `vocab.json` and `merges.txt` of a byte-level BPE vocabulary holding every byte and each word of `texts`
    (cut as CLIP's tokenizer cuts lower-cased text) into `folder`, and load it as a `CLIPTokenizer`."""
    byte_of = _byte_characters()
    vocabulary = byte_of + [character + "</w>" for character in byte_of]
    merges = []
    for word in sorted({word for text in texts for word in CLIP_WORDS.findall(text.lower())}):
        symbols = [byte_of[byte] for byte in word.encode("utf-8")]
        symbols[-1] += "</w>"
        merged = symbols[0]
        for symbol in symbols[1:]:
            if (merged, symbol) not in merges:
                merges.append((merged, symbol))
            merged += symbol
            if merged not in vocabulary:
                vocabulary.append(merged)
    vocabulary += [START_TOKEN, END_TOKEN]
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as file:
        json.dump({token: index for index, token in enumerate(vocabulary)}, file, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as file:
        file.write("#version: 0.2\n" + "".join(f"{first} {second}\n" for first, second in merges))
    # model_max_length must be given: without it the pipelines' padding to max_length overflows
    return CLIPTokenizer.from_pretrained(folder, model_max_length=model_max_length)


def build_caption_text_encoder(tokenizer: CLIPTokenizer, hidden_size: int = 64, num_layers: int = 2) -> CLIPTextModel:
    """A small CLIP text transformer for `tokenizer`'s vocabulary and length, with its special tokens inside the
    vocabulary (the defaults of `CLIPTextConfig` name ids of the full 49k vocabulary)."""
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=4 * hidden_size,
        projection_dim=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=max(1, hidden_size // 16),
        max_position_embeddings=tokenizer.model_max_length,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModel(config)


def load_clip_text_encoder(
    folder: str, flag: str = "--text_encoder_name_or_path"
) -> tuple[CLIPTextModel, CLIPTokenizer]:
    """A CLIP text encoder and its tokenizer from a local folder holding both, or from a pipeline folder with
    `text_encoder/` and `tokenizer/`; a folder with neither is a one-line error naming `flag`."""
    for text_folder, tokenizer_folder in (
        (folder, folder),
        (os.path.join(folder, "text_encoder"), os.path.join(folder, "tokenizer")),
    ):
        if os.path.isfile(os.path.join(text_folder, "config.json")):
            return CLIPTextModel.from_pretrained(text_folder), CLIPTokenizer.from_pretrained(tokenizer_folder)
    raise ValueError(f"{flag} {folder!r} holds no CLIP text encoder (config.json, there or in text_encoder/)")
