"""What an hfgen pipeline adds to diffusers' folder format: generic loading and a clear error for the wrong folder.

Generic loading. `diffusers.DiffusionPipeline.from_pretrained(folder)` looks the `_class_name` of `model_index.json`
up in the `diffusers` package, where hfgen's pipelines are not. A `_class_name` of the form
`[module_file, class_name]` instead names a module file stored in the folder (a "custom pipeline"), which diffusers
imports through `get_class_from_dynamic_module`. So `save_pretrained` of an hfgen pipeline also writes
`hfgen_pipeline.py`, two lines that re-export the class from the installed hfgen package, and records
`"_class_name": ["hfgen_pipeline", "<Class>"]`. diffusers executes a module file found in a folder only when asked
to, local folders included, so the generic call is::

    diffusers.DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)

The components are then loaded as always, by importing the library recorded for each of them in
`model_index.json` (e.g. `["hfgen.models.vae.modeling_vae", "VAEModel"]`).

Loading with the class itself (`hfgen.VAEPipeline.from_pretrained(folder)`) reads that pair back as the plain class
name, so it needs no flag and runs no file from the folder; folders saved before the module file existed (a plain
`_class_name`) load as before.

The wrong folder. Before diffusers reads a local folder, the pipeline checks that the folder holds the components
it needs; if not, the `ValueError` names the folder, what it holds (the pipeline class in its `model_index.json`,
or the `model_type` of a lone model's `config.json`) and the class that loads it.
"""

import contextvars
import enum
import importlib
import inspect
import json
import os
import typing

import diffusers

PIPELINE_MODULE = "hfgen_pipeline"
"""Stem of the module file written next to `model_index.json`, and the first half of its `_class_name`."""

_MODULE_TEMPLATE = """\
# Written by {class_name}.save_pretrained so that diffusers' generic loader finds this folder's pipeline class:
#     diffusers.DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)
# It holds no code of its own: it re-exports the class from the installed package ({package}).
# {class_name}.from_pretrained(folder) does not read this file.
from {module} import {class_name}

__all__ = ["{class_name}"]
"""


def _import_path(pipeline_class: type) -> str | None:
    """The module a saved folder should import `pipeline_class` from, or None when no other process can import it.

    hfgen's own pipelines are re-exported from the flat `hfgen` namespace, which stays stable when files move.
    """
    import hfgen  # imported here: hfgen imports the pipelines, which import this module

    if getattr(hfgen, pipeline_class.__name__, None) is pipeline_class:
        return "hfgen"
    if pipeline_class.__module__ == "__main__":
        return None
    return pipeline_class.__module__


def hfgen_pipeline_classes() -> list[type]:
    """Every class that uses [`PipelineFolderMixin`] (hfgen's pipelines and any subclass of them), found at call
    time, so a new family is known as soon as its pipeline module is imported."""
    found, pending = [], list(PipelineFolderMixin.__subclasses__())
    while pending:
        subclass = pending.pop()
        found.append(subclass)
        pending.extend(subclass.__subclasses__())
    return found


def _component_classes(pipeline_class: type) -> dict[str, type]:
    """The components `pipeline_class` needs (its required `__init__` arguments) and their annotated classes."""
    parameters = inspect.signature(pipeline_class.__init__).parameters
    return {
        name: parameter.annotation
        for name, parameter in parameters.items()
        if name != "self" and parameter.default is inspect.Parameter.empty
    }


def _loader_for_pipeline(class_name: str) -> str:
    """How to load a folder whose `model_index.json` names `class_name`."""
    for pipeline_class in hfgen_pipeline_classes():
        if pipeline_class.__name__ == class_name:
            return f"{_import_path(pipeline_class) or pipeline_class.__module__}.{class_name}.from_pretrained"
    if isinstance(class_name, str) and hasattr(diffusers, class_name):
        return f"diffusers.{class_name}.from_pretrained"
    return "diffusers.DiffusionPipeline.from_pretrained"


def _loader_for_model(model_type) -> str:
    """How to use a lone model folder whose `config.json` has `model_type`."""
    for pipeline_class in hfgen_pipeline_classes():
        components = _component_classes(pipeline_class)
        for component, model_class in components.items():
            config_class = getattr(model_class, "config_class", None)
            if getattr(config_class, "model_type", None) == model_type:
                # hfgen's models are re-exported from `hfgen`; a transformers model (GroupViT) from `transformers`
                package = model_class.__module__.split(".")[0]
                others = "".join(f", {name}=..." for name in components if name != component)
                return (
                    f"load the model with {package}.{model_class.__name__}.from_pretrained(folder) and build "
                    f"hfgen.{pipeline_class.__name__}({component}=model{others})"
                )
    return "load it with its own model class (transformers.AutoModel.from_pretrained after `import hfgen`)"


def _loader_for_diffusers_model(folder: str, class_name: str) -> str:
    """How to use a lone diffusers model folder: the pipeline folder it belongs to, when it is one's component."""
    parent = os.path.dirname(os.path.abspath(folder))
    if os.path.isfile(os.path.join(parent, "model_index.json")):
        return f"it is the {os.path.basename(os.path.abspath(folder))}/ component of {parent}: give that folder"
    return f"load it with diffusers.{class_name}.from_pretrained(folder)"


