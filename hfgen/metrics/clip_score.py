"""CLIP score (Hessel et al. 2021): how well images match their prompts, 100 x the cosine similarity of CLIP's image
and text embeddings (floored at 0), with a CLIP model from any local folder or Hub id.

Written here rather than taken from torchmetrics: its `CLIPScore` accepts only a few named checkpoints (or a
loader), and with transformers 5, whose `get_image_features` returns a model output instead of a tensor, it fails.
"""

import torch

from .feature_extractor import to_signed_unit_range


class CLIPScorer(torch.nn.Module):
    """Per-image CLIP scores of images in [-1, 1] (greyscale or RGB) against their prompts; see [`load_clip_score`]."""

    def __init__(self, model, processor):
        super().__init__()
        self.model = model.eval()
        self.processor = processor

    @staticmethod
    def _embedding(output) -> torch.Tensor:
        # transformers 5 returns a model output whose pooled projection is `pooler_output`; 4 returned the tensor
        return output if isinstance(output, torch.Tensor) else output.pooler_output

    @torch.no_grad()
    def forward(self, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        if len(prompts) != images.shape[0]:
            raise ValueError(f"got {images.shape[0]} images and {len(prompts)} prompts: give one prompt per image")
        pixels = ((to_signed_unit_range(images).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        if pixels.shape[1] == 1:
            pixels = pixels.expand(-1, 3, -1, -1)
        # prompts longer than CLIP's context are cut, as Stable Diffusion's pipelines cut them
        max_length = self.model.config.text_config.max_position_embeddings
        inputs = self.processor(
            text=prompts,
            images=list(pixels.cpu()),
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=max_length,
        )
        device = next(self.model.parameters()).device
        image_embeddings = self._embedding(
            self.model.get_image_features(pixel_values=inputs["pixel_values"].to(device))
        )
        text_embeddings = self._embedding(
            self.model.get_text_features(
                input_ids=inputs["input_ids"].to(device), attention_mask=inputs["attention_mask"].to(device)
            )
        )
        cosine = torch.nn.functional.cosine_similarity(image_embeddings, text_embeddings, dim=-1)
        return (100 * cosine).clamp(min=0)


def load_clip_score(model_name_or_path: str, device: torch.device | str = "cpu") -> CLIPScorer:
    """A [`CLIPScorer`] with the `CLIPModel` and `CLIPProcessor` of `model_name_or_path` (a folder holding both, as
    `save_pretrained` of each writes them); a folder that is not one is a one-line error."""
    from transformers import CLIPModel, CLIPProcessor

    try:
        model = CLIPModel.from_pretrained(model_name_or_path)
        processor = CLIPProcessor.from_pretrained(model_name_or_path)
    except (OSError, ValueError, KeyError, TypeError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"--clip_model_name_or_path {model_name_or_path!r} is not a CLIP model with its processor "
            f"({first_line}): give a folder holding both (e.g. a local copy of openai/clip-vit-base-patch32)"
        ) from None
    return CLIPScorer(model, processor).to(device)


def clip_score(scorer: CLIPScorer, images: torch.Tensor, prompts: list[str]) -> float:
    """The mean CLIP score of `images` (in [-1, 1]) against `prompts`, one per image."""
    return scorer(images, prompts).mean().item()
