import math

import pytest

from hfgen.metrics import caption_metrics, caption_tokens, cider, corpus_bleu, exact_match

REFERENCES = [
    ["a dog runs on the grass", "a brown dog running in a field"],
    ["two cats sleep on a red sofa", "cats sleeping on a couch"],
    ["a man rides a bicycle down the street", "a person cycling on a road"],
]
GOOD_CAPTIONS = ["a dog runs on the grass field", "two cats sleep on a sofa", "a man rides a bicycle on the street"]


def test_caption_tokens_lower_case_and_drop_punctuation():
    assert caption_tokens("A dog, 2 cats.") == ["a", "dog", "2", "cats"]
    assert caption_tokens("  Hello--World!! ") == ["hello", "world"]


def test_bleu_of_identical_captions_is_one():
    predictions = [captions[0] for captions in REFERENCES]
    assert corpus_bleu(predictions, REFERENCES) == pytest.approx(1.0)
    assert corpus_bleu(predictions, REFERENCES, smooth=False) == pytest.approx(1.0)


def test_bleu_by_hand():
    predictions = ["the cat sat on the mat"]
    references = [["the cat is on the mat"]]
    # Unigrams: the x2, cat, sat, on, mat; all but "sat" in the reference -> p1 = 5 / 6.
    # Bigrams: the cat, cat sat, sat on, on the, the mat; "the cat", "on the", "the mat" match -> p2 = 3 / 5.
    # Trigrams: only "on the mat" of 4 matches -> p3 = 1 / 4. 4-grams: none of 3 -> p4 = 0.
    # Both captions have 6 words: brevity penalty 1.
    assert corpus_bleu(predictions, references, max_order=2, smooth=False) == pytest.approx(math.sqrt(5 / 6 * 3 / 5))
    assert corpus_bleu(predictions, references, max_order=4, smooth=False) == 0.0
    # Smoothing adds 1 to the matches and totals of orders 2-4: (5/6 * 4/6 * 2/5 * 1/4) ** (1/4).
    assert corpus_bleu(predictions, references) == pytest.approx((5 / 6 * 4 / 6 * 2 / 5 * 1 / 4) ** 0.25)


def test_bleu_brevity_penalty_uses_the_closest_reference_length():
    # Every n-gram of "the cat" matches (p1 = p2 = 1), so BLEU-2 is the brevity penalty exp(1 - r / c).
    assert corpus_bleu(["the cat"], [["the cat sat on the mat"]], max_order=2, smooth=False) == pytest.approx(
        math.exp(1 - 6 / 2)
    )
    assert corpus_bleu(["the cat"], [["the cat sat on the mat", "the cat"]], max_order=2, smooth=False) == 1.0
    # Reference lengths 3 and 5 are equally close to 4: the shorter one is taken, so there is no penalty.
    assert corpus_bleu(["a b c d"], [["a b c", "a b c d e"]], max_order=2, smooth=False) == pytest.approx(1.0)


def test_cider_rewards_consensus_and_is_zero_without_overlap():
    matching = cider(GOOD_CAPTIONS, REFERENCES)
    shuffled = cider(GOOD_CAPTIONS[1:] + GOOD_CAPTIONS[:1], REFERENCES)
    assert matching > 1.0
    assert shuffled < 0.5 * matching
    assert cider(["xylophone zebra", "quantum umbrella", "purple volcano"], REFERENCES) == 0.0


def test_cider_of_a_caption_equal_to_its_only_reference_is_ten():
    # Identical vectors have cosine 1 in every order and no length penalty; with vocabularies that differ between
    # the two items every order has n-grams of non-zero weight, so the score is 10 * mean(1, 1, 1, 1).
    captions = ["a red apple on the table", "a blue sky over the sea"]
    assert cider(captions, [[caption] for caption in captions]) == pytest.approx(10.0)
    # One item alone: every reference n-gram occurs in all (one) items, weight log(1 / 1) = 0.
    assert cider(captions[:1], [captions[:1]]) == 0.0


def test_exact_match_ignores_case_punctuation_and_spacing():
    predictions = ["A dog.", "two  Cats!", "a bird"]
    references = [["a dog"], ["a cat", "Two cats"], ["a fish"]]
    assert exact_match(predictions, references) == pytest.approx(2 / 3)


def test_caption_metrics_and_bad_input():
    metrics = caption_metrics(GOOD_CAPTIONS, REFERENCES)
    assert set(metrics) == {"exact_match", "bleu_4", "cider"}
    assert metrics["exact_match"] == 0.0
    assert metrics["bleu_4"] == pytest.approx(corpus_bleu(GOOD_CAPTIONS, REFERENCES))
    assert metrics["cider"] == pytest.approx(cider(GOOD_CAPTIONS, REFERENCES))
    with pytest.raises(ValueError, match="one entry per item"):
        corpus_bleu(GOOD_CAPTIONS, REFERENCES[:2])
    with pytest.raises(ValueError, match=r"references\[1\]"):
        cider(GOOD_CAPTIONS, [REFERENCES[0], [], REFERENCES[2]])
