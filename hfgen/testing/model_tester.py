"""Shared tests for every hfgen `PreTrainedModel`, in the spirit of transformers' `ModelTesterMixin`.

A family's test class inherits [`ModelTesterMixin`] and says how to build a tiny model and its inputs:

```python
class TestVAEModel(ModelTesterMixin):
    model_class = hfgen.VAEModel
    output_name = "sample"

    def get_config(self):
        return hfgen.VAEConfig(in_channels=1, sample_size=16, block_out_channels=[8, 16], norm_num_groups=4)

    def get_inputs(self, batch_size=2):
        generator = torch.Generator().manual_seed(0)
        return {"pixel_values": torch.rand(batch_size, 1, 16, 16, generator=generator) * 2 - 1}

    def lora_config(self):
        return peft.LoraConfig(r=4, lora_alpha=4, target_modules=LORA_DECODER_TARGETS)

    def expected_buffers(self, model):
        return {}  # no buffers
```

pytest then runs every `test_*` method below for that class: saving and loading, determinism, seeded randomness,
`return_dict`, dtype and device moves, meta-device initialisation, missing buffers, LoRA (train, save, reload, merge),
the Auto classes and the errors for a wrong class or a damaged file. The tests use plain `assert`s; pytest is imported
inside the few methods that need `pytest.raises`, so importing this module needs no test dependency.
"""

import inspect
import os
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModel, PreTrainedConfig, PreTrainedModel

import hfgen


def all_hfgen_classes() -> tuple[list[type[PreTrainedModel]], list[type[PreTrainedConfig]]]:
    """hfgen's public model and config classes (from `hfgen.__all__`, so a new family is covered once exported)."""
    objects = [getattr(hfgen, name) for name in hfgen.__all__]
    models = [obj for obj in objects if isinstance(obj, type) and issubclass(obj, PreTrainedModel)]
    configs = [obj for obj in objects if isinstance(obj, type) and issubclass(obj, PreTrainedConfig)]
    return models, configs


def output_tensors(output: Any) -> list[torch.Tensor]:
    """The tensors of a model output (a `ModelOutput` or a tuple), with a distribution given by its parameters."""
    items = output.to_tuple() if hasattr(output, "to_tuple") else tuple(output)
    tensors = []
    for item in items:
        if isinstance(item, torch.Tensor):
            tensors.append(item)
        elif isinstance(getattr(item, "parameters", None), torch.Tensor):  # e.g. DiagonalGaussianDistribution
            tensors.append(item.parameters)
    return tensors


def cast_inputs(inputs: dict[str, Any], dtype: torch.dtype | None = None, device: str | None = None) -> dict[str, Any]:
    """Floating-point tensors to `dtype` and every tensor to `device`; other values unchanged."""
    cast = {}
    for name, value in inputs.items():
        if isinstance(value, torch.Tensor):
            value = value.to(device=device, dtype=dtype if dtype is not None and value.is_floating_point() else None)
        cast[name] = value
    return cast


