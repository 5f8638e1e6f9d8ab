"""Image-text retrieval and zero-shot classification: how well a vision-language model's scores rank the right
pairs first.

Both metrics read a matrix of scores (cosine similarities, logits) and never the embeddings, so they serve CLIP,
BLIP, SigLIP or any other dual encoder alike.

Ties are resolved pessimistically: a correct candidate that scores exactly as high as a wrong one is ranked below
it. Ranking by a stable sort would instead favour whichever candidate comes first in the matrix, so a model whose
scores are all equal (a collapsed encoder) would reach perfect recall on the diagonal of a one-to-one benchmark.
Counting ties against the model makes every score independent of the order of rows and columns.
"""

from collections.abc import Sequence

import torch


def _check_positives(similarity: torch.Tensor, positives: torch.Tensor | None) -> torch.Tensor:
    if similarity.ndim != 2:
        raise ValueError(f"similarity must have shape (num_images, num_texts), got {tuple(similarity.shape)}")
    if not torch.isfinite(similarity).all():
        raise ValueError("similarity contains NaN or infinite scores")
    if positives is None:
        if similarity.shape[0] != similarity.shape[1]:
            raise ValueError(
                f"positives=None means one text per image (the diagonal) and needs a square similarity, "
                f"got {tuple(similarity.shape)}"
            )
        return torch.eye(similarity.shape[0], dtype=torch.bool, device=similarity.device)
    if positives.shape != similarity.shape:
        raise ValueError(
            f"positives must have the shape of similarity {tuple(similarity.shape)}, got {tuple(positives.shape)}"
        )
    if positives.dtype != torch.bool:
        raise ValueError(f"positives must be a bool tensor, got {positives.dtype}")
    return positives


def _hits_at_k(scores: torch.Tensor, positives: torch.Tensor, ks: Sequence[int]) -> dict[int, float]:
    """Share of rows with a positive whose `k` best-scoring columns include one, ties counted against the row."""
    has_positive = positives.any(dim=1)
    scores, positives = scores[has_positive], positives[has_positive]
    best_positive = scores.masked_fill(~positives, float("-inf")).amax(dim=1, keepdim=True)
    # A positive is among the top k exactly when fewer than k negatives score at least as high as the best positive.
    negatives_ahead = ((scores >= best_positive) & ~positives).sum(dim=1)
    num_candidates = scores.shape[1]
    return {k: (negatives_ahead < min(k, num_candidates)).double().mean().item() for k in ks}


def retrieval_recall(
    similarity: torch.Tensor,
    positives: torch.Tensor | None = None,
    ks: Sequence[int] = (1, 5, 10),
) -> dict[str, float]:
    r"""
    Recall@K of image-to-text and text-to-image retrieval (the protocol of Flickr30k / COCO retrieval, as reported
    by CLIP, Radford et al. 2021, and ALIGN, Jia et al. 2021).

    Image-to-text recall@k is the share of images whose k highest-scoring texts include a correct one; text-to-image
    recall@k is the same over texts, ranking images. Only images (rows) and texts (columns) with at least one correct
    partner count: COCO's five captions per image give every image five positives, every text one.

    Args:
        similarity (`torch.Tensor` of shape `(num_images, num_texts)`):
            Score of every image against every text; higher means a better match.
        positives (`torch.Tensor` of dtype `bool` and the same shape, *optional*):
            Which pairs are correct. `None` means image i goes with text i, and needs a square `similarity`.
        ks (`Sequence[int]`, *optional*, defaults to `(1, 5, 10)`):
            Cut-offs. A k above the number of candidates is clamped to it (recall 1 for every query with a
            positive), so the default cut-offs work on small evaluation sets.

    Returns:
        `dict[str, float]`: `"image_to_text_recall@{k}"` and `"text_to_image_recall@{k}"` for every k, as fractions
        in [0, 1]. Ties between a correct and a wrong candidate rank the wrong one first (see the module docstring).
    """
    positives = _check_positives(similarity, positives)
    if len(ks) == 0 or any(int(k) != k or k < 1 for k in ks):
        raise ValueError(f"ks must be positive integers, got {tuple(ks)}")
    if not positives.any():
        raise ValueError("positives marks no correct pair: recall is undefined")
    image_to_text = _hits_at_k(similarity, positives, ks)
    text_to_image = _hits_at_k(similarity.T, positives.T, ks)
    recalls = {f"image_to_text_recall@{k}": image_to_text[k] for k in ks}
    recalls.update({f"text_to_image_recall@{k}": text_to_image[k] for k in ks})
    return recalls


def zero_shot_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int = 1) -> float:
    r"""
    Top-k accuracy of zero-shot classification: the share of images whose true class is among the k classes with the
    highest logits (CLIP's zero-shot ImageNet protocol scores images against one text prompt per class).

    A class that ties with the true class is ranked before it, as in [`retrieval_recall`].

    Args:
        logits (`torch.Tensor` of shape `(num_images, num_classes)`):
            Score of every image against every class prompt.
        labels (`torch.Tensor` of shape `(num_images,)`):
            Integer class of every image.
        k (`int`, *optional*, defaults to 1):
            Cut-off, between 1 and `num_classes`.
    """
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (num_images, num_classes), got {tuple(logits.shape)}")
    if not torch.isfinite(logits).all():
        raise ValueError("logits contains NaN or infinite scores")
    if labels.shape != (logits.shape[0],):
        raise ValueError(f"labels must have shape ({logits.shape[0]},) to match logits, got {tuple(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integer class indices, got {labels.dtype}")
    num_images, num_classes = logits.shape
    if num_images == 0:
        raise ValueError("logits has no images: accuracy is undefined")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}), got values in [{labels.min()}, {labels.max()}]")
    if not 1 <= k <= num_classes:
        raise ValueError(f"k must lie in [1, num_classes={num_classes}], got {k}")
    true_class_logit = logits.gather(1, labels[:, None])
    classes_ahead = (logits >= true_class_logit).sum(dim=1) - 1
    return (classes_ahead < k).double().mean().item()


__all__ = ["retrieval_recall", "zero_shot_accuracy"]
