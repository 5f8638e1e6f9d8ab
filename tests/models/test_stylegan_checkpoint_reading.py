"""Reading StyleGAN checkpoints without running their code: NVIDIA-style pickles of persistent networks (written here
in the same on-disk structure, with stand-ins for NVIDIA's modules that exist only while pickling), rosinality-style
`torch.save` files, and files that try to run code."""

import argparse
import collections
import os
import pickle
import sys

import pytest
import torch

from hfgen.models.stylegan.checkpoint_reading import PickledObject, UnsafeCheckpointError, read_checkpoint

from .nvidia_stand_ins import persistent

# Source code an NVIDIA persistent class would carry; the reader must keep it as text and never run it.
CARRIED_SOURCE = "import pathlib\npathlib.Path('{marker}').write_text('the carried source ran')\n"


def test_an_nvidia_snapshot_is_read_as_records_without_running_its_source(nvidia_modules, tmp_path):
    persistence, util = nvidia_modules
    marker = tmp_path / "ran.txt"
    source = CARRIED_SOURCE.format(marker=marker)
    torch.manual_seed(0)
    layer = persistent(torch.nn.Linear(3, 2), "FullyConnectedLayer", source, persistence)
    mapping = torch.nn.Module()
    mapping.fc0 = layer
    mapping.register_buffer("w_avg", torch.arange(4.0))
    mapping = persistent(mapping, "MappingNetwork", source, persistence)
    snapshot = {
        "G_ema": mapping,
        "training_set_kwargs": util.EasyDict(resolution=16, path="digits.zip"),
        "progress": {"cur_nimg": torch.tensor(1000)},
    }
    path = tmp_path / "network-snapshot.pkl"
    with open(path, "wb") as file:
        pickle.dump(snapshot, file)
    expected_weight = layer.weight.detach().clone()
    for name in ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util"):
        del sys.modules[name]  # as on a machine without NVIDIA's code

    read = read_checkpoint(str(path))

    assert not marker.exists(), "the carried module source was executed"
    network = read["G_ema"]
    assert isinstance(network, PickledObject) and network.class_name == "MappingNetwork"
    assert network.module_source == source
    assert torch.equal(network.attributes["_buffers"]["w_avg"], torch.arange(4.0))
    fc = network.attributes["_modules"]["fc0"]
    assert fc.class_name == "FullyConnectedLayer"
    weight = fc.attributes["_parameters"]["weight"]
    assert isinstance(weight, torch.nn.Parameter) and torch.equal(weight, expected_weight)
    kwargs = read["training_set_kwargs"]
    assert (kwargs.class_module, kwargs.class_name) == ("dnnlib.util", "EasyDict")
    assert kwargs.items == {"resolution": 16, "path": "digits.zip"}
    assert read["progress"]["cur_nimg"].item() == 1000


class CallsSystem:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class CallsEval:
    def __reduce__(self):
        return eval, ("__import__('os').getcwd()",)


@pytest.mark.parametrize("payload, named", [(CallsSystem, "system"), (CallsEval, "builtins.eval")])
def test_a_pickle_that_calls_a_function_is_refused_before_it_runs(tmp_path, payload, named):
    marker = tmp_path / "pwned"
    path = tmp_path / "network-snapshot.pkl"
    obj = payload(marker) if payload is CallsSystem else payload()
    path.write_bytes(pickle.dumps({"G_ema": obj}))
    with pytest.raises(UnsafeCheckpointError, match=named) as error:
        read_checkpoint(str(path))
    assert str(path) in str(error.value) and "refused" in str(error.value)
    assert not marker.exists()


def test_a_rosinality_checkpoint_is_read_with_its_training_flags(tmp_path):
    state = collections.OrderedDict(("style.1.weight", torch.randn(4, 4)) for _ in range(1))
    flags = argparse.Namespace(size=16, latent=4, n_mlp=2, channel_multiplier=2)
    for zip_format in (True, False):  # torch's zip archive and its legacy format
        path = tmp_path / f"checkpoint-{zip_format}.pt"
        torch.save({"g_ema": state, "args": flags}, path, _use_new_zipfile_serialization=zip_format)
        read = read_checkpoint(str(path))
        assert torch.equal(read["g_ema"]["style.1.weight"], state["style.1.weight"])
        assert read["args"] == flags


def test_a_torch_save_file_that_calls_a_function_is_refused(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"g_ema": CallsSystem(tmp_path / "pwned")}, path)
    with pytest.raises(UnsafeCheckpointError, match="restricted loader refused it"):
        read_checkpoint(str(path))
    assert not (tmp_path / "pwned").exists()


def test_missing_and_truncated_files_are_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match="is not a file"):
        read_checkpoint(str(tmp_path / "nothing.pkl"))
    path = tmp_path / "network-snapshot.pkl"
    path.write_bytes(pickle.dumps({"G_ema": torch.zeros(8)})[:40])
    with pytest.raises(ValueError, match="is not a readable checkpoint") as error:
        read_checkpoint(str(path))
    assert "\n" not in str(error.value)
