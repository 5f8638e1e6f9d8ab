"""Stand-ins for NVIDIA's `torch_utils.persistence` and `dnnlib.util`, so that tests can write pickles in the on-disk
structure of NVIDIA's StyleGAN2-ADA snapshots without NVIDIA's code: they exist only while a test pickles."""

import sys
import types

import pytest
import torch


@pytest.fixture
def nvidia_modules(monkeypatch):
    """Stand-ins for NVIDIA's `torch_utils.persistence` and `dnnlib.util`, present only while a test pickles."""
    persistence = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):
        raise AssertionError("NVIDIA's hook must never be called by the reader")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    util = types.ModuleType("dnnlib.util")

    class EasyDict(dict):
        pass

    EasyDict.__module__, EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
    util.EasyDict = EasyDict
    for name, module in {
        "torch_utils": types.ModuleType("torch_utils"),
        "torch_utils.persistence": persistence,
        "dnnlib": types.ModuleType("dnnlib"),
        "dnnlib.util": util,
    }.items():
        monkeypatch.setitem(sys.modules, name, module)
    return persistence, util


def persistent(module: torch.nn.Module, class_name: str, source: str, persistence):
    """`module` pickled as NVIDIA's persistent classes pickle themselves: the hook and a meta dict with the class
    name, the module source and the instance's `__dict__`."""

    class Persistent(type(module)):
        def __reduce__(self):
            meta = dict(type="class", version=6, module_src=source, class_name=class_name, state=dict(self.__dict__))
            return persistence._reconstruct_persistent_obj, (meta,)

    module.__class__ = Persistent
    return module
