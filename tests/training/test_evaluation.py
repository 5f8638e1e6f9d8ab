"""Measuring a generator on the run's data: labels follow the classes the run trained on."""

import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState

from hfgen.data import image_transform, load_digits_dataset
from hfgen.metrics import load_digits_feature_extractor
from hfgen.training.evaluation import RunEvaluation, balanced_labels, evaluate_generator


def test_balanced_labels_cover_every_class_or_only_the_kept_ones():
    assert balanced_labels(5, 3).tolist() == [0, 1, 2, 0, 1]
    assert balanced_labels(4, 10, offset=1, classes=[7, 2]).tolist() == [7, 2, 7, 2]


@pytest.fixture
def accelerator():
    yield Accelerator(cpu=True)
    AcceleratorState._reset_state(reset_partial_state=True)


def test_a_class_filtered_run_is_sampled_and_read_on_its_classes(accelerator):
    digits = load_digits_dataset(32)
    sevens = digits.filter(lambda label: label == 7, input_columns="label")
    evaluation = RunEvaluation(
        dataset="hfgen/digits",
        split="test",
        train=sevens["train"],
        evaluation=sevens["test"],
        feature_extractor=load_digits_feature_extractor(),
        note="",
        classes=[7],
    )
    eval_dataset = sevens["test"].with_transform(image_transform(32))
    real_sevens = torch.stack([eval_dataset[i]["pixel_values"] for i in range(len(eval_dataset))])
    asked = []

    def sample(batch_size, labels, generator):  # a "generator" that returns real sevens: what a perfect one would
        asked.append(labels)
        picks = torch.randint(len(real_sevens), (batch_size,), generator=generator)
        return real_sevens[picks]

    metrics = evaluate_generator(sample, evaluation, eval_dataset, accelerator, num_samples=20, seed=0, num_classes=10)
    assert torch.cat(asked).unique().tolist() == [7]
    assert metrics["class_accuracy"] > 0.9  # read as sevens; sampling all ten labels would have given about 0.1


def test_balanced_labels_cycle_through_the_classes():
    assert balanced_labels(12, 10).tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert balanced_labels(3, 10, offset=9).tolist() == [9, 0, 1]
