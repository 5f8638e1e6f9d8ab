"""Model cards for hfgen runs: `huggingface_hub.ModelCard`s rendered from the templates in `model_cards/`.

Each family has one template, `model_cards/<family>.md` in the repository, installed as the package
`hfgen.model_cards`. A template is a Jinja body under a `{{ card_data }}` front matter block, as for
`ModelCard.from_template`. The front matter holds the Hub metadata (`library_name: hfgen`, tags, `pipeline_tag`,
datasets) and a `model-index` with the measured metrics, so `ModelCard.load(path).data.eval_results` gives them
back.

Example:

```python
>>> from hfgen.model_card import EvalMetric, render_model_card
>>> card = render_model_card(
...     family="vae",
...     model_name="vae-digits",
...     metrics=[EvalMetric(name="PSNR (test)", type="psnr", value=23.4, dataset_name="hfgen digits",
...                         dataset_type="hfgen/digits", dataset_split="test")],
...     pipeline_tag="unconditional-image-generation",
...     datasets=["hfgen/digits"],
...     tags=["vae"],
...     template_values={"repo_id_or_path": "vae-digits", "protocol": "PSNR of posterior-mean reconstructions.",
...                      "training_args": {"learning_rate": 1e-3}, "samples_image": "samples.png"},
... )
>>> card.save("vae-digits/README.md")
```
"""

import math
import numbers
import os
from dataclasses import dataclass
from importlib import resources

import jinja2
from huggingface_hub import EvalResult, ModelCard, ModelCardData

TEMPLATE_PACKAGE = "hfgen.model_cards"
LIBRARY_NAME = "hfgen"

# Names render_model_card puts in the template context itself; template_values may not override them.
RESERVED_TEMPLATE_NAMES = ("card_data", "model_name", "eval_metrics")


@dataclass
class EvalMetric:
    """One measured number for a model card, written to the card's `model-index` and its metrics table.

    Args:
        name (`str`):
            Name shown on the card, e.g. `"PSNR (test)"`.
        type (`str`):
            Metric identifier, e.g. `"psnr"` or `"fid"`.
        value (`float`):
            The measured value; must be a finite real number (call `.item()` on a tensor first).
        dataset_name (`str`):
            Readable name of the evaluation data, e.g. `"hfgen digits"`.
        dataset_type (`str`):
            Identifier of the evaluation data, e.g. `"hfgen/digits"` or a Hub dataset id.
        dataset_split (`str`, *optional*):
            Split the metric was measured on, e.g. `"test"`.
    """

    name: str
    type: str
    value: float
    dataset_name: str
    dataset_type: str
    dataset_split: str | None = None

    def __post_init__(self):
        for field in ("name", "type", "dataset_name", "dataset_type"):
            text = getattr(self, field)
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"EvalMetric.{field} must be a non-empty string, got {text!r}")
        if isinstance(self.value, bool) or not isinstance(self.value, numbers.Real):
            raise ValueError(
                f"EvalMetric {self.name!r}: value must be a real number (use .item() on tensors), got {self.value!r}"
            )
        if not math.isfinite(self.value):
            raise ValueError(f"EvalMetric {self.name!r}: value must be finite, got {self.value}")
        # A plain float: NumPy scalars would be dumped to YAML as Python object tags.
        self.value = float(self.value)

    def to_eval_result(self, task_type: str) -> EvalResult:
        """The `huggingface_hub.EvalResult` of this metric, for a model whose task is `task_type`."""
        return EvalResult(
            task_type=task_type,
            dataset_type=self.dataset_type,
            dataset_name=self.dataset_name,
            dataset_split=self.dataset_split,
            metric_type=self.type,
            metric_name=self.name,
            metric_value=self.value,
        )


def available_families() -> list[str]:
    """Families that have a model card template, e.g. `["vae"]`."""
    templates = resources.files(TEMPLATE_PACKAGE).iterdir()
    return sorted(template.name.removesuffix(".md") for template in templates if template.name.endswith(".md"))


