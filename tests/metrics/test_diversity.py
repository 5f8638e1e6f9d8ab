import numpy as np
import pytest
import torch

from hfgen.data import images_as_tensor, load_digits_dataset
from hfgen.metrics import load_digits_feature_extractor, mean_pairwise_distance, sample_diversity_ratio


@pytest.fixture(scope="module")
def digit_halves():
    """The 360 built-in test digits at 32 pixels, split into two halves of 180 (every other image)."""
    test = images_as_tensor(load_digits_dataset(32)["test"], 32)
    return test[0::2], test[1::2]


def test_mean_pairwise_distance_is_the_mean_over_distinct_pairs():
    points = torch.randn(7, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    array = points.numpy()
    pairs = [np.linalg.norm(array[i] - array[j]) for i in range(7) for j in range(i + 1, 7)]
    assert mean_pairwise_distance(points, batch_size=3) == pytest.approx(np.mean(pairs), rel=1e-12)
    with pytest.raises(ValueError, match="at least 2 points"):
        mean_pairwise_distance(points[:1])


def test_identical_samples_have_no_diversity(digit_halves):
    reals, _ = digit_halves
    collapsed = reals[:1].expand(50, -1, -1, -1)
    pixels = sample_diversity_ratio(collapsed, reals)
    # Zero up to the rounding of cdist's matrix-product formula (distances between different digits are ~30).
    assert pixels["diversity_ratio"] < 1e-6 and pixels["sample_mean_distance"] < 1e-5
    assert pixels["space"] == "pixels"
    features = sample_diversity_ratio(collapsed, reals, load_digits_feature_extractor())
    assert features["diversity_ratio"] < 1e-6
    assert features["space"].startswith("features of hfgen digits classifier")


def test_real_data_against_real_data_is_about_one(digit_halves):
    first, second = digit_halves
    assert sample_diversity_ratio(first, first)["diversity_ratio"] == 1.0
    for extractor in (None, load_digits_feature_extractor()):
        ratio = sample_diversity_ratio(second, first, extractor)["diversity_ratio"]
        assert 0.9 < ratio < 1.1
    # A few modes only (three digits repeated) read far below 1.
    few_modes = first[:3].repeat(20, 1, 1, 1)
    assert (
        sample_diversity_ratio(few_modes, first)["diversity_ratio"]
        < 0.9 * sample_diversity_ratio(first[:60], first)["diversity_ratio"]
    )


def test_diversity_inputs_are_checked(digit_halves):
    first, _ = digit_halves
    with pytest.raises(ValueError, match=r"samples must be a batch of at least 2 images"):
        sample_diversity_ratio(first[:1], first)
    with pytest.raises(ValueError, match=r"pixel distances need samples and reals of the same shape"):
        sample_diversity_ratio(first[:, :, :16, :16], first)
    with pytest.raises(ValueError, match="the real images are all identical"):
        sample_diversity_ratio(first, first[:1].expand(4, -1, -1, -1))
    # Features accept any size: the extractor resizes.
    resized = torch.nn.functional.interpolate(first, size=16, mode="bilinear").clamp(-1, 1)
    assert sample_diversity_ratio(resized, first, load_digits_feature_extractor())["diversity_ratio"] > 0.8
