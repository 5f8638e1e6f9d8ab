"""Caption metrics computed in the package: corpus BLEU, CIDEr-D and exact match.

Every metric reads whitespace-free tokens from [`caption_tokens`], which lower-cases a caption and keeps its runs of
letters and digits. COCO's evaluation toolkit tokenises with the Stanford PTB tokenizer (a Java program) before
dropping punctuation; the two agree on plain captions and differ on contractions ("don't" is "don" + "t" here, "do" +
"n't" there), so scores are comparable to published ones only up to that.

`predictions[i]` is one generated caption of item i and `references[i]` the list of its human captions.
"""

import math
import re
from collections import Counter

_WORD = re.compile(r"[^\W_]+")
"""A run of letters or digits: `\\w` without the underscore."""

CIDER_SIGMA = 6.0
"""Standard deviation, in words, of CIDEr-D's Gaussian penalty on the length difference (Vedantam et al. 2015)."""
CIDER_SCALE = 10.0
"""CIDEr-D's final factor, which puts scores on the scale of the published tables (roughly 0-2 for good models)."""


def caption_tokens(text: str) -> list[str]:
    """Lower-cased words and numbers of a caption, punctuation dropped.

    "A dog, 2 cats." gives ["a", "dog", "2", "cats"]; "don't" gives ["don", "t"] and "3.5" gives ["3", "5"].
    """
    return _WORD.findall(text.lower())


def _ngram_counts(tokens: list[str], order: int) -> Counter:
    return Counter(tuple(tokens[i : i + order]) for i in range(len(tokens) - order + 1))


def _check_corpus(predictions: list[str], references: list[list[str]], max_order: int | None = None) -> None:
    if len(predictions) != len(references):
        raise ValueError(
            f"predictions and references must have one entry per item, got {len(predictions)} and {len(references)}"
        )
    if len(predictions) == 0:
        raise ValueError("predictions is empty: the score is undefined")
    if isinstance(predictions, str) or any(not isinstance(prediction, str) for prediction in predictions):
        raise ValueError("predictions must be a list of strings, one caption per item")
    for index, captions in enumerate(references):
        if isinstance(captions, str) or len(captions) == 0:
            raise ValueError(f"references[{index}] must be a non-empty list of captions, got {captions!r}")
    if max_order is not None and max_order < 1:
        raise ValueError(f"max_order must be at least 1, got {max_order}")


def corpus_bleu(predictions: list[str], references: list[list[str]], max_order: int = 4, smooth: bool = True) -> float:
    r"""
    Corpus-level BLEU (Papineni et al. 2002), on the 0-1 scale.

    For each order n = 1 .. `max_order`, the n-gram precision p_n pools the whole corpus: the sum over captions of
    each candidate n-gram's count clipped to its largest count in any one reference, divided by the total number of
    candidate n-grams. BLEU is the geometric mean of p_1 .. p_N (uniform weights) times the brevity penalty
    BP = min(1, exp(1 - r / c)), where c is the total candidate length and r the sum over captions of the reference
    length closest to the candidate's (the shorter one on a tie, as in Papineni et al.'s reference script).

    Args:
        predictions (`list[str]`):
            One generated caption per item.
        references (`list[list[str]]`):
            The human captions of every item.
        max_order (`int`, *optional*, defaults to 4):
            Longest n-gram: 4 gives BLEU-4, the number captioning papers report.
        smooth (`bool`, *optional*, defaults to `True`):
            Add 1 to the matched and to the total n-gram counts of every order above 1 (Lin & Och 2004), so a corpus
            of short captions without a single matching 4-gram does not score exactly 0. Unigram precision is never
            smoothed: a corpus without one matching word scores 0.
    """
    _check_corpus(predictions, references, max_order)
    matched = [0] * max_order
    total = [0] * max_order
    candidate_length = 0
    reference_length = 0
    for prediction, captions in zip(predictions, references, strict=True):
        candidate = caption_tokens(prediction)
        reference_token_lists = [caption_tokens(caption) for caption in captions]
        candidate_length += len(candidate)
        reference_length += min((abs(len(r) - len(candidate)), len(r)) for r in reference_token_lists)[1]
        for order in range(1, max_order + 1):
            candidate_counts = _ngram_counts(candidate, order)
            max_reference_counts = Counter()
            for reference in reference_token_lists:
                max_reference_counts |= _ngram_counts(reference, order)
            matched[order - 1] += sum((candidate_counts & max_reference_counts).values())
            total[order - 1] += sum(candidate_counts.values())

    if candidate_length == 0 or matched[0] == 0:
        return 0.0
    log_precisions = []
    for order in range(1, max_order + 1):
        numerator, denominator = matched[order - 1], total[order - 1]
        if smooth and order > 1:
            numerator, denominator = numerator + 1, denominator + 1
        if numerator == 0:
            return 0.0
        log_precisions.append(math.log(numerator / denominator))
    brevity_penalty = min(1.0, math.exp(1 - reference_length / candidate_length))
    return brevity_penalty * math.exp(sum(log_precisions) / max_order)


