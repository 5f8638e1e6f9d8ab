"""The one redaction every record of a run's arguments goes through."""

import argparse

from hfgen.training.redaction import REDACTED, recordable_arguments, tracker_hyperparameters


def test_secret_flags_are_redacted_and_unset_ones_stay_none():
    args = argparse.Namespace(
        hub_token="hf_abcdefghijkl",
        wandb_api_key="0123456789",
        client_secret=None,
        access_token_file="token.txt",
        learning_rate=1e-3,
        output_dir="run",
        max_new_tokens=20,
        tokenizer_name="bert-base-uncased",
    )
    recorded = recordable_arguments(args)
    assert recorded == {
        "hub_token": REDACTED,
        "wandb_api_key": REDACTED,
        "client_secret": None,
        "access_token_file": REDACTED,
        "learning_rate": 1e-3,
        "output_dir": "run",
        # a count of tokens and a tokenizer are kept: the folder is measured again with them (hfgen evaluate)
        "max_new_tokens": 20,
        "tokenizer_name": "bert-base-uncased",
    }
    assert args.hub_token == "hf_abcdefghijkl"  # the run itself still has it, for the upload


def test_a_secret_pasted_into_another_flag_is_removed_there_too():
    args = {
        "hub_token": "s3cr3t-value",
        "hub_model_id": "me/model-s3cr3t-value",
        "tags": ["x", "hf_0123456789abc"],
        "nested": {"path": "/data/hf_0123456789abc/images"},
    }
    recorded = recordable_arguments(args)
    assert "s3cr3t-value" not in str(recorded) and "hf_0123456789abc" not in str(recorded)
    assert recorded["hub_model_id"] == f"me/model-{REDACTED}"
    assert recorded["tags"] == ["x", REDACTED]


def test_tracker_hyperparameters_drop_secrets_and_non_scalars():
    args = {
        "hub_token": "hf_abcdefghijkl",
        "learning_rate": 0.1,
        "class_filter": [1, 2],
        "seed": 0,
        "flip": True,
        "resume_from_checkpoint": None,
    }
    assert tracker_hyperparameters(args) == {"learning_rate": 0.1, "seed": 0, "flip": True}
