"""Where a saved folder's family keeps its per-folder tools (`demo`, `evaluation`), found without a central list.

A pipeline folder (`model_index.json`) belongs to the package of the pipeline class it names: `hfgen.pipelines.gan`
holds `GANPipeline`, and its `demo.py` / `evaluation.py` serve GAN folders. A model folder (a transformers or diffusers
`config.json`, a LoRA adapter on one, or diffusers LoRA weights) belongs to the hfgen package, under `hfgen.models` or
`hfgen.pipelines`, whose `FOLDER_ARCHITECTURES` lists the class its config records (`CLIPModel` is served by
`hfgen.models.clip_heads`). A new family adds its modules and
declares itself there; nothing here names the families.

A model folder that works inside a pipeline (a ControlNet, LoRA weights) is loaded as that pipeline by its family's
`folders.load_folder_pipeline(folder, architecture)`; the commands then treat it as a pipeline folder.
"""

import importlib
import importlib.util
import json
import pkgutil

from .models.modeling_utils import folder_architecture, folder_file
from .pipelines.sampling import load_pipeline, pipeline_class_of


def holds_pipeline(folder: str) -> bool:
    """Whether the folder (or Hub repo) is a pipeline folder (`model_index.json`), rather than one model."""
    return folder_file(folder, "model_index.json") is not None


def pipeline_family_module(pipeline_class: type, kind: str):
    """The `kind` module (`"demo"`, `"evaluation"`) of the package that holds `pipeline_class`, or None."""
    family = pipeline_class.__module__.rsplit(".", 1)[0]
    if importlib.util.find_spec(f"{family}.{kind}") is None:
        return None
    return importlib.import_module(f"{family}.{kind}")


def heads_family_module(architecture: str, kind: str):
    """The `kind` module of the hfgen package (under `hfgen.models` or `hfgen.pipelines`) whose
    `FOLDER_ARCHITECTURES` lists `architecture`, or None."""
    from . import models, pipelines

    for parent in (models, pipelines):
        for package in pkgutil.iter_modules(parent.__path__):
            if not package.ispkg:
                continue
            family = importlib.import_module(f"{parent.__name__}.{package.name}")
            if architecture in getattr(family, "FOLDER_ARCHITECTURES", ()):
                name = f"{family.__name__}.{kind}"
                return importlib.import_module(name) if importlib.util.find_spec(name) is not None else None
    return None


def folder_family(folder: str, kind: str):
    """`(what the folder holds, its family's kind module or None)`: the pipeline class (pipeline folders) or the
    architecture name (model folders). A folder that holds neither is a `ValueError` naming it."""
    if holds_pipeline(folder):
        pipeline_class = pipeline_class_of(folder)
        return pipeline_class, pipeline_family_module(pipeline_class, kind)
    architecture = folder_architecture(folder)
    return architecture, heads_family_module(architecture, kind)


def recorded_arguments(folder: str) -> dict:
    """The resolved flags of the run that saved the folder (`training_args.json`), or {} for a folder without one."""
    path = folder_file(folder, "training_args.json")
    if path is None:
        return {}
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def load_folder_pipeline(folder: str):
    """The pipeline a folder is used as: a pipeline folder's own, or the one its family's `folders` module builds
    around a model folder (a ControlNet or LoRA weights on their run's base); None for a model folder used alone."""
    if holds_pipeline(folder):
        return load_pipeline(folder)
    architecture, module = folder_family(folder, "folders")
    return None if module is None else module.load_folder_pipeline(folder, architecture)
