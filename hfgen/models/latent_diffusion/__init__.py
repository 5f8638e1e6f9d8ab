from .text_encoder import build_caption_text_encoder, load_clip_text_encoder, write_caption_tokenizer

__all__ = ["build_caption_text_encoder", "load_clip_text_encoder", "write_caption_tokenizer"]
