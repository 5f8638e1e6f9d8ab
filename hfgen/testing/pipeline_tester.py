"""Shared tests for hfgen pipelines, in the spirit of diffusers' `PipelineTesterMixin`.

A pipeline's test class inherits [`PipelineTesterMixin`] (and [`ClassLabelsPipelineTesterMixin`] when its model
can be class-conditional) and provides:

- `pipeline_class`: the pipeline under test;
- `get_components(self, **config_overrides)`: tiny components, seeded so that every call builds the same weights,
  in eval mode;
- `latent_shape(self, pipeline)`: the shape of one image's `latents`, without the batch dimension;
- `expected_slice`: fixed output values (see [`PipelineTesterMixin.test_expected_slice`]);

and may override `get_inputs(generator, batch_size)` to add call arguments. The tests are plain methods with plain
asserts, so pytest collects them from any class named `Test...`, and this module imports nothing from pytest (a
test-only dependency).
"""

import contextlib
import importlib
import io
import json
import os
import re
import tempfile

import numpy as np
import PIL.Image
import torch


def seeded(seed: int) -> torch.Generator:
    """A CPU `torch.Generator` seeded with `seed`."""
    return torch.Generator().manual_seed(seed)


@contextlib.contextmanager
def raises_value_error(*fragments: str, one_line: bool = True):
    """Assert that the block raises a `ValueError` whose message holds every one of `fragments` (plain text) and,
    unless `one_line=False` (for errors that are not hfgen's), fits on one line."""
    try:
        yield
    except ValueError as error:
        message = str(error)
        missing = [fragment for fragment in fragments if fragment not in message]
        assert not missing, f"the ValueError {message!r} does not mention {missing}"
        assert not one_line or "\n" not in message, f"the error should be one line, got {message!r}"
    else:
        raise AssertionError(f"no ValueError was raised (expected one mentioning {list(fragments)})")


def read_json(path: str) -> dict:
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def as_array(images) -> np.ndarray:
    """`output_type="pt"` or `"np"` images as a `(batch, height, width, channels)` float64 array."""
    if isinstance(images, torch.Tensor):
        images = images.permute(0, 2, 3, 1).cpu().numpy()
    return np.asarray(images, dtype=np.float64)


