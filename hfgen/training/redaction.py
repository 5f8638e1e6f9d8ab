"""One place where a run's arguments are made safe to write down.

Everything a training script records about its arguments (`training_args.json`, the run record, the model card,
the trackers' hyper-parameters, a `--dry_run` print) goes through `recordable_arguments`, so a Hub token or any other
secret given on the command line never reaches a file that `--push_to_hub` uploads or a log a user shares.

The safest token is the one never passed as a flag: `hf auth login` (or the `HF_TOKEN` environment variable) lets
`huggingface_hub` find it by itself, and the scripts then need no `--hub_token` at all.
"""

import argparse
import re

REDACTED = "<redacted>"

# Flags whose value is a secret by name: --hub_token, --wandb_api_key, --password, --client_secret, ... A count of
# tokens (--max_new_tokens) or a tokenizer's name is not a token.
SECRET_NAME = re.compile(r"(token(?!s|izer)|secret|password|passwd|api_key|apikey|credential)", re.IGNORECASE)

# Values that are secrets whatever flag carries them: Hugging Face access tokens start with "hf_".
SECRET_VALUE = re.compile(r"\bhf_[A-Za-z0-9]{8,}")


def is_secret_name(name: str) -> bool:
    return SECRET_NAME.search(name) is not None


def redact_value(value, secrets: list[str]):
    """`value` with every secret string in it replaced by `REDACTED`, recursing into lists, tuples and dicts."""
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        return SECRET_VALUE.sub(REDACTED, value)
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(item, secrets) for item in value)
    if isinstance(value, dict):
        return {key: redact_value(item, secrets) for key, item in value.items()}
    return value


def secret_values(args: argparse.Namespace | dict) -> list[str]:
    """The values of the set arguments named like a secret."""
    arguments = vars(args) if isinstance(args, argparse.Namespace) else args
    return [value for name, value in arguments.items() if is_secret_name(name) and isinstance(value, str) and value]


def recordable_arguments(args: argparse.Namespace | dict) -> dict:
    """A copy of the run's arguments that is safe to write anywhere.

    Arguments named like a secret (`hub_token`, `*_api_key`, `*password*`, ...) that were set become `"<redacted>"`;
    their values, and anything shaped like a Hugging Face token, are also removed from every other argument (a token
    pasted into `--hub_model_id` or a path stays out of the record too). Unset secrets stay `None`, so the record
    still shows that no token was passed.
    """
    arguments = dict(vars(args) if isinstance(args, argparse.Namespace) else args)
    secrets = secret_values(arguments)
    return {
        name: (REDACTED if value is not None else None) if is_secret_name(name) else redact_value(value, secrets)
        for name, value in arguments.items()
    }


def tracker_hyperparameters(args: argparse.Namespace | dict) -> dict:
    """The arguments TensorBoard (or any tracker) can store as hyper-parameters: scalars and strings, secrets
    removed altogether (a tracker has no use for a redaction marker)."""
    return {
        name: value
        for name, value in recordable_arguments(args).items()
        if isinstance(value, (int, float, str, bool)) and not is_secret_name(name)
    }
