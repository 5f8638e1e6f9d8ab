"""Captions from class labels and caption dropout for classifier-free guidance."""

import torch

from hfgen.data.captions import DIGIT_TEMPLATES, LabelCaptions, drop_captions


def test_digit_labels_become_spelt_out_prompts_and_varied_captions():
    captions = LabelCaptions([str(digit) for digit in range(10)])
    assert captions.prompt(7) == "a handwritten digit seven"
    written = captions.captions(torch.tensor([7] * 200), generator=torch.Generator().manual_seed(0))
    assert set(written) == {template.format("seven") for template in DIGIT_TEMPLATES}
    assert {"handwritten", "digit", "seven", "zero", "number"} <= captions.vocabulary()


def test_other_class_names_read_as_words():
    captions = LabelCaptions(["golden_retriever", "cat"])
    assert captions.prompt(0) == "a photo of golden retriever"
    assert captions.captions(torch.tensor([1]), generator=torch.Generator().manual_seed(0))[0] in {
        "a photo of cat",
        "an image of cat",
        "cat",
    }


def test_caption_dropout_empties_the_expected_share():
    texts = ["a"] * 10000
    dropped = drop_captions(texts, 0.1, generator=torch.Generator().manual_seed(0))
    assert set(dropped) == {"a", ""} and abs(dropped.count("") / 10000 - 0.1) < 0.01
    assert drop_captions(texts[:5], 0.0) == texts[:5]
