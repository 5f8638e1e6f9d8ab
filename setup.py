"""Package discovery: every package under hfgen/ is found automatically (a new family adds folders and touches
nothing here), plus the model card templates, which live in the repository's top-level model_cards/ folder and ship
inside the wheel as `hfgen.model_cards`. pyproject.toml's `packages.find` cannot add a package from outside the
folder it searches, so this one mapping is written here; everything else is in pyproject.toml."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["hfgen", "hfgen.*"]) + ["hfgen.model_cards"],
    package_dir={"hfgen.model_cards": "model_cards"},
)
