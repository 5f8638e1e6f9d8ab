"""The multi-label contrastive loss (GroupViT's) against a hand computation, its agreement with CLIP's loss where
they overlap, and its input checks."""

import math

import pytest
import torch
import torch.nn.functional as F

from hfgen.losses.contrastive import (
    clip_contrastive_loss,
    grouped_multi_label_contrastive_loss,
    multi_label_contrastive_loss,
)


def test_multi_label_loss_by_hand():
    # two images, three texts; image 0 matches texts 0 and 2, image 1 matches text 1; text 2 matches image 0 alone
    images = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    texts = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    positives = torch.tensor([[True, False, True], [False, True, False]])
    scale = torch.tensor(math.log(2.0))
    similarity = 2.0 * torch.tensor([[1.0, 0.0, 2**-0.5], [0.0, 1.0, 2**-0.5]])

    def soft_cross_entropy(logits, targets):
        return -(targets * F.log_softmax(logits, dim=-1)).sum(dim=-1).mean()

    image_to_text = soft_cross_entropy(similarity, torch.tensor([[0.5, 0.0, 0.5], [0.0, 1.0, 0.0]]))
    text_to_image = soft_cross_entropy(similarity.t(), positives.t().float())
    expected = (image_to_text + text_to_image) / 2
    assert multi_label_contrastive_loss(images, texts, scale, positives).item() == pytest.approx(expected.item())


def test_texts_without_a_match_stay_out_of_their_direction():
    torch.manual_seed(0)
    images, texts = torch.randn(3, 4), torch.randn(5, 4)
    positives = torch.zeros(3, 5, dtype=torch.bool)
    positives[0, 0] = positives[1, 2] = positives[2, 2] = True
    full = multi_label_contrastive_loss(images, texts, torch.tensor(1.0), positives)
    # texts 1, 3, 4 match nothing: they still compete in the image-to-text softmax, but have no row of their own
    logits = torch.exp(torch.tensor(1.0)) * F.normalize(images) @ F.normalize(texts).t()
    image_to_text = F.cross_entropy(logits, positives.float() / positives.sum(dim=1, keepdim=True))
    kept = positives.t()[[0, 2]].float()
    text_to_image = F.cross_entropy(logits.t()[[0, 2]], kept / kept.sum(dim=1, keepdim=True))
    assert full.item() == pytest.approx(((image_to_text + text_to_image) / 2).item(), rel=1e-6)


def test_square_positives_give_clips_loss():
    torch.manual_seed(1)
    images, texts = torch.randn(4, 8), torch.randn(4, 8)
    positives = torch.eye(4, dtype=torch.bool)
    positives[0, 1] = positives[1, 0] = True
    scale = torch.tensor(2.0)
    assert multi_label_contrastive_loss(images, texts, scale, positives).item() == pytest.approx(
        clip_contrastive_loss(images, texts, scale, positives).item()
    )
    assert multi_label_contrastive_loss(images, texts, scale, torch.eye(4, dtype=torch.bool)).item() == pytest.approx(
        clip_contrastive_loss(images, texts, scale).item()
    )


def test_multi_label_loss_checks_its_inputs():
    images, texts = torch.randn(2, 4), torch.randn(3, 4)
    with pytest.raises(ValueError, match=r"must be \(num_images, dim\) and \(num_texts, dim\)"):
        multi_label_contrastive_loss(images, torch.randn(3, 5), torch.tensor(0.0), torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"positives must be a \(2, 3\) bool matrix"):
        multi_label_contrastive_loss(images, texts, torch.tensor(0.0), torch.ones(3, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="at least one match"):
        multi_label_contrastive_loss(images, texts, torch.tensor(0.0), torch.zeros(2, 3, dtype=torch.bool))


def test_grouped_loss_reads_each_text_against_its_nearest_group():
    torch.manual_seed(2)
    groups, texts = torch.randn(3, 4, 8), torch.randn(5, 8)
    positives = torch.rand(3, 5) < 0.5
    positives[0, 0] = True
    scale = torch.tensor(1.5)
    # one group per image: the image embedding itself
    assert grouped_multi_label_contrastive_loss(groups[:, :1], texts, scale, positives).item() == pytest.approx(
        multi_label_contrastive_loss(groups[:, 0], texts, scale, positives).item()
    )
    # each image scores each text with its nearest group by cosine, whatever the groups' lengths
    similarity = (F.normalize(groups, dim=-1) @ F.normalize(texts, dim=-1).t()).amax(dim=1)
    scaled = groups * torch.tensor([1.0, 3.0, 0.5, 2.0]).view(1, 4, 1)
    grouped = grouped_multi_label_contrastive_loss(scaled, texts, scale, positives)
    image_to_text = F.cross_entropy(scale.exp() * similarity, positives.float() / positives.sum(1, keepdim=True))
    kept = positives.t()[positives.t().any(dim=1)].float()
    text_to_image = F.cross_entropy(
        (scale.exp() * similarity).t()[positives.t().any(dim=1)], kept / kept.sum(1, keepdim=True)
    )
    assert grouped.item() == pytest.approx(((image_to_text + text_to_image) / 2).item(), rel=1e-5)
    with pytest.raises(ValueError, match=r"must be \(num_images, num_groups, dim\) and \(num_texts, dim\)"):
        grouped_multi_label_contrastive_loss(groups[:, 0], texts, scale, positives)