def check_pipeline_folder(folder: str | os.PathLike, pipeline_class: type, provided: set[str] = frozenset()) -> None:
    """Raise a one-line `ValueError` when the local `folder` is not one that `pipeline_class` can load, with the
    components named in `provided` passed to `from_pretrained` (as in
    `LatentDiffusionControlNetPipeline.from_pretrained(base, controlnet=...)`, whose base folder has no ControlNet).

    A folder fits when its `model_index.json` lists every component `pipeline_class` needs, whatever pipeline saved
    it (as in diffusers, where `StableDiffusionImg2ImgPipeline` loads a `StableDiffusionPipeline` folder), each of a
    class the pipeline takes and with a saved config it accepts (`PipelineFolderMixin.component_config_problem`). A
    folder without `model_index.json` that holds a lone model (`config.json`) is named as such; one with neither file
    is left to diffusers, whose error names the missing `model_index.json`.
    """
    folder = os.fspath(folder)
    index_file = os.path.join(folder, "model_index.json")
    if not os.path.isfile(index_file):
        config_file = os.path.join(folder, "config.json")
        if os.path.isfile(config_file):
            config = _read_json(config_file)
            model_type = config.get("model_type")
            if model_type is None and isinstance(config.get("_class_name"), str):
                raise ValueError(
                    f"{folder} holds a single diffusers {config['_class_name']} (config.json) and no "
                    f"model_index.json, so {pipeline_class.__name__}.from_pretrained cannot load it: "
                    f"{_loader_for_diffusers_model(folder, config['_class_name'])}"
                )
            raise ValueError(
                f"{folder} holds a single model (config.json with model_type {model_type!r}) and no "
                f"model_index.json, so {pipeline_class.__name__}.from_pretrained cannot load it: "
                f"{_loader_for_model(model_type)}"
            )
        return
    index = _read_json(index_file)
    found = index.get("_class_name")
    found_name = found[1] if isinstance(found, list) and len(found) == 2 else found
    present = {name for name, value in index.items() if not name.startswith("_") and isinstance(value, list)}
    missing = sorted(set(_component_classes(pipeline_class)) - present - set(provided))
    if missing and found_name == pipeline_class.__name__:
        raise ValueError(
            f"{folder} is a {found_name} folder (model_index.json) without its {', '.join(missing)} "
            f"component: save the pipeline again with {found_name}.save_pretrained"
        )
    if missing:
        raise ValueError(
            f"{folder} is a {found_name} folder (model_index.json), not a {pipeline_class.__name__} one: "
            f"it has no {', '.join(missing)} component. Load it with "
            f"{_loader_for_pipeline(found_name)}({folder!r}), or pass "
            f"{', '.join(f'{name}=...' for name in missing)} to {pipeline_class.__name__}.from_pretrained"
        )
    for component, annotation in _component_classes(pipeline_class).items():
        if component in provided:
            continue
        recorded = index[component]
        if len(recorded) == 2 and recorded[1] is not None and not _fits(recorded, annotation):
            if found_name == pipeline_class.__name__:
                raise ValueError(
                    f"{folder} holds a {recorded[1]} as its {component}, which {found_name} cannot use: save the "
                    f"pipeline again with another {component}"
                )
            raise ValueError(
                f"{folder} is a {found_name} folder (model_index.json), not a {pipeline_class.__name__} one: its "
                f"{component} is a {recorded[1]}, which {pipeline_class.__name__} cannot use. Load it with "
                f"{_loader_for_pipeline(found_name)}({folder!r})"
            )
        config_file = os.path.join(folder, component, "config.json")
        if not os.path.isfile(config_file):
            continue  # a missing file is left to diffusers, whose error names it
        problem = pipeline_class.component_config_problem(component, _read_json(config_file))
        if problem is not None and found_name == pipeline_class.__name__:
            raise ValueError(f"{folder} holds a {component} that {problem}: save the pipeline again with another one")
        if problem is not None:
            raise ValueError(
                f"{folder} is a {found_name} folder (model_index.json), not a {pipeline_class.__name__} one: its "
                f"{component} {problem}. Load it with {_loader_for_pipeline(found_name)}({folder!r})"
            )


def _fits(recorded: list, annotation) -> bool:
    """Whether the component class recorded in model_index.json (`[library or module, class name]`) is one that an
    `__init__` argument annotated with `annotation` takes: a subclass of the class (or of a member of the union), or
    one of the names of an enum such as diffusers' `KarrasDiffusionSchedulers`. Classes that cannot be imported here
    are left to diffusers."""
    from diffusers.schedulers.scheduling_utils import SchedulerMixin

    library, class_name = recorded
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return class_name in annotation.__members__
    accepted = typing.get_args(annotation) or (annotation,)
    if not all(isinstance(accepted_class, type) for accepted_class in accepted):
        return True
    try:
        found = getattr(importlib.import_module(library), class_name)
    except (ImportError, AttributeError):
        return True
    if not (isinstance(found, type) and issubclass(found, accepted)):
        return False
    # Any scheduler is a SchedulerMixin, but only those with `step` drive a denoising loop: the continuous-time SDE
    # schedulers (ScoreSdeVe, ScoreSdeVp) step by `step_pred` / `step_correct` and belong to their own pipelines.
    return annotation is not SchedulerMixin or callable(getattr(found, "step", None))


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}): re-save the folder with save_pretrained") from None


