"""The shared flags and what they resolve to once the data is known."""

import argparse

import pytest
from datasets import Dataset, DatasetDict
from PIL import Image

from hfgen.training.arguments import (
    add_data_arguments,
    add_run_arguments,
    check_run_arguments,
    resolve_color_mode,
    resolve_max_train_steps,
)


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


def test_the_default_output_folder_is_named_after_the_data():
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


def test_space_is_refused_in_one_line_for_folders_without_a_demo(capsys):
    def parse(family, *flags):
        parser = argparse.ArgumentParser(prog=f"train_{family}.py")
        add_data_arguments(parser, "hfgen/digits")
        add_run_arguments(parser, family=family)
        args = parser.parse_args(list(flags))
        check_run_arguments(parser, args)
        return args

    assert parse("owlvit", "--space").space  # transformers folders have demos too
    with pytest.raises(SystemExit):
        parse("new-family", "--space")  # a family whose folders have no demo module yet
    assert "--space: new-family folders have no Gradio demo yet" in capsys.readouterr().err
