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
    return _soft_target_loss(logits_per_image, positives)


def multi_label_contrastive_loss(
    image_embeddings: torch.Tensor, text_embeddings: torch.Tensor, logit_scale: torch.Tensor, positives: torch.Tensor
) -> torch.Tensor:
    """The contrastive loss between a batch of images and a set of texts that need not pair one to one: GroupViT's
    multi-label loss (Xu et al. 2022), where every image is read against the prompts of a set of classes
    ("the digit seven") and matches those of the classes it holds.

    `image_embeddings` is `(num_images, dim)`, `text_embeddings` `(num_texts, dim)` (both normalised here) and
    `positives` `(num_images, num_texts)` bool. Each image's target is spread evenly over its matching texts and
    each text's over its matching images; an image or text with no match is left out of its direction's mean.
    """
    if (
        image_embeddings.ndim != 2
        or text_embeddings.ndim != 2
        or image_embeddings.shape[1] != text_embeddings.shape[1]
    ):
        raise ValueError(
            f"image_embeddings {tuple(image_embeddings.shape)} and text_embeddings {tuple(text_embeddings.shape)} "
            "must be (num_images, dim) and (num_texts, dim)"
        )
    expected = (image_embeddings.shape[0], text_embeddings.shape[0])
    if positives.shape != expected or positives.dtype != torch.bool or not positives.any():
        raise ValueError(f"positives must be a {expected} bool matrix with at least one match")
    image_embeddings = F.normalize(image_embeddings, dim=-1)
    text_embeddings = F.normalize(text_embeddings, dim=-1)
    return _soft_target_loss(logit_scale.exp() * image_embeddings @ text_embeddings.t(), positives)


def grouped_multi_label_contrastive_loss(
    group_embeddings: torch.Tensor, text_embeddings: torch.Tensor, logit_scale: torch.Tensor, positives: torch.Tensor
) -> torch.Tensor:
    """[`multi_label_contrastive_loss`] with each image read as a set of group embeddings (GroupViT's final groups):
    an image scores a text by the cosine similarity of its group nearest that text, so an image matches the prompt
    of a class it holds when one of its groups does, as segmentation reads the groups.

    `group_embeddings` is `(num_images, num_groups, dim)`, `text_embeddings` `(num_texts, dim)` (both normalised
    here) and `positives` `(num_images, num_texts)` bool. With one group per image it is
    [`multi_label_contrastive_loss`].
    """
    if (
        group_embeddings.ndim != 3
        or text_embeddings.ndim != 2
        or group_embeddings.shape[2] != text_embeddings.shape[1]
    ):
        raise ValueError(
            f"group_embeddings {tuple(group_embeddings.shape)} and text_embeddings {tuple(text_embeddings.shape)} "
            "must be (num_images, num_groups, dim) and (num_texts, dim)"
        )
    expected = (group_embeddings.shape[0], text_embeddings.shape[0])
    if positives.shape != expected or positives.dtype != torch.bool or not positives.any():
        raise ValueError(f"positives must be a {expected} bool matrix with at least one match")
    similarity = torch.einsum(
        "igd,td->igt", F.normalize(group_embeddings, dim=-1), F.normalize(text_embeddings, dim=-1)
    ).amax(dim=1)
    return _soft_target_loss(logit_scale.exp() * similarity, positives)


def _soft_target_loss(logits_per_image: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """The mean of the image-to-text and text-to-image cross-entropies of a `(num_images, num_texts)` score matrix,
    each row's target spread evenly over its `positives` (rows without one left out)."""
    losses = []
    for logits, matches in ((logits_per_image, positives), (logits_per_image.t(), positives.t())):
        kept = matches.any(dim=1)
        targets = matches[kept].to(logits.dtype)
        losses.append(F.cross_entropy(logits[kept], targets / targets.sum(dim=1, keepdim=True)))
    return (losses[0] + losses[1]) / 2


def same_caption_positives(keys: list) -> torch.Tensor:
    """The `positives` of [`clip_contrastive_loss`] for a batch whose pairs match when their `keys` are equal (the
    class label behind each caption, or the caption text itself)."""
    codes = {key: index for index, key in enumerate(dict.fromkeys(keys))}
    ids = torch.tensor([codes[key] for key in keys])
    return ids[:, None] == ids[None, :]
