import math
import re
import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard

import hfgen
from hfgen.model_card import EvalMetric, available_families, render_model_card

REPO_ROOT = Path(__file__).resolve().parents[1]

DIGITS = {"dataset_name": "hfgen digits", "dataset_type": "hfgen/digits", "dataset_split": "test"}


def metrics() -> list[EvalMetric]:
    return [
        EvalMetric(name="PSNR (test)", type="psnr", value=23.4, **DIGITS),
        EvalMetric(name="digits-FID", type="fid", value=np.float32(12.5), **DIGITS),
        EvalMetric(name="PSNR (train)", type="psnr", value=25.0, **{**DIGITS, "dataset_split": "train"}),
    ]


def template_values(**changes) -> dict:
    values = {
        "repo_id_or_path": "someone/vae-digits",
        "protocol": "PSNR of posterior-mean reconstructions of the 360 held-out digits; FID on classifier features.",
        "training_args": {"learning_rate": 0.001, "train_batch_size": 64, "kl_weight": 1.0},
        "samples_image": "samples.png",
    }
    return {**values, **changes}


def render(**changes):
    arguments = {
        "family": "vae",
        "model_name": "vae-digits",
        "metrics": metrics(),
        "pipeline_tag": "unconditional-image-generation",
        "datasets": ["hfgen/digits"],
        "tags": ["vae", "beta-vae"],
        "template_values": template_values(),
    }
    return render_model_card(**{**arguments, **changes})


def python_block(text: str) -> str:
    return re.search(r"```python\n(.*?)```", text, flags=re.DOTALL).group(1)


# --- rendering, saving, loading ---


def test_eval_results_survive_save_and_load(tmp_path):
    render().save(tmp_path / "README.md")
    loaded = ModelCard.load(tmp_path / "README.md")

    assert loaded.data.model_name == "vae-digits"
    results = {(result.metric_name, result.dataset_split): result for result in loaded.data.eval_results}
    assert set(results) == {("PSNR (test)", "test"), ("digits-FID", "test"), ("PSNR (train)", "train")}
    assert results["PSNR (test)", "test"].metric_type == "psnr"
    assert results["PSNR (test)", "test"].metric_value == 23.4
    assert results["digits-FID", "test"].metric_type == "fid"
    fid = results["digits-FID", "test"].metric_value
    assert fid == 12.5 and type(fid) is float
    assert results["PSNR (train)", "train"].metric_value == 25.0
    for result in results.values():
        assert result.task_type == "unconditional-image-generation"
        assert (result.dataset_name, result.dataset_type) == ("hfgen digits", "hfgen/digits")


def test_front_matter_survives_save_and_load(tmp_path):
    render().save(tmp_path / "README.md")
    data = ModelCard.load(tmp_path / "README.md").data

    assert data.library_name == "hfgen"
    assert data.tags == ["hfgen", "vae", "beta-vae"]
    assert data.pipeline_tag == "unconditional-image-generation"
    assert data.datasets == ["hfgen/digits"]
    assert (tmp_path / "README.md").read_text().startswith("---\n")


def test_body_has_the_loading_snippet_samples_metrics_protocol_and_settings():
    text = render().text
    assert text.lstrip().startswith("# vae-digits")
    snippet = python_block(text)
    assert 'hfgen.VAEPipeline.from_pretrained("someone/vae-digits")' in snippet
    assert 'hfgen.VAEModel.from_pretrained("someone/vae-digits", subfolder="vae")' in snippet
    assert 'transformers.AutoModel.from_pretrained("someone/vae-digits", subfolder="vae")' in snippet
    assert snippet.index("import hfgen") < snippet.index("transformers.AutoModel")
    assert "![samples](samples.png)" in text
    assert "| PSNR (test) | 23.4 | hfgen digits | test |" in text
    assert "| digits-FID | 12.5 | hfgen digits | test |" in text
    assert template_values()["protocol"] in text
    assert "| `learning_rate` | `0.001` |" in text and "| `train_batch_size` | `64` |" in text


def test_loading_snippet_runs_against_a_saved_pipeline(tiny_vae, tmp_path):
    folder = tmp_path / "vae-digits"
    hfgen.VAEPipeline(vae=tiny_vae).save_pretrained(folder)
    card = render(template_values=template_values(repo_id_or_path=str(folder)))
    namespace = {}
    exec(python_block(card.text), namespace)

    assert isinstance(namespace["pipeline"], hfgen.VAEPipeline)
    for name in ("vae", "same_vae"):
        model = namespace[name]
        assert type(model) is hfgen.VAEModel
        assert torch.equal(model.decoder.conv_out.weight, tiny_vae.decoder.conv_out.weight)
    assert len(namespace["images"]) == 4


def test_optional_values_appear_only_when_given():
    plain = render().text
    assert "Training started from" not in plain and "optimizer steps" not in plain
    text = render(template_values=template_values(base_model="someone/vae-base", global_step=1200)).text
    assert "Training started from the weights of `someone/vae-base`." in text
    assert "after 1200 optimizer steps" in text