class PipelineTesterMixin:
    """What every hfgen pipeline must do: see the module docstring for what a test class provides."""

    pipeline_class: type = None
    expected_slice: tuple[float, ...] | None = None
    """`images[0, -3:, -3:, 0].flatten()` of `output_type="np"` for `get_inputs(seeded(0), batch_size=1)` with the
    components of `get_components()`, stored from a run of the code (see `test_expected_slice`)."""
    supports_float64: bool = True

    # --- what a test class provides ---

    def get_components(self, **config_overrides) -> dict:
        raise NotImplementedError(f"{type(self).__name__} must define get_components()")

    def latent_shape(self, pipeline) -> tuple[int, ...]:
        raise NotImplementedError(f"{type(self).__name__} must define latent_shape(pipeline)")

    def get_inputs(self, generator, batch_size: int = 2) -> dict:
        """Call arguments for a seeded run of `batch_size` images."""
        return {"batch_size": batch_size, "generator": generator}

    def replay_inputs(self, output) -> dict:
        """Call arguments that redo `output` without drawing anything (no generator needed)."""
        return {"latents": output.latents}

    # --- helpers ---

    def get_pipeline(self, **config_overrides):
        pipeline = self.pipeline_class(**self.get_components(**config_overrides))
        pipeline.set_progress_bar_config(disable=True)
        return pipeline

    def run_pipeline(self, pipeline, seed=0, batch_size: int = 2, **kwargs):
        generator = [seeded(s) for s in seed] if isinstance(seed, list) else seeded(seed)
        return pipeline(**{**self.get_inputs(generator, batch_size), "output_type": "pt", **kwargs})

    @staticmethod
    def other_pipeline_classes(pipeline_class) -> list[type]:
        from hfgen.pipelines.pipeline_folder import hfgen_pipeline_classes

        return [
            cls
            for cls in hfgen_pipeline_classes()
            if cls.__module__.startswith("hfgen.") and cls is not pipeline_class
        ]

    # --- saving and loading ---

    def test_save_load_round_trip(self):
        pipeline = self.get_pipeline()
        with tempfile.TemporaryDirectory() as folder:
            pipeline.save_pretrained(folder)
            index = read_json(os.path.join(folder, "model_index.json"))
            own_format = ["hfgen_pipeline", self.pipeline_class.__name__]
            assert index["_class_name"] == (self.pipeline_class.diffusers_class_name or own_format)
            for name, component in pipeline.components.items():
                library = type(component).__module__.split(".")[0]
                recorded_library = type(component).__module__ if library == "hfgen" else library
                assert index[name] == [recorded_library, type(component).__name__]
                if isinstance(component, torch.nn.Module):
                    weights = {"model.safetensors", "diffusion_pytorch_model.safetensors"}
                    assert weights & set(os.listdir(os.path.join(folder, name))), f"{name} has no safetensors"
            loaded = self.pipeline_class.from_pretrained(folder)
        assert type(loaded) is self.pipeline_class
        assert torch.equal(self.run_pipeline(loaded).images, self.run_pipeline(pipeline).images)

    def test_folder_without_the_module_file_still_loads(self):
        # Folders saved before `hfgen_pipeline.py` existed name their class as a plain string.
        pipeline = self.get_pipeline()
        with tempfile.TemporaryDirectory() as folder:
            pipeline.save_pretrained(folder)
            module_file = os.path.join(folder, "hfgen_pipeline.py")
            assert os.path.isfile(module_file) == (self.pipeline_class.diffusers_class_name is None)
            if os.path.isfile(module_file):
                os.remove(module_file)
            index_file = os.path.join(folder, "model_index.json")
            index = read_json(index_file)
            index["_class_name"] = self.pipeline_class.__name__
            with open(index_file, "w", encoding="utf-8") as file:
                json.dump(index, file)
            loaded = self.pipeline_class.from_pretrained(folder)
        assert torch.equal(self.run_pipeline(loaded).images, self.run_pipeline(pipeline).images)

    def test_component_modules_expose_their_loading_base(self):
        # diffusers loads a component by importing the module recorded for it in model_index.json and looking up,
        # in that module's namespace, a base class it knows (`PreTrainedModel` for transformers models). A modeling
        # file that stops importing `PreTrainedModel` by that name breaks every pipeline folder with "does not seem
        # to have any of the loading methods".
        for name, component in self.get_components().items():
            if not isinstance(component, torch.nn.Module):
                continue  # schedulers and tokenizers load through their own libraries' classes
            module = importlib.import_module(type(component).__module__)
            base = getattr(module, "PreTrainedModel", None) or getattr(module, "ModelMixin", None)
            assert isinstance(base, type) and isinstance(component, base), (
                f"{module.__name__} (the module of the {name!r} component) must have `PreTrainedModel` in its "
                "namespace (from transformers import PreTrainedModel) for diffusers to load pipeline folders"
            )

    def test_generic_diffusers_loading(self):
        import diffusers

        pipeline = self.get_pipeline()
        with tempfile.TemporaryDirectory() as folder:
            pipeline.save_pretrained(folder)
            if self.pipeline_class.diffusers_class_name is not None:
                # a diffusers folder: diffusers' own class loads it, with the same components
                loaded = diffusers.DiffusionPipeline.from_pretrained(folder)
                assert type(loaded) is getattr(diffusers, self.pipeline_class.diffusers_class_name)
                assert loaded.components.keys() == pipeline.components.keys()
                return
            # diffusers runs a module file found in a folder only when told to, local folders included.
            with raises_value_error("trust_remote_code=True", one_line=False):
                diffusers.DiffusionPipeline.from_pretrained(folder)
            loaded = diffusers.DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)
        assert type(loaded) is self.pipeline_class
        assert torch.equal(self.run_pipeline(loaded).images, self.run_pipeline(pipeline).images)

    def test_wrong_folder_is_refused_with_the_class_to_use(self):
        own = self.pipeline_class.__name__
        components = self.get_components()
        with tempfile.TemporaryDirectory() as folder:
            self.pipeline_class(**components).save_pretrained(folder)
            for other in self.other_pipeline_classes(self.pipeline_class):
                if self.loads_a_part(folder, other):
                    continue
                with raises_value_error(
                    folder, f"is a {own} folder", f"not a {other.__name__} one", f"hfgen.{own}.from_pretrained"
                ):
                    other.from_pretrained(folder)
        hfgen_models = {
            name: component
            for name, component in components.items()
            if isinstance(getattr(getattr(component, "config", None), "model_type", None), str)
        }
        if len(hfgen_models) != 1:
            return  # a lone model folder names its pipeline only when the pipeline has one hfgen model
        ((name, model),) = hfgen_models.items()
        model_type = model.config.model_type
        with tempfile.TemporaryDirectory() as folder:
            model.save_pretrained(folder)
            for cls in [self.pipeline_class, *self.other_pipeline_classes(self.pipeline_class)]:
                with raises_value_error(
                    folder,
                    repr(model_type),
                    f"{cls.__name__}.from_pretrained cannot load it",
                    f"{type(model).__module__.split('.')[0]}.{type(model).__name__}.from_pretrained(folder)",
                    f"hfgen.{own}({name}=model",
                ):
                    cls.from_pretrained(folder)

    @staticmethod
    def loads_a_part(folder: str, other: type) -> bool:
        """Whether pipeline class `other` takes a subset of the folder's components, each of a class it accepts (as
        `VAEPipeline` takes the `vae` of a latent diffusion folder): a legitimate load, not a wrong folder."""
        from hfgen.pipelines.pipeline_folder import check_pipeline_folder

        try:
            check_pipeline_folder(folder, other)
        except ValueError:
            return False
        return True

    # --- randomness ---

    def test_seeded_call_is_reproducible_and_leaves_the_global_rng_alone(self):
        pipeline = self.get_pipeline()
        state = torch.get_rng_state()
        first = self.run_pipeline(pipeline, seed=0)
        again = self.run_pipeline(pipeline, seed=0)
        assert torch.equal(torch.get_rng_state(), state), "a seeded call drew from the global RNG"
        assert torch.equal(first.images, again.images)
        assert not torch.allclose(first.images, self.run_pipeline(pipeline, seed=1).images)

    def test_list_of_generators_matches_single_image_calls(self):
        pipeline = self.get_pipeline()
        together = self.run_pipeline(pipeline, seed=[1, 2], batch_size=2)
        for index, seed in enumerate((1, 2)):
            alone = self.run_pipeline(pipeline, seed=seed, batch_size=1)
            assert torch.equal(together.latents[index], alone.latents[0])
            assert torch.allclose(together.images[index], alone.images[0], atol=1e-6)

    # --- outputs ---

    def test_output_types(self):
        pipeline = self.get_pipeline()
        pil = self.run_pipeline(pipeline, output_type="pil").images
        array = self.run_pipeline(pipeline, output_type="np").images
        tensor = self.run_pipeline(pipeline, output_type="pt").images
        assert isinstance(tensor, torch.Tensor) and tensor.ndim == 4 and tensor.shape[0] == 2
        channels, height, width = tensor.shape[1:]
        assert isinstance(array, np.ndarray) and array.shape == (2, height, width, channels)
        for images in (array, tensor):
            assert images.min() >= 0 and images.max() <= 1
        assert np.allclose(as_array(tensor), array, atol=1e-6)
        assert isinstance(pil, list) and len(pil) == 2 and all(isinstance(image, PIL.Image.Image) for image in pil)
        assert pil[0].size == (width, height)
        pixels = np.asarray(pil[1]).reshape(height, width, channels)
        assert np.array_equal(pixels, np.round(array[1] * 255).astype(np.uint8))
        with raises_value_error("output_type must be one of", "'pil'", "'np'", "'pt'", "'jpeg'"):
            self.run_pipeline(pipeline, output_type="jpeg")

    def test_return_dict_false_returns_a_tuple(self):
        pipeline = self.get_pipeline()
        output = self.run_pipeline(pipeline)
        as_tuple = self.run_pipeline(pipeline, return_dict=False)
        assert isinstance(as_tuple, tuple)
        assert torch.equal(as_tuple[0], output.images) and torch.equal(as_tuple[1], output.latents)

    def test_expected_slice(self):
        # The stored values pin the numbers, not just the shapes: a change to the pipeline or the models that moves
        # them fails here. To regenerate after an intended change, run this test and paste the printed values.
        assert self.expected_slice is not None, f"{type(self).__name__} must store expected_slice"
        images = self.run_pipeline(self.get_pipeline(), seed=0, batch_size=1, output_type="np").images
        image_slice = images[0, -3:, -3:, 0].flatten()
        printed = "[" + ", ".join(f"{value:.6f}" for value in image_slice) + "]"
        assert np.abs(image_slice - np.array(self.expected_slice)).max() < 1e-4, f"expected_slice = {printed}"

    # --- input checks ---

    def test_batch_size_is_checked(self):
        pipeline = self.get_pipeline()
        for bad in (0, -1, 2.5, "4", True):
            with raises_value_error("batch_size must be a positive int", repr(bad)):
                self.run_pipeline(pipeline, batch_size=bad)

    def test_generator_is_checked(self):
        pipeline = self.get_pipeline()
        with raises_value_error("generator must be a torch.Generator", "one per image", "'seed'"):
            pipeline(**{**self.get_inputs(None), "generator": "seed"})
        with raises_value_error("got 3 generators for batch_size=2", "one torch.Generator per image"):
            self.run_pipeline(pipeline, seed=[0, 1, 2], batch_size=2)
        with raises_value_error("generator must be a torch.Generator", "holds 7 (int)"):
            pipeline(**{**self.get_inputs([seeded(0), 7]), "batch_size": 2})

    def test_latents_set_the_batch_size_and_are_checked(self):
        pipeline = self.get_pipeline()
        shape = self.latent_shape(pipeline)
        latents = torch.randn(3, *shape, generator=seeded(0))
        inputs = {**self.get_inputs(seeded(0)), "output_type": "pt"}
        inputs.pop("batch_size")
        output = pipeline(**inputs, latents=latents)
        assert output.images.shape[0] == 3 and torch.equal(output.latents, latents)
        with raises_value_error("latents has 3 rows but batch_size=2"):
            pipeline(**inputs, latents=latents, batch_size=2)
        expected = "(batch, " + ", ".join(map(str, shape)) + ")"
        wrong = (2, *shape[:-1], shape[-1] + 1)
        with raises_value_error(f"latents must be a torch.Tensor of shape {expected}", f"got {wrong}"):
            pipeline(**inputs, latents=torch.zeros(wrong))

    # --- device, dtype, progress bar ---

    def test_to_float64_and_cpu(self):
        pipeline = self.get_pipeline()
        # The same latents (and labels), not the same seed: a generator draws other numbers for float64.
        replay = self.replay_inputs(self.run_pipeline(pipeline))
        reference = pipeline(**replay, output_type="pt").images
        assert pipeline.to("cpu").device.type == "cpu"
        assert torch.equal(pipeline(**replay, output_type="pt").images, reference)
        if not self.supports_float64:
            return
        pipeline = pipeline.to(torch.float64)
        modules = [component for component in pipeline.components.values() if isinstance(component, torch.nn.Module)]
        assert all(module.dtype == torch.float64 for module in modules)
        images = pipeline(**replay, output_type="pt").images
        assert images.dtype == torch.float64
        assert torch.allclose(images.float(), reference, atol=1e-4)
        seeded_twice = [self.run_pipeline(pipeline, seed=3).images for _ in range(2)]
        assert torch.equal(*seeded_twice)

    def test_progress_bar_config(self):
        pipeline = self.get_pipeline()
        with contextlib.redirect_stderr(io.StringIO()) as stderr, contextlib.redirect_stdout(io.StringIO()) as stdout:
            self.run_pipeline(pipeline)
            list(pipeline.progress_bar(range(3)))
        assert stderr.getvalue() == "" and stdout.getvalue() == "", "a pipeline with a disabled progress bar printed"
        shown = io.StringIO()
        pipeline.set_progress_bar_config(disable=False, file=shown)
        list(pipeline.progress_bar(range(3)))
        assert re.search(r"3/3", shown.getvalue()), "set_progress_bar_config(file=...) was not used"


