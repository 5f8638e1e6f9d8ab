"""CLIP processors that work offline: for a CLIP trained from scratch, a byte-level BPE tokenizer written from the
training captions (every byte has a token, so any text still tokenizes) and transformers' PIL image processor, which
needs no torchvision."""

from collections.abc import Iterable

from transformers import CLIPProcessor
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

from ..latent_diffusion.text_encoder import write_caption_tokenizer

# CLIP's own normalisation statistics (those of its pretraining images), which checkpoints expect.
CLIP_IMAGE_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_IMAGE_STD = (0.26862954, 0.26130258, 0.27577711)


def clip_image_processor(image_size: int) -> CLIPImageProcessorPil:
    """Resize the short side to `image_size` (bicubic), crop the centre square, RGB, CLIP's normalisation."""
    return CLIPImageProcessorPil(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        image_mean=list(CLIP_IMAGE_MEAN),
        image_std=list(CLIP_IMAGE_STD),
        do_convert_rgb=True,
    )


def build_clip_processor(texts: Iterable[str], folder: str, image_size: int, max_length: int) -> CLIPProcessor:
    """A `CLIPProcessor` for a CLIP trained from scratch: its tokenizer's vocabulary files are written into `folder`
    from the words of `texts`, its image processor works at `image_size`."""
    tokenizer = write_caption_tokenizer(texts, folder, model_max_length=max_length)
    return CLIPProcessor(image_processor=clip_image_processor(image_size), tokenizer=tokenizer)
