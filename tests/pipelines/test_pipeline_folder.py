"""Loading an hfgen pipeline by Hub repo id: through a snapshot of the repo, read here from the local Hub cache
(tests never reach the network; the cache is laid out as huggingface_hub writes it)."""

import os

import pytest
import torch
from huggingface_hub import constants

import hfgen


@pytest.fixture
def cached_repo():
    """A tiny VAEPipeline saved as the `main` snapshot of `someone/tiny-vae` in the test's Hub cache."""
    repo = os.path.join(constants.HF_HUB_CACHE, "models--someone--tiny-vae")
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = os.path.join(repo, "snapshots", commit)
    os.makedirs(os.path.join(repo, "refs"), exist_ok=True)
    with open(os.path.join(repo, "refs", "main"), "w") as file:
        file.write(commit)
    torch.manual_seed(0)
    config = hfgen.VAEConfig(
        in_channels=1, sample_size=16, block_out_channels=[8, 16], norm_num_groups=4, latent_channels=2
    )
    pipeline = hfgen.VAEPipeline(vae=hfgen.VAEModel(config).eval())
    pipeline.save_pretrained(snapshot)
    return "someone/tiny-vae", snapshot, pipeline


def test_a_repo_id_loads_through_its_snapshot(cached_repo):
    repo_id, snapshot, original = cached_repo
    loaded = hfgen.VAEPipeline.from_pretrained(repo_id)
    assert isinstance(loaded, hfgen.VAEPipeline)
    seeded = {"batch_size": 2, "output_type": "np"}
    expected = original(generator=torch.Generator().manual_seed(0), **seeded).images
    assert (loaded(generator=torch.Generator().manual_seed(0), **seeded).images == expected).all()


def test_diffusers_own_download_step_would_refuse_hfgen_components(cached_repo):
    # Why hfgen takes a snapshot first: diffusers' check of a repo's files refuses a component library it does not
    # know unless the repo holds a module file for it.
    from diffusers.pipelines.pipeline_loading_utils import _get_custom_components_and_folders

    repo_id, snapshot, _ = cached_repo
    config = hfgen.VAEPipeline.load_config(snapshot)
    files = [
        os.path.relpath(os.path.join(root, name), snapshot).replace(os.sep, "/")
        for root, _, names in os.walk(snapshot)
        for name in names
    ]
    with pytest.raises(ValueError, match="hfgen.models.vae.modeling_vae"):
        _get_custom_components_and_folders(repo_id, config, files)


def test_an_unknown_repo_id_fails_at_once_offline():
    with pytest.raises(OSError):
        hfgen.VAEPipeline.from_pretrained("someone/not-in-the-cache")
