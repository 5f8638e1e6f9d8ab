"""Defaults that hold on a small folder as on a large dataset."""

import argparse

import pytest
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from datasets import Dataset, DatasetDict
from PIL import Image

from hfgen.training.adversarial import SMALL_DATASET_IMAGES, make_augmentation
from hfgen.training.arguments import resolve_color_mode, resolve_max_train_steps


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
    assert resolve_max_train_steps(args, 2, 1, default_steps=880) == expected == args.max_train_steps


def images_dataset(modes):
    return DatasetDict({"train": Dataset.from_dict({"image": [Image.new(mode, (8, 8)) for mode in modes]})})


def test_epochs_are_counted_in_batches_before_grouping_them_into_steps():
    # one batch per epoch (80 images, batch 64) and 5 discriminator batches per step: 100 epochs are 20 steps, not 0
    args = argparse.Namespace(max_train_steps=None, num_train_epochs=100)
    assert resolve_max_train_steps(args, 1, 5, default_steps=880) == 20


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


def test_the_default_output_folder_is_named_after_the_data():
    from hfgen.training.arguments import add_data_arguments, add_run_arguments, check_run_arguments

    def output_dir(*flags):
        parser = argparse.ArgumentParser()
        add_data_arguments(parser, "hfgen/digits")
        add_run_arguments(parser, family="gan")
        args = parser.parse_args(list(flags))
        check_run_arguments(parser, args)
        return args.output_dir

    assert output_dir() == "gan-digits"
    assert output_dir("--dataset_name", "hfgen/faces") == "gan-faces"
    assert output_dir("--train_data_dir", "/home/me/my_faces/") == "gan-my_faces"
    assert output_dir("--train_data_dir", "x", "--output_dir", "mine") == "mine"
