"""OWL-ViT / OWLv2 processors that work offline: for a detector trained from scratch, the byte-level BPE tokenizer of
hfgen's CLIP heads (OWL's text tower is CLIP's) written from the query texts, and transformers' PIL image processors,
which need no torchvision."""

from collections.abc import Iterable

from transformers import Owlv2Processor, OwlViTProcessor
from transformers.models.owlv2.image_processing_pil_owlv2 import Owlv2ImageProcessorPil
from transformers.models.owlvit.image_processing_pil_owlvit import OwlViTImageProcessorPil

from ..latent_diffusion.text_encoder import write_caption_tokenizer


def owl_image_processor(
    image_size: int, model_type: str = "owlvit"
) -> OwlViTImageProcessorPil | Owlv2ImageProcessorPil:
    """OWL-ViT's image processor (resize to `image_size` squared, bicubic) or OWLv2's (pad to a square at the bottom
    and right, then resize); both RGB with CLIP's normalisation, as OWL checkpoints expect."""
    size = {"height": image_size, "width": image_size}
    if model_type == "owlv2":
        return Owlv2ImageProcessorPil(size=size)
    return OwlViTImageProcessorPil(size=size, crop_size=size)


def build_owl_processor(
    texts: Iterable[str], folder: str, image_size: int, max_length: int, model_type: str = "owlvit"
) -> OwlViTProcessor | Owlv2Processor:
    """An `OwlViTProcessor` (or `Owlv2Processor` for `model_type="owlv2"`) for a detector trained from scratch: its
    tokenizer's vocabulary files are written into `folder` from the words of `texts` (the query texts), its image
    processor works at `image_size`."""
    if model_type not in ("owlvit", "owlv2"):
        raise ValueError(f"model_type must be 'owlvit' or 'owlv2', got {model_type!r}")
    tokenizer = write_caption_tokenizer(texts, folder, model_max_length=max_length)
    processor_class = Owlv2Processor if model_type == "owlv2" else OwlViTProcessor
    return processor_class(image_processor=owl_image_processor(image_size, model_type), tokenizer=tokenizer)


__all__ = ["build_owl_processor", "owl_image_processor"]