class ClassLabelsPipelineTesterMixin:
    """Class-label handling, for pipelines whose model takes `num_classes` in its config (mixed in next to
    [`PipelineTesterMixin`]). `get_components(num_classes=...)` must build a model with that many classes."""

    num_classes: int = 10

    def replay_inputs(self, output) -> dict:
        return {**super().replay_inputs(output), "class_labels": output.class_labels}

    def test_labels_set_the_batch_size(self):
        pipeline = self.get_pipeline(num_classes=self.num_classes)
        for labels in ([1, 2, 3], torch.tensor([1, 2, 3]), (1, 2, 3)):
            output = pipeline(class_labels=labels, generator=seeded(0), output_type="pt")
            assert output.images.shape[0] == 3 and output.class_labels.tolist() == [1, 2, 3]
        one_label = pipeline(batch_size=2, class_labels=4, generator=seeded(0), output_type="pt")
        assert one_label.class_labels.tolist() == [4, 4]
        assert pipeline(class_labels=4, generator=seeded(0), output_type="pt").images.shape[0] == 1

    def test_labels_are_checked(self):
        pipeline = self.get_pipeline(num_classes=self.num_classes)
        n = self.num_classes
        with raises_value_error("class_labels has 3 labels but batch_size=2", "one per image"):
            pipeline(batch_size=2, class_labels=[1, 2, 3])
        with raises_value_error("class_labels has 3 labels but latents has 2 rows"):
            pipeline(class_labels=[1, 2, 3], latents=torch.zeros(2, *self.latent_shape(pipeline)))
        for bad in ([0, n], -1, torch.tensor([n + 3])):
            with raises_value_error(f"class_labels must lie in [0, {n})"):
                pipeline(class_labels=bad, generator=seeded(0))
        for bad in (1.5, ["a"], torch.tensor([0.5]), "3"):
            with raises_value_error("class_labels must"):
                pipeline(class_labels=bad, generator=seeded(0))

    def test_unconditional_model_refuses_labels(self):
        pipeline = self.get_pipeline(num_classes=0)
        with raises_value_error("class_labels was given but this model is unconditional", "leave class_labels out"):
            pipeline(batch_size=2, class_labels=1)
        output = pipeline(batch_size=2, generator=seeded(0), output_type="pt")
        assert output.class_labels is None and output.images.shape[0] == 2

    def test_labels_are_drawn_from_the_generator_when_not_given(self):
        pipeline = self.get_pipeline(num_classes=self.num_classes)
        state = torch.get_rng_state()
        drawn = pipeline(batch_size=16, generator=seeded(0), output_type="pt")
        again = pipeline(batch_size=16, generator=seeded(0), output_type="pt")
        assert torch.equal(torch.get_rng_state(), state)
        assert torch.equal(drawn.class_labels, again.class_labels) and torch.equal(drawn.images, again.images)
        assert drawn.class_labels.min() >= 0 and drawn.class_labels.max() < self.num_classes
        assert len(set(drawn.class_labels.tolist())) > 3  # uniform over the classes, not one class