class ModelTesterMixin:
    """Tests shared by every hfgen model. A subclass sets `model_class` and `output_name` and implements
    `get_config`, `get_inputs`, `lora_config` and `expected_buffers`; the attributes below say what else differs."""

    model_class: type[PreTrainedModel]
    """The class under test."""
    output_name: str = "sample"
    """The output field that the determinism, dtype and LoRA tests compare (`"sample"`, `"logits"`)."""
    seed: int = 0
    """Seed of the global RNG while the model is built (under `torch.random.fork_rng`: other tests are unaffected)."""
    random_call_kwargs: dict[str, Any] | None = None
    """Extra `forward` arguments that make the call random (e.g. `{"sample_posterior": True}`), for the test that a
    seeded `generator` reproduces it; None for a model whose forward takes no `generator`."""
    loaded_by_auto_model: bool = True
    """Whether `transformers.AutoModel` loads this class from its folder (False for a GAN discriminator: the config's
    model_type maps to the family's generator, and AutoModel must then refuse the discriminator's folder)."""

    # --- what a family provides ---

    def get_config(self) -> PreTrainedConfig:
        raise NotImplementedError

    def get_inputs(self, batch_size: int = 2) -> dict[str, Any]:
        """Keyword arguments of a deterministic `forward` call, built from seeded `torch.Generator`s."""
        raise NotImplementedError

    def lora_config(self):
        """A `peft.LoraConfig` with the family's recommended `target_modules`."""
        raise NotImplementedError

    def expected_buffers(self, model: PreTrainedModel) -> dict[str, torch.Tensor | None]:
        """Every persistent buffer of a freshly initialised `model` by name: its value, or None for a buffer drawn at
        random (which must then be finite and not constant)."""
        raise NotImplementedError

    def prepare_model(self, model: PreTrainedModel) -> None:
        """Changes to a freshly built model before a test uses it (e.g. non-zero noise strengths); none by default."""

    # --- helpers ---

    def build_model(self, config: PreTrainedConfig | None = None) -> PreTrainedModel:
        """The model in eval mode, seeded with `self.seed` without touching the global RNG state other tests see."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = self.model_class(config if config is not None else self.get_config())
            self.prepare_model(model)
        return model.eval()

    def run(self, model: PreTrainedModel, **changes) -> torch.Tensor:
        with torch.no_grad():
            return getattr(model(**{**self.get_inputs(), **changes}), self.output_name)

    def assert_buffers_initialised(self, model: PreTrainedModel) -> None:
        expected = self.expected_buffers(model)
        # named_parameters lists a tied weight once, under its source's name: the other name is no buffer either
        not_buffers = set(dict(model.named_parameters())) | set(model.all_tied_weights_keys)
        buffers = {name: tensor for name, tensor in model.state_dict().items() if name not in not_buffers}
        assert set(expected) == set(buffers), f"expected_buffers must list every buffer: {sorted(buffers)}"
        for name, value in expected.items():
            if value is None:
                assert torch.isfinite(buffers[name]).all() and buffers[name].std() > 0, name
            else:
                assert torch.equal(buffers[name], value.to(buffers[name].dtype)), name

    # --- the tests ---

    def test_save_and_load_round_trip(self, tmp_path):
        model = self.build_model()
        model.save_pretrained(tmp_path)
        assert {"config.json", "model.safetensors"} <= set(os.listdir(tmp_path))
        # Tied weights (a language-model head sharing its word embeddings) are saved once, under their source's name.
        assert set(load_file(tmp_path / "model.safetensors")) == set(model.state_dict()) - set(
            model.all_tied_weights_keys
        )
        loaded = self.model_class.from_pretrained(tmp_path)
        assert type(loaded) is self.model_class and not loaded.training
        assert loaded.config.to_diff_dict() == model.config.to_diff_dict()
        with torch.no_grad():
            expected, actual = model(**self.get_inputs()), loaded(**self.get_inputs())
        # Equal up to rounding: loaded tensors may sit differently in memory and take other vectorised code paths.
        for expected_tensor, actual_tensor in zip(output_tensors(expected), output_tensors(actual), strict=True):
            assert torch.allclose(expected_tensor, actual_tensor, atol=1e-6)

    def test_eval_is_deterministic(self):
        model = self.build_model()
        assert torch.equal(self.run(model), self.run(model))

    def test_seeded_generator_reproduces_a_random_call_and_leaves_the_global_rng_alone(self):
        model = self.build_model()
        takes_generator = "generator" in inspect.signature(model.forward).parameters
        assert takes_generator == (self.random_call_kwargs is not None), "set random_call_kwargs for a random forward"
        if not takes_generator:
            # Nothing random: train-mode dropout aside, the same inputs give the same outputs (see the test above).
            return
        state = torch.get_rng_state()
        first = self.run(model, generator=torch.Generator().manual_seed(1), **self.random_call_kwargs)
        again = self.run(model, generator=torch.Generator().manual_seed(1), **self.random_call_kwargs)
        other = self.run(model, generator=torch.Generator().manual_seed(2), **self.random_call_kwargs)
        assert torch.equal(torch.get_rng_state(), state), "a seeded call drew from the global RNG"
        assert torch.equal(first, again)
        assert not torch.allclose(first, other), "the random call does not depend on the generator"

    def test_return_dict_argument_and_config(self):
        model = self.build_model()
        with torch.no_grad():
            as_dict = model(**self.get_inputs())
            as_tuple = model(**self.get_inputs(), return_dict=False)
            assert isinstance(as_tuple, tuple)
            for expected, actual in zip(output_tensors(as_dict), output_tensors(as_tuple), strict=True):
                assert torch.equal(expected, actual)
            model.config.return_dict = False  # transformers' convention: the config sets the default
            from_config = model(**self.get_inputs())
            assert isinstance(from_config, tuple)
            assert not isinstance(model(**self.get_inputs(), return_dict=True), tuple)
        for expected, actual in zip(output_tensors(as_dict), output_tensors(from_config), strict=True):
            assert torch.equal(expected, actual)

    def test_dtype_and_device_moves(self):
        model = self.build_model()
        reference = self.run(model)
        double = model.to(torch.float64)
        assert all(p.dtype == torch.float64 for p in double.parameters())
        output = self.run(double, **cast_inputs(self.get_inputs(), dtype=torch.float64))
        assert output.dtype == torch.float64
        assert torch.allclose(output.float(), reference, atol=1e-4)
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        for device in devices:
            moved = self.build_model().to(device)
            output = self.run(moved, **cast_inputs(self.get_inputs(), device=device))
            assert output.device.type == device
            assert torch.allclose(output.cpu(), reference, atol=1e-4)

    def test_meta_device_build_then_initialise(self):
        with torch.device("meta"):
            model = self.model_class(self.get_config())
        assert all(tensor.is_meta for tensor in model.state_dict().values())
        model.to_empty(device="cpu")
        with torch.no_grad():  # whatever memory to_empty gave, every tensor must be written by the initialisation
            for tensor in model.state_dict().values():
                tensor.fill_(float("nan") if tensor.is_floating_point() else 7)
        model.initialize_weights()
        for name, tensor in model.state_dict().items():
            assert torch.isfinite(tensor.float()).all(), f"{name} was not initialised"
        self.assert_buffers_initialised(model)
        assert torch.isfinite(self.run(model.eval())).all()

    def test_missing_buffers_are_initialised_on_load(self, tmp_path):
        model = self.build_model()
        model.save_pretrained(tmp_path)
        weights = load_file(tmp_path / "model.safetensors")
        parameters = dict(model.named_parameters())
        save_file(
            {name: value for name, value in weights.items() if name in parameters},
            tmp_path / "model.safetensors",
            metadata={"format": "pt"},
        )
        loaded = self.model_class.from_pretrained(tmp_path)
        self.assert_buffers_initialised(loaded)
        for name, parameter in loaded.named_parameters():
            assert torch.equal(parameter, parameters[name]), name

    def test_lora_adapter_trains_saves_reloads_and_merges(self, tmp_path):
        from peft import PeftModel, get_peft_model

        model = self.build_model()
        model.save_pretrained(tmp_path / "base")
        base_output = self.run(model)
        adapted = get_peft_model(self.model_class.from_pretrained(tmp_path / "base"), self.lora_config())
        lora_b = [p for name, p in adapted.named_parameters() if "lora_B" in name]
        assert lora_b, "the LoRA targets match no layer"
        with torch.no_grad():  # LoRA starts as the identity (B = 0); a non-zero B makes the checks below meaningful
            generator = torch.Generator().manual_seed(3)
            for parameter in lora_b:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
        adapted.eval()
        unmerged = self.run(adapted)
        assert not torch.allclose(unmerged, base_output, atol=1e-4), "the adapter does not change the output"

        adapted.save_pretrained(tmp_path / "adapter")
        assert {"adapter_model.safetensors", "adapter_config.json"} <= set(os.listdir(tmp_path / "adapter"))
        # Only the adapter and the modules saved whole (e.g. batch norms), never a copy of the base weights.
        whole_modules = set(self.lora_config().modules_to_save or [])
        for key in load_file(tmp_path / "adapter" / "adapter_model.safetensors"):
            assert ".lora_" in key or key.split(".")[-2] in whole_modules, key
        reloaded = PeftModel.from_pretrained(self.model_class.from_pretrained(tmp_path / "base"), tmp_path / "adapter")
        assert torch.allclose(self.run(reloaded.eval()), unmerged, atol=1e-6)

        merged = adapted.merge_and_unload()
        assert type(merged) is self.model_class
        assert (self.run(merged) - unmerged).abs().max() < 1e-5, "merging the adapter changed the output"

    def test_auto_classes_after_import_hfgen(self, tmp_path):
        import pytest

        model = self.build_model()
        model.save_pretrained(tmp_path)
        assert type(AutoConfig.from_pretrained(tmp_path)) is self.model_class.config_class
        if self.loaded_by_auto_model:
            loaded = AutoModel.from_pretrained(tmp_path)
            assert type(loaded) is self.model_class
            assert torch.allclose(self.run(loaded), self.run(model), atol=1e-6)
        else:
            name = self.model_class.__name__
            with pytest.raises(ValueError, match=rf"holds a {name}.*load it with hfgen\.{name}"):
                AutoModel.from_pretrained(tmp_path)

    def test_loading_with_a_wrong_class_names_the_folder_and_the_right_class(self, tmp_path):
        import pytest

        model = self.build_model()
        model.save_pretrained(tmp_path)
        model_classes, config_classes = all_hfgen_classes()
        right = f"hfgen.{self.model_class.__name__}"
        wrong_models = [cls for cls in model_classes if not issubclass(self.model_class, cls)]
        assert wrong_models
        for cls in wrong_models:
            with pytest.raises(ValueError) as error:
                cls.from_pretrained(tmp_path)
            assert str(tmp_path) in str(error.value) and right in str(error.value), (cls, str(error.value))
        right_config = f"hfgen.{self.model_class.config_class.__name__}"
        for cls in config_classes:
            if cls is self.model_class.config_class:
                continue
            with pytest.raises(ValueError) as error:
                cls.from_pretrained(tmp_path)
            assert str(tmp_path) in str(error.value) and right_config in str(error.value), (cls, str(error.value))

    def test_truncated_weights_file_is_named(self, tmp_path):
        import pytest

        self.build_model().save_pretrained(tmp_path)
        weights_file = tmp_path / "model.safetensors"
        data = weights_file.read_bytes()
        weights_file.write_bytes(data[: len(data) - 100])  # an interrupted download or copy
        with pytest.raises(OSError, match="truncated or corrupt") as error:
            self.model_class.from_pretrained(tmp_path)
        assert str(weights_file) in str(error.value)


__all__ = ["ModelTesterMixin", "all_hfgen_classes", "cast_inputs", "output_tensors"]
