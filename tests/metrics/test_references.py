import pytest
import torch

from hfgen.data import collate_images, image_transform, load_digits_dataset
from hfgen.metrics import GenerativeMetrics, digits_reference_metrics


@pytest.fixture(scope="module")
def references():
    return digits_reference_metrics()


@pytest.fixture(scope="module")
def test_digits() -> torch.Tensor:
    dataset = load_digits_dataset(32)
    return collate_images(list(dataset["test"].with_transform(image_transform(32, "L"))))["pixel_values"]


def test_real_data_scores_far_better_than_the_noise_baseline(references):
    assert set(references) == {"real_train_vs_test", "train_mean_plus_noise"}
    real, noise = references["real_train_vs_test"], references["train_mean_plus_noise"]
    names = {"fid", "kid_mean", "kid_std", "inception_score_mean", "inception_score_std", "precision", "recall"}
    assert set(real) == set(noise) == names
    assert real["fid"] < noise["fid"] / 10
    assert real["kid_mean"] < noise["kid_mean"] / 10
    # Real digits are recognised with confidence and spread over the ten classes; mean-plus-noise images are neither.
    assert real["inception_score_mean"] > 8 > noise["inception_score_mean"]
    assert real["precision"] > 0.8 and real["recall"] > 0.8
    assert noise["precision"] < 0.2 and noise["recall"] < 0.2


def test_references_are_deterministic(references):
    assert digits_reference_metrics() == references
    other_seed = digits_reference_metrics(seed=1)
    assert other_seed["real_train_vs_test"]["fid"] != references["real_train_vs_test"]["fid"]


def test_reference_sample_count_is_checked():
    with pytest.raises(ValueError, match="between 1 and 1437"):
        digits_reference_metrics(num_samples=2000)


def test_digits_against_themselves_in_any_format(test_digits, references):
    metrics = GenerativeMetrics()
    metrics.update(test_digits, real=True)
    metrics.update(test_digits, real=False)
    same = metrics.compute()
    assert abs(same["fid"]) < 1e-3
    assert same["precision"] == 1.0 and same["recall"] == 1.0
    # RGB copies at the classifier's resolution are the same images to the extractor (luma weights sum to one).
    metrics.reset()
    metrics.update(test_digits, real=True)
    metrics.update(test_digits.expand(-1, 3, -1, -1), real=False)
    assert abs(metrics.compute()["fid"]) < 1e-3
    # Larger RGB images are resized to 32 pixels first: the same digits, barely changed.
    metrics.reset()
    metrics.update(test_digits, real=True)
    upsampled = torch.nn.functional.interpolate(test_digits, scale_factor=2, mode="nearest").expand(-1, 3, -1, -1)
    metrics.update(upsampled, real=False)
    assert metrics.compute()["fid"] < 0.1 * references["real_train_vs_test"]["fid"]
