"""Shared test setup: no network, a throwaway Hugging Face cache, and tiny real components.

The environment is set when pytest imports this file, before any test module imports huggingface_hub, datasets or
evaluate, which read these variables once at import time.
"""

import os
import tempfile

_HF_HOME = tempfile.TemporaryDirectory(prefix="hfgen-tests-hf-home-")
os.environ["HF_HOME"] = _HF_HOME.name
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_EVALUATE_OFFLINE"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

from hfgen import VAEConfig, VAEModel  # noqa: E402
from hfgen.data import image_transform, load_digits_dataset  # noqa: E402

# The test models are tiny: one thread runs them fastest, and on a busy 2-core machine two threads that wait on
# each other made a forward pass ~80x slower (0.7 s instead of 9 ms).
torch.set_num_threads(1)


@pytest.fixture
def tiny_vae_config() -> VAEConfig:
    """16x16 greyscale images to a 2 x 8 x 8 latent, 8 and 16 feature channels."""
    return VAEConfig(in_channels=1, sample_size=16, block_out_channels=[8, 16], norm_num_groups=4, latent_channels=2)


@pytest.fixture
def tiny_vae(tiny_vae_config) -> VAEModel:
    """A randomly initialised VAE (seeded, so every test sees the same weights), in eval mode."""
    torch.manual_seed(0)
    return VAEModel(tiny_vae_config).eval()


@pytest.fixture(scope="session")
def digits16():
    """The built-in digits at 16x16 pixels, loaded once per session."""
    return load_digits_dataset(16)


@pytest.fixture(scope="session")
def digit_batch(digits16) -> torch.Tensor:
    """Eight real training digits (two each of 0-3) as a `(8, 1, 16, 16)` tensor in [-1, 1]."""
    labels = digits16["train"]["label"]
    indices = [i for digit in range(4) for i in [j for j, label in enumerate(labels) if label == digit][:2]]
    examples = digits16["train"].select(indices)[:]
    return torch.stack(image_transform(16)(examples)["pixel_values"])