# The folder `from_pretrained` has already checked (knowing which components were passed in), so that the
# `load_config` it calls does not check it again without knowing them.
_checked_folder = contextvars.ContextVar("hfgen_checked_folder", default=None)


class PipelineFolderMixin:
    """Mixed into every hfgen pipeline, before `DiffusionPipeline`: see the module docstring.

    It changes only how the pipeline's config is written (`save_config`, `to_json_string`) and read
    (`load_config`); `save_pretrained`, `from_pretrained` and `push_to_hub` stay diffusers' own.
    """

    diffusers_class_name: str | None = None
    """Set by a pipeline whose folders are those of a diffusers pipeline of that name (hfgen's `DDPMPipeline` and
    diffusers' `DDPMPipeline` hold the same components): it saves them as diffusers does, a plain `_class_name` and no
    module file, so `diffusers.DiffusionPipeline.from_pretrained(folder)` loads them without `trust_remote_code`."""

    @classmethod
    def component_config_problem(cls, component: str, config: dict) -> str | None:
        """What rules out a folder whose `component` was saved with `config` (its `config.json`), in words that follow
        "its <component>", or None when the pipeline can use it. The class recorded in `model_index.json` is checked
        already; a pipeline overrides this for what only the config shows (a `UNet2DModel` with a class embedding is
        a `UNet2DModel` too, but no unconditional one), so the wrong folder fails at loading, not at the first call."""
        return None

    def _writes_module_file(self) -> bool:
        return self.diffusers_class_name is None and _import_path(type(self)) is not None

    def save_config(self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs):
        """Write `hfgen_pipeline.py`, then `model_index.json` (through diffusers, which pushes both when asked)."""
        import_path = _import_path(type(self))
        if self._writes_module_file():
            os.makedirs(save_directory, exist_ok=True)
            package = "pip install hfgen" if import_path == "hfgen" else import_path
            text = _MODULE_TEMPLATE.format(class_name=type(self).__name__, module=import_path, package=package)
            with open(os.path.join(save_directory, f"{PIPELINE_MODULE}.py"), "w", encoding="utf-8") as file:
                file.write(text)
        super().save_config(save_directory, push_to_hub=push_to_hub, **kwargs)

    def to_json_string(self) -> str:
        """The config as diffusers writes it, with `_class_name` naming the module file written by `save_config`."""
        text = super().to_json_string()
        if self.diffusers_class_name is None and _import_path(type(self)) is None:
            return text
        config = json.loads(text)
        config["_class_name"] = self.diffusers_class_name or [PIPELINE_MODULE, type(self).__name__]
        return json.dumps(config, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """diffusers' `from_pretrained`, with a Hub repo id first downloaded whole by `huggingface_hub` and then loaded
        as a local folder.

        diffusers' own download step checks each component's library against the libraries it knows (diffusers,
        transformers, ...) and refuses `hfgen.models.vae.modeling_vae` and its kind unless the repo also holds a
        `vae/hfgen.models.vae.modeling_vae.py`; a snapshot has no such check, and loading from a folder imports the
        component classes from the installed hfgen as usual.
        """
        path = os.fspath(pretrained_model_name_or_path)
        if not os.path.isdir(path):
            from huggingface_hub import snapshot_download

            path = snapshot_download(
                path,
                revision=kwargs.pop("revision", None),
                cache_dir=kwargs.pop("cache_dir", None),
                token=kwargs.pop("token", None),
                local_files_only=bool(kwargs.pop("local_files_only", False)),
                force_download=bool(kwargs.pop("force_download", False)),
                proxies=kwargs.pop("proxies", None),
            )
        check_pipeline_folder(path, cls, provided={name for name in kwargs if name in _component_classes(cls)})
        token = _checked_folder.set(path)
        try:
            return super().from_pretrained(path, **kwargs)
        finally:
            _checked_folder.reset(token)

    @classmethod
    def load_config(cls, pretrained_model_name_or_path, *args, **kwargs):
        """diffusers' `load_config`, after checking a local folder, with `_class_name` read back as a plain name.

        The plain name makes diffusers use `cls` itself rather than importing the folder's module file, which it
        would only do with `trust_remote_code=True`.
        """
        path = os.fspath(pretrained_model_name_or_path)
        if kwargs.get("subfolder") is None and os.path.isdir(path) and _checked_folder.get() != path:
            check_pipeline_folder(path, cls)
        outputs = super().load_config(pretrained_model_name_or_path, *args, **kwargs)
        config = outputs[0] if isinstance(outputs, tuple) else outputs
        class_name = config.get("_class_name")
        if isinstance(class_name, list) and len(class_name) == 2 and class_name[0] == PIPELINE_MODULE:
            config["_class_name"] = class_name[1]
        return outputs
