"""Reading the StyleGAN checkpoints people have, without running any code from them.

NVIDIA's StyleGAN2-ADA and StyleGAN3 `network-snapshot.pkl` files are plain pickles of their networks, and their
networks are "persistent" classes: each one carries the source code of its module, which NVIDIA's own unpickler
executes (that is why loading them elsewhere fails with `No module named 'torch_utils'`, and why loading one from a
stranger runs the stranger's code). rosinality's `.pt` checkpoints are `torch.save` files of state dicts plus an
`argparse.Namespace` of the training flags.

[`read_checkpoint`] reads both kinds with an unpickler that rebuilds only tensors, numpy arrays and plain containers.
Every other class becomes a [`PickledObject`]: an inert record of the class's name and the state the pickle gives
it, built without importing or running the class. NVIDIA's persistent networks become such records too, with their
parameters, buffers and sub-modules as state; the module source they carry is kept as text and never executed. A
file that would call anything else (a function that is not a tensor or container rebuilder, a class's constructor)
is refused with an [`UnsafeCheckpointError`] that names it.
"""

import argparse
import codecs
import collections
import io
import os
import pickle
import zipfile

import numpy
import torch


class UnsafeCheckpointError(ValueError):
    """A checkpoint that would run code other than tensor and container rebuilding to be read."""


class PickledObject:
    """An object of a class the checkpoint names, rebuilt as a record and never as that class: `class_module` and
    `class_name` say what it was, `state` holds what the pickle sets on it (for NVIDIA's networks: their `__dict__`,
    with `_parameters`, `_buffers` and `_modules`), `items` / `list_items` what a dict or list subclass held, and
    `module_source` the source code an NVIDIA persistent class carries (text, never executed)."""

    class_module = ""
    class_name = ""

    def __init__(self):
        self.state = None
        self.items = {}
        self.list_items = []
        self.module_source = None

    def __setstate__(self, state):
        self.state = state

    def __setitem__(self, key, value):
        self.items[key] = value

    def append(self, value):
        self.list_items.append(value)

    def extend(self, values):
        self.list_items.extend(values)

    @property
    def attributes(self) -> dict:
        """The object's attributes: its state when the pickle set a `__dict__`, else {}."""
        if isinstance(self.state, dict):
            return self.state
        if isinstance(self.state, tuple) and len(self.state) == 2 and isinstance(self.state[0], dict):
            return self.state[0]  # (__dict__, __slots__ values)
        return {}

    def __repr__(self):
        return f"PickledObject({self.class_module}.{self.class_name})"


class _RecordClass(type):
    """The type of the record classes: pickle may create their instances (`__new__`, then state), but calling one
    (what a pickle does to run a constructor or a function) is refused."""

    def __call__(cls, *args, **kwargs):
        raise UnsafeCheckpointError(
            f"the checkpoint calls {cls.class_module}.{cls.class_name}(...) to rebuild an object: reading it would "
            "run that code, so it is refused (only tensors, numpy arrays and plain containers are rebuilt)"
        )


def _record_class(module: str, name: str) -> type:
    def new(cls, *args, **kwargs):
        instance = object.__new__(cls)
        PickledObject.__init__(instance)
        return instance

    return _RecordClass(name, (PickledObject,), {"class_module": module, "class_name": name, "__new__": new})


def _persistent_object(meta: dict) -> PickledObject:
    """What NVIDIA's `torch_utils.persistence._reconstruct_persistent_obj(meta)` rebuilds, as a record: the class
    name and state from `meta`, its `module_src` kept as text."""
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("class_name"), str):
        raise UnsafeCheckpointError("the checkpoint holds a persistent object that is not a class instance")
    record_class = _record_class("torch_utils.persistence", meta["class_name"])
    record = record_class.__new__(record_class)
    record.state = meta.get("state")
    record.module_source = meta.get("module_src")
    return record


def _storage_from_bytes(data: bytes):
    """A tensor storage pickled by `pickle.dump` (torch writes it as a small `torch.save` file), read with torch's
    own restricted loader."""
    return torch.load(io.BytesIO(data), weights_only=True)


def _reconstructor(cls, base, state):
    """`copyreg._reconstructor` (how protocol 0 and 1 pickles build plain objects), for record classes only."""
    if not isinstance(cls, _RecordClass) or base is not object or state is not None:
        raise UnsafeCheckpointError(f"the checkpoint rebuilds {getattr(cls, '__name__', cls)!r} through copyreg")
    return cls.__new__(cls)


def _numpy_names() -> dict:
    """numpy's array rebuilders, under the module names of numpy 1 (`numpy.core`) and 2 (`numpy._core`)."""
    from numpy._core import multiarray

    names = {("numpy", "ndarray"): numpy.ndarray, ("numpy", "dtype"): numpy.dtype}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        names[(module, "_reconstruct")] = multiarray._reconstruct
        names[(module, "scalar")] = multiarray.scalar
    return names


# What a checkpoint may name and get the real thing: tensor and array rebuilders and containers; NVIDIA's
# persistent-object hook is answered by `_persistent_object` (a record, never NVIDIA's code).
ALLOWED_NAMES = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("_codecs", "encode"): codecs.encode,  # how protocol 2 pickles write bytes
    ("copyreg", "_reconstructor"): _reconstructor,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _persistent_object,
    **_numpy_names(),
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that answers the names in `ALLOWED_NAMES` with the real thing and every other name with a record
    class (see [`PickledObject`]): instances of it can be rebuilt, calling it is refused."""

    def find_class(self, module: str, name: str):
        allowed = ALLOWED_NAMES.get((module, name))
        return allowed if allowed is not None else _record_class(module, name)

    def persistent_load(self, pid):
        raise UnsafeCheckpointError(
            f"the pickle refers to external data ({pid!r}): a torch.save file is read with read_checkpoint, not as a "
            "plain pickle"
        )


def read_checkpoint(path: str):
    """The content of a StyleGAN checkpoint, read without running code from it:

    - a `torch.save` file (rosinality's `.pt`: a zip archive, or torch's legacy format) with torch's restricted
      loader (`weights_only=True`), `argparse.Namespace` allowed for the training flags;
    - any other file as a plain pickle (NVIDIA's `network-snapshot.pkl`) with [`RestrictedUnpickler`].

    A missing, truncated or foreign file is a `ValueError` naming it; a file that would run code, an
    [`UnsafeCheckpointError`].
    """
    if not os.path.isfile(path):
        raise ValueError(f"{path} is not a file: give a network-snapshot.pkl or a .pt checkpoint")
    if zipfile.is_zipfile(path) or _is_legacy_torch_file(path):
        with torch.serialization.safe_globals([argparse.Namespace]):
            try:
                return torch.load(path, map_location="cpu", weights_only=True)
            except pickle.UnpicklingError as error:
                first_line = str(error).strip().splitlines()[0]
                raise UnsafeCheckpointError(f"{path}: torch's restricted loader refused it ({first_line})") from None
    with open(path, "rb") as file:
        try:
            return RestrictedUnpickler(file).load()
        except UnsafeCheckpointError as error:
            raise UnsafeCheckpointError(f"{path}: {error}") from None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ValueError(f"{path} is not a readable checkpoint ({reason}): is it truncated?") from None


# How torch's legacy (pre-zip) serialisation starts: its magic number pickled with protocol 2 (compared as bytes, so
# nothing is unpickled to tell the format).
_LEGACY_PREFIX = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)[:-1]


def _is_legacy_torch_file(path: str) -> bool:
    with open(path, "rb") as file:
        return file.read(len(_LEGACY_PREFIX)) == _LEGACY_PREFIX