def _tfidf_vectors(
    tokens: list[str], max_order: int, log_num_items: float, document_frequency: Counter
) -> list[dict[tuple[str, ...], float]]:
    """One vector per order: raw n-gram count times log(num_items / document frequency), the frequency floored at 1."""
    vectors = []
    for order in range(1, max_order + 1):
        counts = _ngram_counts(tokens, order)
        vectors.append(
            {
                ngram: count * (log_num_items - math.log(max(1, document_frequency[ngram])))
                for ngram, count in counts.items()
            }
        )
    return vectors


def _norm(vector: dict[tuple[str, ...], float]) -> float:
    return math.sqrt(sum(value * value for value in vector.values()))


def cider(predictions: list[str], references: list[list[str]], max_order: int = 4) -> float:
    r"""
    CIDEr-D (Vedantam et al. 2015), the consensus score of COCO captioning, averaged over the corpus.

    What is computed, for each item with candidate c and references r_1 .. r_m:

    1. Every caption becomes, for each order n = 1 .. `max_order`, a TF-IDF vector over its n-grams: the n-gram's
       raw count in the caption times log(N / df), where N is the number of items in the corpus and df the number of
       items whose references contain the n-gram (at least 1, so n-grams no reference uses get the largest weight
       log N). The document frequencies come from the references only, so a prediction cannot change the weights.
    2. For each order and each reference, the similarity is sum_g min(c_g, r_g) * r_g / (|c| |r|): the cosine with
       the candidate's weights clipped to the reference's, so repeating a matching word does not raise the score,
       times the Gaussian length penalty exp(-(len(c) - len(r))^2 / (2 * 6^2)) with lengths in words. A zero vector
       contributes 0.
    3. The item's score is 10 times the mean of these similarities over orders and references.

    The corpus score is the mean of the item scores. It needs several items: with one item every n-gram of the
    references has df = N and weight 0, and the score is 0. Tokenisation is [`caption_tokens`] (not the PTB
    tokenizer of COCO's toolkit), otherwise this follows CIDEr-D as the toolkit computes it.

    Args:
        predictions (`list[str]`):
            One generated caption per item.
        references (`list[list[str]]`):
            The human captions of every item.
        max_order (`int`, *optional*, defaults to 4):
            Longest n-gram.
    """
    _check_corpus(predictions, references, max_order)
    reference_token_lists = [[caption_tokens(caption) for caption in captions] for captions in references]
    document_frequency = Counter()
    for token_lists in reference_token_lists:
        ngrams_of_item = set()
        for tokens in token_lists:
            for order in range(1, max_order + 1):
                ngrams_of_item.update(_ngram_counts(tokens, order))
        document_frequency.update(ngrams_of_item)
    log_num_items = math.log(len(predictions))

    item_scores = []
    for prediction, token_lists in zip(predictions, reference_token_lists, strict=True):
        candidate = caption_tokens(prediction)
        candidate_vectors = _tfidf_vectors(candidate, max_order, log_num_items, document_frequency)
        similarities = []
        for reference in token_lists:
            reference_vectors = _tfidf_vectors(reference, max_order, log_num_items, document_frequency)
            length_penalty = math.exp(-((len(candidate) - len(reference)) ** 2) / (2 * CIDER_SIGMA**2))
            for candidate_vector, reference_vector in zip(candidate_vectors, reference_vectors, strict=True):
                norms = _norm(candidate_vector) * _norm(reference_vector)
                if norms == 0:
                    similarities.append(0.0)
                    continue
                clipped_dot = sum(
                    min(weight, reference_vector[ngram]) * reference_vector[ngram]
                    for ngram, weight in candidate_vector.items()
                    if ngram in reference_vector
                )
                similarities.append(length_penalty * clipped_dot / norms)
        item_scores.append(CIDER_SCALE * sum(similarities) / len(similarities))
    return sum(item_scores) / len(item_scores)


def exact_match(predictions: list[str], references: list[list[str]]) -> float:
    """Share of predictions whose tokens (see [`caption_tokens`]) equal those of any of their references: case,
    punctuation and spacing do not count. The metric of short-answer tasks (VQA-style answers, OCR of labels)."""
    _check_corpus(predictions, references)
    matches = sum(
        caption_tokens(prediction) in [caption_tokens(caption) for caption in captions]
        for prediction, captions in zip(predictions, references, strict=True)
    )
    return matches / len(predictions)


def caption_metrics(predictions: list[str], references: list[list[str]]) -> dict[str, float]:
    """`{"exact_match", "bleu_4", "cider"}` of a corpus: [`exact_match`], smoothed BLEU-4 ([`corpus_bleu`]) and
    CIDEr-D ([`cider`])."""
    return {
        "exact_match": exact_match(predictions, references),
        "bleu_4": corpus_bleu(predictions, references, max_order=4),
        "cider": cider(predictions, references, max_order=4),
    }


__all__ = ["CIDER_SCALE", "CIDER_SIGMA", "caption_metrics", "caption_tokens", "cider", "corpus_bleu", "exact_match"]
