"""The training core knows no family: a new family adds files and changes nothing in hfgen/training/."""

import ast
from pathlib import Path

import pytest

import hfgen

TRAINING = Path(hfgen.__file__).parent / "training"
CORE_MODULES = ["cli", "arguments", "runs", "checkpointing", "ema", "redaction", "evaluation", "hub", "curves"]
KIND_MODULES = ["adversarial", "augment", "diffusion", "progressive", "translation", "vision_language"]


def imported_modules(path: Path) -> set[str]:
    """Absolute names of what the module at `path` imports (relative imports resolved inside hfgen.training)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = {0: "", 1: "hfgen.training", 2: "hfgen"}[node.level]
            module = ".".join(part for part in (base, node.module) if part)
            names.add(module)
    return names


def test_every_training_module_is_either_core_or_a_kind_of_training():
    assert {path.stem for path in TRAINING.glob("*.py")} - {"__init__"} == set(CORE_MODULES + KIND_MODULES)


@pytest.mark.parametrize("module", CORE_MODULES + KIND_MODULES)
def test_training_modules_import_no_model_or_pipeline(module):
    for name in imported_modules(TRAINING / f"{module}.py"):
        assert not name.startswith(("hfgen.models", "hfgen.pipelines")), f"hfgen/training/{module}.py imports {name}"


@pytest.mark.parametrize("module", CORE_MODULES)
def test_the_core_does_not_depend_on_a_kind_of_training(module):
    kinds = {f"hfgen.training.{kind}" for kind in KIND_MODULES}
    assert not imported_modules(TRAINING / f"{module}.py") & kinds
