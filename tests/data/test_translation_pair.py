"""The built-in translation pair: an exactly invertible colour map, paired and unpaired serving."""

import numpy as np

from hfgen.data.translation import colour_table, colourise, decolourise, load_digit_pair


def test_the_colour_map_is_exactly_invertible_and_inverts_brightness():
    table = colour_table()
    assert table.shape == (256, 3) and len({tuple(colour) for colour in table}) == 256
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    colours = colourise(grey)
    assert colours.shape == (16, 16, 3) and colours.dtype == np.uint8
    assert np.array_equal(decolourise(colours), grey)
    luminance = colours.astype(float) @ np.array([0.299, 0.587, 0.114])
    assert luminance[0, 0] > 150 > 60 > luminance[-1, -1]  # a black background becomes bright, a white stroke dark
    # not a grey image: the channels differ
    assert np.abs(colours[..., 0].astype(int) - colours[..., 2]).max() > 100


def test_the_pair_is_served_paired_and_unpaired():
    paired = load_digit_pair(16, paired=True)
    unpaired = load_digit_pair(16, paired=False)
    assert set(paired) == {"train", "test"} and paired["train"].column_names == ["image_a", "image_b", "label"]
    row = paired["train"][0]
    assert row["image_a"].mode == "L" and row["image_b"].mode == "RGB" and row["image_a"].size == (16, 16)
    assert np.array_equal(np.asarray(row["image_b"]), colourise(np.asarray(row["image_a"])))

    def fingerprints(split):
        return [np.asarray(image).tobytes() for image in split["image_b"]]

    shuffled, aligned = fingerprints(unpaired["train"]), fingerprints(paired["train"])
    assert sorted(shuffled) == sorted(aligned)  # the same B images...
    assert sum(a == b for a, b in zip(shuffled, aligned, strict=True)) < 20  # ...in another order
    assert fingerprints(unpaired["test"]) == fingerprints(paired["test"])  # the held-out pairs stay aligned
    assert fingerprints(load_digit_pair(16, paired=False)["train"]) == shuffled  # a fixed order


def test_the_photo_pair_grades_real_photographs_invertibly():
    from hfgen.data.translation import grade, load_photo_pair, ungrade

    colours = (np.random.default_rng(0).random((4096, 3)) * 255).astype(np.uint8)
    assert np.abs(ungrade(grade(colours)).astype(int) - colours).max() <= 3  # up to 8-bit rounding
    graded = grade(colours)
    assert graded.min() >= 12 and graded.max() <= 243  # washed-out blacks and whites
    pair = load_photo_pair(16)
    assert len(pair["train"]) == 579 and len(pair["test"]) == 30
    row = pair["test"][0]
    assert row["image_a"].mode == "RGB" and row["image_a"].size == (16, 16)
    assert np.array_equal(np.asarray(row["image_b"]), grade(np.asarray(row["image_a"])))  # held out: paired
    crops = [np.asarray(image) for image in pair["train"]["image_a"]]
    assert np.std([crop.mean() for crop in crops]) > 10  # real, varied photographs, not one flat colour
    first_b = np.asarray(pair["train"][0]["image_b"])
    assert not np.array_equal(first_b, grade(crops[0]))  # unpaired in training
