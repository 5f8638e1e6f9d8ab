"""CLIP score (Hessel et al. 2021) of images against their prompts, through torchmetrics' `CLIPScore` with a CLIP
model loaded from any local folder or Hub id (torchmetrics itself only takes a few named checkpoints)."""

import torch

from .feature_extractor import to_signed_unit_range


def load_clip_score(model_name_or_path: str, device: torch.device | str = "cpu"):
    """torchmetrics' `CLIPScore` with the `CLIPModel` and `CLIPProcessor` of `model_name_or_path` (a folder holding
    both, as `save_pretrained` of each writes them); a folder that is not one is a one-line error."""
    from torchmetrics.multimodal.clip_score import CLIPScore
    from transformers import CLIPModel, CLIPProcessor

    def load():
        try:
            return CLIPModel.from_pretrained(model_name_or_path), CLIPProcessor.from_pretrained(model_name_or_path)
        except (OSError, ValueError, KeyError) as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ValueError(
                f"--clip_model_name_or_path {model_name_or_path!r} is not a CLIP model with its processor "
                f"({first_line}): give a folder holding both (e.g. a local copy of openai/clip-vit-base-patch32)"
            ) from None

    return CLIPScore(model_name_or_path=load).to(device)


@torch.no_grad()
def clip_score(metric, images: torch.Tensor, prompts: list[str]) -> float:
    """Update `metric` (from [`load_clip_score`]) with `images` in [-1, 1] (greyscale or RGB) and their `prompts`,
    and return the score so far: 100 x the mean cosine similarity of image and text embeddings, floored at 0."""
    pixels = ((to_signed_unit_range(images).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    if pixels.shape[1] == 1:
        pixels = pixels.expand(-1, 3, -1, -1)
    metric.update(list(pixels.cpu()), prompts)
    return metric.compute().item()
