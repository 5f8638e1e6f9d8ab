"""Defaults that hold on a small folder as on a large dataset."""

import argparse

import pytest
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from datasets import Dataset, DatasetDict
from PIL import Image

from hfgen.training.gan_runs import SMALL_DATASET_IMAGES, make_augmentation
from hfgen.training.runs import resolve_color_mode, resolve_max_train_steps


@pytest.mark.parametrize(
    "given,expected",
    [
        (dict(max_train_steps=None, num_train_epochs=None), 880),  # the script's default, whatever the data size
        (dict(max_train_steps=None, num_train_epochs=3), 6),  # 3 passes of 2 updates
        (dict(max_train_steps=5, num_train_epochs=3), 5),  # the explicit step count wins
    ],
)
def test_training_length_is_in_steps_unless_epochs_are_asked_for(given, expected):
    args = argparse.Namespace(**given)
    assert resolve_max_train_steps(args, updates_per_epoch=2, default_steps=880) == expected == args.max_train_steps


def images_dataset(modes):
    return DatasetDict({"train": Dataset.from_dict({"image": [Image.new(mode, (8, 8)) for mode in modes]})})


@pytest.mark.parametrize(
    "modes,expected",
    [(["L", "L"], "L"), (["L", "I;16", "LA"], "L"), (["L", "RGB"], "RGB"), (["P"], "RGB"), (["RGBA"], "RGB")],
)
def test_colour_mode_follows_the_data(modes, expected):
    args = argparse.Namespace(color_mode=None)
    assert resolve_color_mode(args, images_dataset(modes)) == expected == args.color_mode
    assert resolve_color_mode(argparse.Namespace(color_mode="RGB"), images_dataset(["L"])) == "RGB"


@pytest.fixture
def accelerator():
    """A real single-process Accelerator, whose process-wide state is reset afterwards (a test that later launches
    processes must not inherit it)."""
    yield Accelerator(cpu=True)
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.mark.parametrize(
    "num_images,expected",
    [(80, "ada"), (SMALL_DATASET_IMAGES - 1, "ada"), (SMALL_DATASET_IMAGES, "none"), (1437, "none")],
)
def test_auto_augmentation_turns_ada_on_for_small_datasets(num_images, expected, accelerator):
    args = argparse.Namespace(
        augment="auto", augment_probability=None, augment_policy="color,translation,cutout", ada_target=0.6
    )
    augment = make_augmentation(args, accelerator, num_images)
    assert args.augment == expected
    assert (augment is not None) == (expected == "ada")
    assert args.augment_probability == 0.0


def test_fixed_diffaugment_starts_at_probability_one(accelerator):
    args = argparse.Namespace(augment="diffaugment", augment_probability=None, augment_policy="color", ada_target=0.6)
    augment = make_augmentation(args, accelerator, 10)
    assert args.augment_probability == 1.0 and augment.probability == 1.0 and not augment.adaptive
