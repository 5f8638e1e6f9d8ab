"""GenerativeMetrics against closed forms and independent computations, through identity "extractors" on Gaussians."""

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from hfgen.metrics import GenerativeMetrics, metric_protocol


class Flatten(nn.Module):
    """Identity extractor: `(batch, dim, 1, 1)` "images" are their own features (or logits)."""

    def __init__(self, dim: int):
        super().__init__()
        self.num_features = dim  # read by torchmetrics' FID instead of probing with a 299x299 image

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1)


def as_images(features: torch.Tensor) -> torch.Tensor:
    return features[:, :, None, None]


def gaussian_samples(num: int, mean: np.ndarray, cov: np.ndarray, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(num, len(mean), generator=generator, dtype=torch.float64)
    return noise @ torch.from_numpy(np.linalg.cholesky(cov)).T + torch.from_numpy(mean)


def frechet_distance(mean1, cov1, mean2, cov2) -> float:
    """||m1 - m2||^2 + Tr(C1 + C2 - 2 (C1 C2)^(1/2)), the Frechet distance between two Gaussians."""
    cross = scipy.linalg.sqrtm(cov1 @ cov2).real
    return float(np.sum((mean1 - mean2) ** 2) + np.trace(cov1 + cov2 - 2 * cross))


def unbiased_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with KID's polynomial kernel k(a, b) = (a.b / dim + 1)^3, written out with numpy."""
    dim, m, n = x.shape[1], len(x), len(y)
    k_xx, k_yy, k_xy = ((x @ x.T / dim + 1) ** 3, (y @ y.T / dim + 1) ** 3, (x @ y.T / dim + 1) ** 3)
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(within_x + within_y - 2 * k_xy.mean())


def measure(real: torch.Tensor, fake: torch.Tensor, batch_size: int = 500, **kwargs) -> dict:
    metrics = GenerativeMetrics(Flatten(real.shape[1]), Flatten(real.shape[1]), **kwargs)
    for chunk in real.split(batch_size):
        metrics.update(as_images(chunk), real=True)
    for chunk in fake.split(batch_size):
        metrics.update(as_images(chunk), real=False)
    return metrics.compute()


MEAN_1, MEAN_2 = np.array([0.0, 0.0, 0.0]), np.array([1.0, -0.5, 0.25])
COV_1 = np.array([[1.0, 0.3, 0.0], [0.3, 0.5, 0.1], [0.0, 0.1, 2.0]])
COV_2 = np.array([[0.5, -0.2, 0.0], [-0.2, 1.5, 0.0], [0.0, 0.0, 1.0]])


def test_fid_is_the_frechet_distance_of_the_sample_moments():
    real = gaussian_samples(2000, MEAN_1, COV_1, seed=0)
    fake = gaussian_samples(1500, MEAN_2, COV_2, seed=1)
    fid = measure(real, fake, kid_subsets=2)["fid"]
    real_np, fake_np = real.numpy(), fake.numpy()
    expected = frechet_distance(real_np.mean(0), np.cov(real_np.T), fake_np.mean(0), np.cov(fake_np.T))
    assert fid == pytest.approx(expected, rel=1e-6)
    # ... which estimates the distance between the two Gaussians the samples came from.
    assert fid == pytest.approx(frechet_distance(MEAN_1, COV_1, MEAN_2, COV_2), rel=0.05)


def test_fid_of_a_set_with_itself_is_zero():
    real = gaussian_samples(1000, MEAN_1, COV_1, seed=0)
    results = measure(real, real.clone(), kid_subsets=2)
    assert abs(results["fid"]) < 1e-6
    assert results["precision"] == 1.0 and results["recall"] == 1.0


def test_kid_is_the_unbiased_mmd2_of_an_independent_implementation():
    real = gaussian_samples(300, MEAN_1, COV_1, seed=0)
    fake = gaussian_samples(300, MEAN_2, COV_2, seed=1)
    # One subset holding every sample: no randomness left, the value is the MMD^2 of the two whole sets.
    results = measure(real, fake, kid_subsets=1, kid_subset_size=300)
    assert results["kid_mean"] == pytest.approx(unbiased_mmd2(real.numpy(), fake.numpy()), rel=1e-9)


def test_kid_of_one_distribution_is_near_zero():
    same = measure(gaussian_samples(800, MEAN_1, COV_1, seed=0), gaussian_samples(800, MEAN_1, COV_1, seed=1))
    shifted = measure(gaussian_samples(800, MEAN_1, COV_1, seed=0), gaussian_samples(800, MEAN_2, COV_2, seed=1))
    # Unbiased: zero in expectation for one distribution, so only sampling noise is left.
    assert abs(same["kid_mean"]) < 0.01 * shifted["kid_mean"]
    assert shifted["kid_mean"] > 0.1


def logits_as_images(logits: torch.Tensor) -> dict:
    num_classes = logits.shape[1]
    metrics = GenerativeMetrics(Flatten(num_classes), Flatten(num_classes), kid_subsets=2, inception_score_splits=1)
    metrics.update(as_images(logits), real=True)
    metrics.update(as_images(logits), real=False)
    return metrics.compute()


def test_inception_score_of_uniform_predictions_is_one():
    results = logits_as_images(torch.zeros(200, 10, dtype=torch.float64))
    assert results["inception_score_mean"] == pytest.approx(1.0, abs=1e-9)


def test_inception_score_of_confident_evenly_spread_predictions_is_the_number_of_classes():
    labels = torch.arange(200) % 10
    logits = 50.0 * nn.functional.one_hot(labels, 10).double()
    results = logits_as_images(logits)
    assert results["inception_score_mean"] == pytest.approx(10.0, rel=1e-6)


def test_kid_subset_size_fits_the_samples_or_fails_clearly():
    real = gaussian_samples(60, MEAN_1, COV_1, seed=0)
    fake = gaussian_samples(40, MEAN_2, COV_2, seed=1)
    metrics = GenerativeMetrics(Flatten(3), Flatten(3), kid_subsets=5)
    assert metrics.effective_kid_subset_size(60, 40) == 20
    assert metrics.effective_kid_subset_size(5000, 3000) == 1000
    results = measure(real, fake, kid_subsets=5)
    assert np.isfinite(results["kid_mean"])
    # Subsets of half the samples differ from each other, so their spread is reported rather than a constant 0.
    assert results["kid_std"] > 0
    with pytest.raises(ValueError, match="kid_subset_size=50 is larger than the 60 real and 40 generated"):
        measure(real, fake, kid_subset_size=50)


def test_too_few_samples_fail_clearly():
    real = gaussian_samples(10, MEAN_1, COV_1, seed=0)
    with pytest.raises(ValueError, match="at least 4 real and 4 generated images, got 10 real and 3 generated"):
        measure(real, real[:3])


def test_a_features_only_extractor_measures_everything_but_the_inception_score():
    real = gaussian_samples(300, MEAN_1, COV_1, seed=0)
    fake = gaussian_samples(200, MEAN_2, COV_2, seed=1)
    metrics = GenerativeMetrics(Flatten(3), kid_subsets=10)
    assert not metrics.measures_inception_score
    metrics.update(as_images(real), real=True)
    metrics.update(as_images(fake), real=False)
    results = metrics.compute()
    assert list(results) == ["fid", "kid_mean", "kid_std", "precision", "recall"]
    # The same numbers as with logits: leaving IS out changes nothing else (KID's subsets are drawn first).
    with_logits = measure(real, fake, kid_subsets=10)
    assert results == {name: with_logits[name] for name in results}
    metrics.reset()
    metrics.update(as_images(fake), real=True)
    metrics.update(as_images(real), real=False)
    assert metrics.compute()["fid"] == pytest.approx(with_logits["fid"], rel=1e-9)  # FID is symmetric
    protocol = metric_protocol(200, 300, metrics, dataset="my_images", split="validation")
    assert protocol["inception_score"] == "not measured: the feature extractor gives no class logits"
    assert protocol["dataset"] == "my_images" and protocol["split"] == "validation"


def test_a_custom_feature_extractor_must_state_its_dimension():
    with pytest.raises(TypeError, match="num_features"):
        GenerativeMetrics(nn.Flatten(), nn.Flatten())


def test_compute_is_seeded_and_leaves_the_global_rng_alone():
    real = gaussian_samples(300, MEAN_1, COV_1, seed=0)
    fake = gaussian_samples(300, MEAN_2, COV_2, seed=1)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = measure(real, fake, kid_subset_size=100)
    assert torch.equal(torch.get_rng_state(), state)
    assert measure(real, fake, kid_subset_size=100) == first
    assert measure(real, fake, kid_subset_size=100, seed=1)["kid_mean"] != first["kid_mean"]


def test_reset_forgets_everything():
    real = gaussian_samples(300, MEAN_1, COV_1, seed=0)
    fake = gaussian_samples(300, MEAN_2, COV_2, seed=1)
    metrics = GenerativeMetrics(Flatten(3), Flatten(3), kid_subsets=10)
    metrics.update(as_images(fake), real=True)  # data to forget
    metrics.update(as_images(real), real=False)
    metrics.compute()
    metrics.reset()
    metrics.update(as_images(real), real=True)
    metrics.update(as_images(fake), real=False)
    assert metrics.compute() == measure(real, fake, kid_subsets=10)


def test_protocol_states_extractor_counts_and_settings():
    protocol = metric_protocol(num_fake_samples=200)
    assert protocol["num_real_samples"] == 360 and protocol["num_fake_samples"] == 200
    assert protocol["input_resolution"] == 32
    assert "bicubic" in protocol["resize"] and "antialias=True" in protocol["resize"]
    assert "digits classifier" in protocol["feature_extractor"]
    assert "100 random subsets of 100 samples" in protocol["kid"]
    assert "k=3" in protocol["precision_recall"]
    custom = metric_protocol(500, 500, GenerativeMetrics(Flatten(3), Flatten(3), kid_subsets=7))
    assert custom["feature_extractor"] == "Flatten"
    assert "7 random subsets of 250 samples" in custom["kid"]
