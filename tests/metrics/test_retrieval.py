import pytest
import torch

from hfgen.metrics import retrieval_recall, zero_shot_accuracy


def test_one_to_one_recall_by_hand():
    # Rank of the correct text in each row: image 0 -> 1st, image 1 -> 2nd (0.8 beats 0.7), image 2 -> 3rd.
    # Rank of the correct image in each column: text 0 -> 1st, text 1 -> 1st, text 2 -> 3rd (0.3 and 0.2 beat 0.05).
    similarity = torch.tensor([[0.9, 0.1, 0.3], [0.8, 0.7, 0.2], [0.1, 0.2, 0.05]])
    recalls = retrieval_recall(similarity, ks=(1, 2, 3, 10))
    expected = {
        "image_to_text_recall@1": 1 / 3,
        "image_to_text_recall@2": 2 / 3,
        "image_to_text_recall@3": 1.0,
        "image_to_text_recall@10": 1.0,  # k clamped to the 3 candidates
        "text_to_image_recall@1": 2 / 3,
        "text_to_image_recall@2": 2 / 3,
        "text_to_image_recall@3": 1.0,
        "text_to_image_recall@10": 1.0,
    }
    assert recalls.keys() == expected.keys()
    for key, value in expected.items():
        assert recalls[key] == pytest.approx(value), key


def test_multi_positive_recall_skips_queries_without_positives_and_counts_ties_against_the_model():
    # Images 0 and 1 have two captions each; image 2 has none, so it is no query of image-to-text retrieval, but it
    # is a (wrong) candidate of every text, and it outscores every correct image.
    similarity = torch.tensor(
        [
            [0.2, 0.9, 0.5, 0.1],
            [0.6, 0.3, 0.4, 0.1],
            [0.95, 0.95, 0.95, 0.95],
        ]
    )
    positives = torch.tensor(
        [
            [True, True, False, False],
            [False, False, True, True],
            [False, False, False, False],
        ]
    )
    recalls = retrieval_recall(similarity, positives, ks=(1, 2, 3))
    # Image 0: its best caption (0.9) is first. Image 1: its best caption (0.4) comes after 0.6.
    assert recalls["image_to_text_recall@1"] == pytest.approx(1 / 2)
    assert recalls["image_to_text_recall@2"] == pytest.approx(1.0)
    # Negatives scoring at least as high as the correct image: text 0 -> 2 (0.6, 0.95), text 1 -> 1 (0.95),
    # text 2 -> 2 (0.5, 0.95), text 3 -> 2 (the tie at 0.1 counts against the model, and 0.95).
    assert recalls["text_to_image_recall@1"] == pytest.approx(0.0)
    assert recalls["text_to_image_recall@2"] == pytest.approx(1 / 4)
    assert recalls["text_to_image_recall@3"] == pytest.approx(1.0)


def test_constant_scores_get_no_credit_from_the_order_of_candidates():
    recalls = retrieval_recall(torch.zeros(4, 4), ks=(1, 4))
    assert recalls["image_to_text_recall@1"] == recalls["text_to_image_recall@1"] == 0.0
    assert recalls["image_to_text_recall@4"] == recalls["text_to_image_recall@4"] == 1.0


def test_retrieval_rejects_bad_input():
    with pytest.raises(ValueError, match="square"):
        retrieval_recall(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="positives must have the shape"):
        retrieval_recall(torch.zeros(2, 3), torch.ones(3, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="ks"):
        retrieval_recall(torch.zeros(2, 2), ks=(0,))


def test_zero_shot_top1_and_top2_by_hand():
    logits = torch.tensor(
        [
            [2.0, 1.0, 0.0],  # label 0, first
            [0.5, 0.2, 0.9],  # label 0, second (0.9 ahead)
            [0.1, 0.3, 0.2],  # label 0, third (0.3 and 0.2 ahead)
            [1.0, 3.0, 2.0],  # label 2, second (3.0 ahead)
        ]
    )
    labels = torch.tensor([0, 0, 0, 2])
    assert zero_shot_accuracy(logits, labels) == pytest.approx(1 / 4)
    assert zero_shot_accuracy(logits, labels, k=2) == pytest.approx(3 / 4)
    assert zero_shot_accuracy(logits, labels, k=3) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="k must lie"):
        zero_shot_accuracy(logits, labels, k=4)
    with pytest.raises(ValueError, match="labels must lie"):
        zero_shot_accuracy(logits, torch.tensor([0, 0, 0, 3]))