def render_model_card(
    family: str,
    model_name: str,
    metrics: list[EvalMetric],
    pipeline_tag: str,
    datasets: list[str] | None = None,
    tags: list[str] | None = None,
    template_values: dict | None = None,
) -> ModelCard:
    """Render the model card of a trained `family` model from `model_cards/<family>.md`.

    Args:
        family (`str`):
            Model family; picks the template, e.g. `"vae"` (see [`available_families`]).
        model_name (`str`):
            Title of the card and name of the model in its `model-index`.
        metrics (`list[EvalMetric]`):
            Measured metrics, written to the `model-index` and to the card's metrics table. May be empty.
        pipeline_tag (`str`):
            Hub task of the model, e.g. `"unconditional-image-generation"`; also the task of every metric.
        datasets (`list[str]`, *optional*):
            Identifiers of the training data.
        tags (`list[str]`, *optional*):
            Hub tags, added to `"hfgen"` and `family`.
        template_values (`dict`, *optional*):
            Values of the placeholders the template body uses besides the ones filled in here (`card_data`,
            `model_name`, `eval_metrics`); each template lists those it needs at its top.

    Returns:
        `huggingface_hub.ModelCard`: save it with `card.save(folder / "README.md")`.

    Raises:
        `ValueError`: for an unknown family, an empty model name, metrics that are not `EvalMetric`s, template values
        that clash with the reserved names, or a template placeholder without a value.
    """
    # 1. check inputs
    families = available_families()
    if family not in families:
        raise ValueError(f"unknown model card family {family!r}: templates exist for {families}")
    if not isinstance(model_name, str) or not model_name.strip():
        raise ValueError(f"model_name must be a non-empty string, got {model_name!r}")
    for metric in metrics:
        if not isinstance(metric, EvalMetric):
            raise ValueError(f"metrics must be EvalMetric instances, got {metric!r}")
    template_values = dict(template_values or {})
    clashes = sorted(set(template_values) & set(RESERVED_TEMPLATE_NAMES))
    if clashes:
        raise ValueError(f"template_values may not set {clashes}: render_model_card fills them in itself")

    # 2. front matter: Hub metadata and the model-index of the metrics
    card_data = ModelCardData(
        library_name=LIBRARY_NAME,
        tags=[LIBRARY_NAME, family, *(tags or [])],
        pipeline_tag=pipeline_tag,
        datasets=list(datasets) if datasets else None,
        model_name=model_name,
        eval_results=[metric.to_eval_result(pipeline_tag) for metric in metrics] or None,
    )

    # 3. body: unlike `ModelCard.from_template`, a placeholder without a value is an error, not an empty string
    template = (resources.files(TEMPLATE_PACKAGE) / f"{family}.md").read_text(encoding="utf-8")
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    try:
        content = environment.from_string(template).render(
            card_data=card_data.to_yaml(), model_name=model_name, eval_metrics=list(metrics), **template_values
        )
    except jinja2.UndefinedError as error:
        raise ValueError(
            f"model card template {family}.md needs a value missing from template_values: {error}"
        ) from error
    return ModelCard(content)


# Metrics measured through a feature extractor, whose name goes into their title.
EXTRACTOR_METRICS = {"fid", "kid_mean", "inception_score_mean", "precision", "recall"}


def card_metrics(metrics: dict, references: dict | None, protocol: dict, names: dict) -> list[EvalMetric]:
    """The model-index entries of a run: the metrics of `names` (a key-to-title mapping) that were measured, and the
    FID of each reference, all labelled with the data and split the protocol names (never assumed)."""
    dataset = str(protocol.get("dataset") or "unknown data")
    split = protocol.get("split")
    # A local folder is named on the card, but its type is the generic "imagefolder", not a path on someone's disk.
    dataset_type = protocol.get("dataset_type") or ("imagefolder" if os.path.exists(dataset) else dataset)
    labels = dict(
        dataset_name=f"{dataset} ({split})" if split else dataset, dataset_type=dataset_type, dataset_split=split
    )
    # FID and its kin mean nothing without their extractor: name it, so the Hub does not read them as Inception's.
    extractor = protocol.get("extractor")

    def title(key: str) -> str:
        return f"{names[key]} ({extractor})" if extractor and key in EXTRACTOR_METRICS else names[key]

    entries = [
        EvalMetric(name=title(key), type=key, value=float(metrics[key]), **labels) for key in names if key in metrics
    ]
    for reference, values in (references or {}).items():
        entries.append(
            EvalMetric(
                name=f"FID ({extractor}) reference: {reference}",
                type=f"fid_{reference}",
                value=float(values["fid"]),
                **labels,
            )
        )
    return entries


__all__ = ["EvalMetric", "available_families", "card_metrics", "render_model_card"]
