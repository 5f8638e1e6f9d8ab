"""BLIP processors that work offline: for a BLIP trained from scratch, a BERT WordPiece tokenizer written from the
training texts (every letter and digit has a token, so unseen words still tokenize) and transformers' PIL image
processor, which needs no torchvision."""

import os
import string
from collections.abc import Iterable

from tokenizers.pre_tokenizers import BertPreTokenizer
from transformers import BertTokenizer, BlipProcessor
from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

BERT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
"""BERT's special tokens, first in the vocabulary: `[PAD]` is id 0, as BLIP's text config expects by default."""

WORD_PIECE_CHARACTERS = string.ascii_lowercase + string.digits
"""Characters that get a token both as a word start and as a continuation (`##z`), so any word of them tokenizes."""


def write_wordpiece_vocabulary(texts: Iterable[str], folder: str) -> str:
    """Write a WordPiece `vocab.txt` into `folder` and return its path: BERT's special tokens, then every lower-cased
    word and punctuation mark of `texts` (cut as BERT's tokenizer cuts them), then each letter and digit both as a
    word start (`z`) and as a continuation (`##z`), and each ASCII punctuation mark (a word of its own for BERT), so
    that a word the texts lack still tokenizes letter by letter instead of becoming `[UNK]`."""
    pre_tokenizer = BertPreTokenizer()
    words = sorted({word for text in texts for word, _ in pre_tokenizer.pre_tokenize_str(text.lower())})
    pieces = [*WORD_PIECE_CHARACTERS, *(f"##{character}" for character in WORD_PIECE_CHARACTERS), *string.punctuation]
    vocabulary = list(BERT_SPECIAL_TOKENS) + [word for word in words if word not in pieces] + pieces
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "vocab.txt")
    with open(path, "w", encoding="utf-8") as file:
        file.write("".join(f"{token}\n" for token in vocabulary))
    return path


def blip_image_processor(image_size: int) -> BlipImageProcessorPil:
    """Resize to `image_size` x `image_size` (bicubic), RGB, BLIP's normalisation (that of CLIP's pretraining)."""
    return BlipImageProcessorPil(size={"height": image_size, "width": image_size}, do_convert_rgb=True)


def build_blip_processor(texts: Iterable[str], folder: str, image_size: int, max_length: int) -> BlipProcessor:
    """A `BlipProcessor` for a BLIP trained from scratch: its tokenizer's `vocab.txt` is written into `folder` from the
    words of `texts` (see [`write_wordpiece_vocabulary`]) and truncates to `max_length` tokens; its image processor
    works at `image_size`."""
    write_wordpiece_vocabulary(texts, folder)
    # model_max_length must be given: BERT's tokenizer otherwise knows no length to truncate to
    tokenizer = BertTokenizer.from_pretrained(folder, model_max_length=max_length)
    return BlipProcessor(image_processor=blip_image_processor(image_size), tokenizer=tokenizer)


__all__ = ["BERT_SPECIAL_TOKENS", "blip_image_processor", "build_blip_processor", "write_wordpiece_vocabulary"]
