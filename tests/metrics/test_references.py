import time

import pytest
import torch

from hfgen.data import collate_images, image_transform, images_as_tensor, load_digits_dataset, load_faces_dataset
from hfgen.metrics import (
    REAL_VS_REAL,
    TRAIN_MEAN_PLUS_NOISE,
    GenerativeMetrics,
    digits_reference_metrics,
    load_backbone_feature_extractor,
    load_digits_feature_extractor,
    metric_protocol,
    reference_metrics,
)


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


# --- the general references: any dataset, any extractor ---


@pytest.fixture(scope="module")
def faces32():
    faces = load_faces_dataset(32)
    return images_as_tensor(faces["train"], 32), images_as_tensor(faces["test"], 32)


def test_general_references_of_the_digits_match_the_digits_references(references):
    dataset = load_digits_dataset(32)
    train, test = images_as_tensor(dataset["train"], 32), images_as_tensor(dataset["test"], 32)
    general = reference_metrics(train, test, load_digits_feature_extractor(), num_samples=360, seed=0)
    assert set(general) == {REAL_VS_REAL, TRAIN_MEAN_PLUS_NOISE}
    assert general[REAL_VS_REAL] == references["real_train_vs_test"]
    assert general[TRAIN_MEAN_PLUS_NOISE] == references["train_mean_plus_noise"]


def test_references_on_the_faces_through_a_backbone(faces32, dinov2_folder):
    train, test = faces32
    extractor = load_backbone_feature_extractor(dinov2_folder)
    start = time.perf_counter()
    faces = reference_metrics(train, test, extractor, num_samples=40, seed=0)
    assert time.perf_counter() - start < 5.0
    real, noise = faces[REAL_VS_REAL], faces[TRAIN_MEAN_PLUS_NOISE]
    assert set(real) == set(noise) == {"fid", "kid_mean", "kid_std", "precision", "recall"}  # no class logits
    # Even a random backbone tells faces from mean-plus-noise images.
    assert real["fid"] < noise["fid"] / 2
    assert real["recall"] > noise["recall"]
    assert reference_metrics(train, test, extractor, num_samples=40, seed=0) == faces
    protocol = metric_protocol(40, len(test), GenerativeMetrics(extractor), dataset="hfgen/faces", split="test")
    assert protocol["dataset"] == "hfgen/faces" and protocol["split"] == "test" and protocol["num_real_samples"] == 20


def test_reference_metrics_leave_the_global_rng_alone(faces32):
    train, test = faces32
    torch.manual_seed(7)
    state = torch.get_rng_state()
    reference_metrics(train, test, load_digits_feature_extractor(), num_samples=20, seed=3)
    assert torch.equal(torch.get_rng_state(), state)


def test_reference_arguments_are_checked(faces32):
    train, test = faces32
    extractor = load_digits_feature_extractor()
    with pytest.raises(
        ValueError, match=r"num_samples must lie between 1 and 80 \(the training images given\), got 81"
    ):
        reference_metrics(train, test, extractor, num_samples=81)
    with pytest.raises(ValueError, match=r"eval_images must be a tensor \(num_images, channels, height, width\)"):
        reference_metrics(train, test[0], extractor)


def test_protocol_names_dataset_and_split_and_is_measured_with_the_digits_classifier():
    protocol = metric_protocol(360, dataset="hfgen/digits", split="test")
    assert protocol["dataset"] == "hfgen/digits" and protocol["split"] == "test"
    assert "10 splits" in protocol["inception_score"]
    assert metric_protocol(360)["dataset"] is None  # unknown unless given: nothing is assumed
