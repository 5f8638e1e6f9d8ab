"""The contrastive image-text loss of CLIP (Radford et al. 2021)."""

import torch
import torch.nn.functional as F


def clip_contrastive_loss(
    image_embeddings: torch.Tensor,
    text_embeddings: torch.Tensor,
    logit_scale: torch.Tensor,
    positives: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric cross-entropy over a batch's image-text similarity matrix.

    `image_embeddings` and `text_embeddings` are `(batch, dim)` (normalised here), pair `i` being image `i` with text
    `i`; `logit_scale` is the learned log-temperature (the similarities are multiplied by its exponential). The loss
    is the mean of the image-to-text and text-to-image cross-entropies.

    `positives` (`(batch, batch)` bool, optional) marks every pair that matches, when a batch holds several images of
    one caption (eight sevens captioned "the digit seven"): each row's target is then spread evenly over its
    positives instead of pushing a seven away from the other sevens' captions. Without it only the diagonal matches,
    as in the paper.
    """
    if image_embeddings.shape != text_embeddings.shape or image_embeddings.ndim != 2:
        raise ValueError(
            f"image_embeddings {tuple(image_embeddings.shape)} and text_embeddings {tuple(text_embeddings.shape)} "
            "must both be (batch, dim)"
        )
    image_embeddings = F.normalize(image_embeddings, dim=-1)
    text_embeddings = F.normalize(text_embeddings, dim=-1)
    logits_per_image = logit_scale.exp() * image_embeddings @ text_embeddings.t()
    batch = logits_per_image.shape[0]
    if positives is None:
        targets = torch.arange(batch, device=logits_per_image.device)
        return (F.cross_entropy(logits_per_image, targets) + F.cross_entropy(logits_per_image.t(), targets)) / 2
    if positives.shape != (batch, batch) or not positives.diagonal().all():
        raise ValueError(f"positives must be a ({batch}, {batch}) bool matrix whose diagonal is all True")
    positives = positives.to(logits_per_image.dtype)
    image_targets = positives / positives.sum(dim=1, keepdim=True)
    text_targets = positives.t() / positives.t().sum(dim=1, keepdim=True)
    return (F.cross_entropy(logits_per_image, image_targets) + F.cross_entropy(logits_per_image.t(), text_targets)) / 2


def same_caption_positives(keys: list) -> torch.Tensor:
    """The `positives` of [`clip_contrastive_loss`] for a batch whose pairs match when their `keys` are equal (the
    class label behind each caption, or the caption text itself)."""
    codes = {key: index for index, key in enumerate(dict.fromkeys(keys))}
    ids = torch.tensor([codes[key] for key in keys])
    return ids[:, None] == ids[None, :]