def test_a_card_without_metrics_has_no_model_index(tmp_path):
    card = render(metrics=[])
    assert "model-index" not in str(card)
    assert "No evaluation was run for this model." in card.text
    card.save(tmp_path / "README.md")
    assert not ModelCard.load(tmp_path / "README.md").data.eval_results


def test_numeric_values_of_numpy_type_become_plain_floats():
    metric = EvalMetric(name="SSIM", type="ssim", value=np.float64(0.75), **DIGITS)
    assert type(metric.value) is float and metric.value == 0.75
    assert type(EvalMetric(name="count", type="count", value=np.int64(3), **DIGITS).value) is float


# --- bad input ---


def test_unknown_family():
    with pytest.raises(ValueError, match=r"unknown model card family 'dalle': templates exist for \[.*'vae'.*\]"):
        render(family="dalle")


@pytest.mark.parametrize("name", ["", "   "])
def test_empty_metric_name(name):
    with pytest.raises(ValueError, match="EvalMetric.name must be a non-empty string"):
        EvalMetric(name=name, type="psnr", value=20.0, **DIGITS)


def test_empty_metric_type_and_dataset():
    with pytest.raises(ValueError, match="EvalMetric.type must be a non-empty string"):
        EvalMetric(name="PSNR", type="", value=20.0, **DIGITS)
    with pytest.raises(ValueError, match="EvalMetric.dataset_type must be a non-empty string"):
        EvalMetric(name="PSNR", type="psnr", value=20.0, dataset_name="digits", dataset_type="")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, np.float32("nan")])
def test_non_finite_metric_value(value):
    with pytest.raises(ValueError, match="'PSNR': value must be finite"):
        EvalMetric(name="PSNR", type="psnr", value=value, **DIGITS)


@pytest.mark.parametrize("value", ["23.4", None, True, torch.tensor(23.4)])
def test_non_numeric_metric_value(value):
    with pytest.raises(ValueError, match="'PSNR': value must be a real number"):
        EvalMetric(name="PSNR", type="psnr", value=value, **DIGITS)


@pytest.mark.parametrize("model_name", ["", None])
def test_empty_model_name(model_name):
    with pytest.raises(ValueError, match="model_name must be a non-empty string"):
        render(model_name=model_name)


def test_metrics_must_be_eval_metrics():
    with pytest.raises(ValueError, match="metrics must be EvalMetric instances"):
        render(metrics=[{"name": "PSNR", "value": 23.4}])


def test_missing_template_value_is_named():
    values = template_values()
    del values["protocol"]
    with pytest.raises(ValueError, match="needs a value missing from template_values: 'protocol' is undefined"):
        render(template_values=values)


def test_template_values_may_not_replace_what_render_fills_in():
    with pytest.raises(ValueError, match=r"template_values may not set \['card_data', 'model_name'\]"):
        render(template_values=template_values(model_name="other", card_data="library_name: other"))


# --- packaging ---


def test_templates_are_package_data():
    template = resources.files("hfgen.model_cards").joinpath("vae.md")
    assert template.is_file()
    assert template.read_text(encoding="utf-8") == (REPO_ROOT / "model_cards" / "vae.md").read_text(encoding="utf-8")
    assert "vae" in available_families()


def test_the_wheel_holds_every_package_the_templates_and_the_shipped_weights(tmp_path):
    """Packages are found automatically (setup.py): a new family's folders ship without touching the build files."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path, REPO_ROOT],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("hfgen-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in (REPO_ROOT / "hfgen").rglob("__init__.py"):
        assert str(folder.relative_to(REPO_ROOT)) in names
    for template in (REPO_ROOT / "model_cards").glob("*.md"):
        assert f"hfgen/model_cards/{template.name}" in names
    assert "hfgen/metrics/digits_classifier/model.safetensors" in names


def test_card_metrics_name_the_data_the_split_and_the_extractor(tmp_path):
    from hfgen.model_card import card_metrics

    protocol = {"dataset": str(tmp_path), "split": "train[held-out 4 of 30 images, seed 0]", "extractor": "dinov2"}
    metrics = {"fid": 12.0, "psnr": 20.0, "diversity_ratio": 0.9}
    references = {"real_train_vs_evaluation": {"fid": 3.0}}
    names = {"fid": "FID", "psnr": "PSNR", "diversity_ratio": "diversity"}
    entries = {entry.type: entry for entry in card_metrics(metrics, references, protocol, names)}
    assert entries["fid"].name == "FID (dinov2)" and entries["psnr"].name == "PSNR"
    assert entries["fid_real_train_vs_evaluation"].name == "FID (dinov2) reference: real_train_vs_evaluation"
    # a local folder is named, but its type is the generic imagefolder, not a path on the user's disk
    assert entries["fid"].dataset_type == "imagefolder"
    assert entries["fid"].dataset_name == f"{tmp_path} (train[held-out 4 of 30 images, seed 0])"
    assert entries["fid"].dataset_split == "train[held-out 4 of 30 images, seed 0]"
    hub = card_metrics(metrics, None, {"dataset": "someone/faces", "split": "validation"}, names)
    assert hub[0].dataset_type == "someone/faces" and hub[0].name == "FID"
