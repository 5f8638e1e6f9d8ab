"""GroupViTSegmentationPipeline: the shared pipeline tests (inputs drawn from the seeded generator, since segmenting
draws nothing itself), the label maps against a hand computation from the model's own assignments, the background
threshold, and clear errors."""

import tempfile

import numpy as np
import PIL.Image
import pytest
import torch
import torch.nn.functional as F
from transformers import GroupViTConfig, GroupViTModel

from hfgen import GroupViTSegmentationPipeline
from hfgen.models.clip_heads import build_clip_processor
from hfgen.pipelines.groupvit import label_colours
from hfgen.testing.pipeline_tester import PipelineTesterMixin, raises_value_error, seeded

CLASS_NAMES = ["zero", "one", "two", "three"]
TEMPLATES = ["the digit {}", "a photo of the digit {}"]


def tiny_processor():
    with tempfile.TemporaryDirectory() as folder:
        return build_clip_processor(
            [template.format(name) for name in CLASS_NAMES for template in TEMPLATES], folder, 32, max_length=16
        )


def tiny_model(tokenizer, two_groupings: bool = False) -> GroupViTModel:
    """A tiny GroupViT of 16 patches (8 px at 32 px) grouped into 4 groups, or into 4 and then 2."""
    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    vision = dict(hidden_size=32, intermediate_size=64, depths=[1, 1], num_hidden_layers=2, num_attention_heads=2)
    groups = {"num_group_tokens": [4, 0], "num_output_groups": [4, 2]}
    if two_groupings:
        vision.update(depths=[1, 1, 1], num_hidden_layers=3)
        groups = {"num_group_tokens": [4, 2, 0], "num_output_groups": [4, 2, 2]}
    config = GroupViTConfig(
        text_config={
            **text,
            "vocab_size": len(tokenizer),
            "max_position_embeddings": 16,
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        },
        vision_config={**vision, **groups, "image_size": 32, "patch_size": 8},
        projection_dim=16,
        projection_intermediate_dim=32,
    )
    torch.manual_seed(0)
    return GroupViTModel(config).eval()


def input_images(generator, batch_size: int) -> torch.Tensor:
    """RGB images in [0, 1] drawn from `generator` (one per generator when it is a list)."""
    if isinstance(generator, list):
        return torch.cat([torch.rand(1, 3, 32, 32, generator=g) for g in generator])
    return torch.rand(batch_size, 3, 32, 32, generator=generator)


class TestGroupViTSegmentationPipeline(PipelineTesterMixin):
    pipeline_class = GroupViTSegmentationPipeline
    # Generated once from this code (the tiny GroupViT below, 32 px): regenerate after an intended change by running
    # test_expected_slice / test_expected_scores and pasting the values their failures print.
    expected_slice = (0.142500,) * 9  # one class's colour over the corner
    expected_scores = (-0.180531, 0.008688, -0.085786, -0.112784, -0.180531, -0.180531)

    def get_components(self, **config_overrides):
        processor = tiny_processor()
        return {
            "model": tiny_model(processor.tokenizer),
            "tokenizer": processor.tokenizer,
            "image_processor": processor.image_processor,
            "background_threshold": config_overrides.get("background_threshold"),
            "templates": TEMPLATES,
        }

    def latent_shape(self, pipeline):
        return (3, 32, 32)

    def get_inputs(self, generator, batch_size: int = 2) -> dict:
        return {"images": input_images(generator, batch_size), "class_names": CLASS_NAMES}

    def replay_inputs(self, output) -> dict:
        return self.get_inputs(seeded(0))

    # --- what segmentation differs in: no latents, no batch_size, three outputs ---

    def test_seeded_call_is_reproducible_and_leaves_the_global_rng_alone(self):
        pipeline = self.get_pipeline()
        state = torch.get_rng_state()
        first = self.run_pipeline(pipeline, seed=0)
        again = self.run_pipeline(pipeline, seed=0)
        assert torch.equal(torch.get_rng_state(), state), "segmenting drew from the global RNG"
        assert torch.equal(first.scores, again.scores) and torch.equal(first.label_maps, again.label_maps)
        assert not torch.allclose(first.scores, self.run_pipeline(pipeline, seed=1).scores)

    def test_list_of_generators_matches_single_image_calls(self):
        pipeline = self.get_pipeline()
        together = self.run_pipeline(pipeline, seed=[1, 2])
        for index, seed in enumerate((1, 2)):
            alone = self.run_pipeline(pipeline, seed=seed, batch_size=1)
            assert torch.allclose(together.scores[index], alone.scores[0], atol=1e-5)
            assert torch.equal(together.label_maps[index], alone.label_maps[0])

    def test_return_dict_false_returns_a_tuple(self):
        pipeline = self.get_pipeline()
        output = self.run_pipeline(pipeline)
        as_tuple = self.run_pipeline(pipeline, return_dict=False)
        assert isinstance(as_tuple, tuple) and len(as_tuple) == 4
        expected_parts = (output.images, output.label_maps, output.scores, output.group_maps)
        for got, expected in zip(as_tuple, expected_parts, strict=True):
            assert torch.equal(got, expected)

    def test_batch_size_is_checked(self):
        pipeline = self.get_pipeline()
        for bad in ([], None, "image.png", 3):
            with raises_value_error("images must be a PIL image, a numpy array or torch tensor in [0, 1]"):
                pipeline(bad, CLASS_NAMES)
        with raises_value_error("images have different sizes (32x32, 40x32)", "once per size"):
            pipeline([torch.rand(3, 32, 32), torch.rand(3, 32, 40)], CLASS_NAMES)

    def test_generator_is_checked(self):
        # segmenting takes no generator: its other arguments are checked instead
        pipeline = self.get_pipeline()
        images = input_images(seeded(0), 1)
        for bad in ([], "zero", ["zero", 1]):
            with raises_value_error("class_names must be a non-empty list of strings"):
                pipeline(images, bad)
        for bad in (["no placeholder"], ["{} and {}"], "the digit {}"):
            with raises_value_error("templates must be a non-empty list of strings with one {} each"):
                pipeline(images, CLASS_NAMES, templates=bad)
        with raises_value_error("background_threshold is a cosine similarity in [-1, 1], got 1.5"):
            pipeline(images, CLASS_NAMES, background_threshold=1.5)
        with raises_value_error("templates must be a non-empty list"):
            GroupViTSegmentationPipeline(**{**self.get_components(), "templates": ["no placeholder"]})

    def test_latents_set_the_batch_size_and_are_checked(self):
        # no latents: the input images set the batch, one label map per input, in order, at the input's size
        pipeline = self.get_pipeline()
        images = torch.rand(3, 3, 48, 40, generator=seeded(0))
        together = pipeline(images, CLASS_NAMES, output_type="pt")
        assert together.label_maps.shape == (3, 48, 40) and together.scores.shape == (3, len(CLASS_NAMES), 48, 40)
        assert together.images.shape == (3, 3, 48, 40)
        alone = pipeline(images[1:2], CLASS_NAMES, output_type="pt")
        assert torch.allclose(alone.scores[0], together.scores[1], atol=1e-5)

    def test_expected_scores(self):
        output = self.run_pipeline(self.get_pipeline(), seed=0, batch_size=1)
        values = output.scores[0, :, -1, -1].tolist() + output.scores[0, 0, :2, 0].tolist()
        printed = "(" + ", ".join(f"{value:.6f}" for value in values) + ")"
        assert np.abs(np.array(values) - np.array(self.expected_scores)).max() < 1e-4, f"expected_scores = {printed}"

    # --- what the label maps mean ---

    def test_label_maps_follow_the_models_grouping_and_the_threshold(self):
        # By hand from the model's own outputs: every patch follows its most attended group stage after stage to one
        # final group and takes that group's cosine similarity to each class text; the patch grid is then upsampled
        # (bilinear, which commutes with the weighting) to the image's size, and the best class wins.
        components = {**self.get_components(), "templates": ["the digit {}"]}
        model = components["model"] = tiny_model(components["tokenizer"], two_groupings=True)
        pipeline = GroupViTSegmentationPipeline(**components)
        pipeline.set_progress_bar_config(disable=True)
        images = input_images(seeded(3), 2)
        output = pipeline(images, CLASS_NAMES, output_type="pt")
        processor = components["image_processor"]
        mean = torch.tensor(processor.image_mean).view(1, 3, 1, 1)
        std = torch.tensor(processor.image_std).view(1, 3, 1, 1)
        texts = components["tokenizer"](
            [f"the digit {name}" for name in CLASS_NAMES], padding=True, return_tensors="pt"
        )
        with torch.no_grad():
            vision = model.vision_model((images - mean) / std, output_attentions=True, return_dict=True)
            groups = model.visual_projection(vision.last_hidden_state.flatten(0, 1)).view(2, 2, -1)
            classes = model.get_text_features(**texts).pooler_output
        similarity = F.normalize(groups, dim=-1) @ F.normalize(classes, dim=-1).t()  # (image, group, class)
        first, second = vision.attentions  # (image, group, token): 16 patches into 4 groups, those into 2
        final_group = second.argmax(dim=1).gather(1, first.argmax(dim=1))  # (image, patch)
        grid = torch.stack([similarity[i, final_group[i]] for i in range(2)]).view(2, 4, 4, -1).permute(0, 3, 1, 2)
        expected = F.interpolate(grid, size=(32, 32), mode="bilinear", align_corners=False)
        assert torch.allclose(output.scores, expected, atol=1e-5)
        assert torch.equal(output.label_maps, expected.argmax(dim=1) + 1)
        # the group maps: each pixel the final group of its patch, the 4 x 4 patch grid blown up to 32 px
        patch_groups = final_group.view(2, 4, 4)
        assert torch.equal(output.group_maps, patch_groups.repeat_interleave(8, dim=1).repeat_interleave(8, dim=2))
        assert output.group_maps.dtype == torch.int64 and set(output.group_maps.unique().tolist()) <= {0, 1}
        # the threshold: a pixel whose best similarity falls under it is background, the others keep their class
        threshold = output.scores.max(dim=1).values.median().item()
        with_background = pipeline(images, CLASS_NAMES, background_threshold=threshold, output_type="pt").label_maps
        below = output.scores.max(dim=1).values < threshold
        assert below.any() and (~below).any()
        assert (with_background[below] == 0).all() and torch.equal(with_background[~below], output.label_maps[~below])

    def test_saved_threshold_and_templates_round_trip(self, tmp_path):
        pipeline = GroupViTSegmentationPipeline(**self.get_components(background_threshold=0.05))
        pipeline.save_pretrained(tmp_path)
        loaded = GroupViTSegmentationPipeline.from_pretrained(tmp_path)
        assert loaded.config.background_threshold == 0.05 and list(loaded.config.templates) == TEMPLATES
        images = input_images(seeded(0), 2)
        saved = loaded(images, CLASS_NAMES, output_type="pt").label_maps
        assert torch.equal(saved, pipeline(images, CLASS_NAMES, output_type="pt").label_maps)
        assert torch.equal(
            saved, pipeline(images, CLASS_NAMES, background_threshold=0.05, output_type="pt").label_maps
        )

    def test_any_image_type_and_colours(self):
        pipeline = self.get_pipeline()
        tensor = input_images(seeded(0), 1)
        array = tensor[0].permute(1, 2, 0).numpy()
        pil = PIL.Image.fromarray((array * 255).round().astype(np.uint8))
        reference = pipeline(pil, CLASS_NAMES, output_type="np")
        for images in (array, [array], tensor[0], [pil], pil.convert("L")):
            output = pipeline(images, CLASS_NAMES, output_type="np")
            assert output.label_maps.shape == (1, 32, 32) and output.label_maps.dtype == np.int64
            assert output.group_maps.shape == (1, 32, 32) and output.group_maps.dtype == np.int64
        assert np.array_equal(pipeline([pil], CLASS_NAMES, output_type="np").label_maps, reference.label_maps)
        colours = label_colours(len(CLASS_NAMES) + 1).numpy()
        assert np.allclose(reference.images[0], colours[reference.label_maps[0]], atol=1e-6)
        assert colours[0].tolist() == [0.0, 0.0, 0.0] and len({tuple(c) for c in colours.round(3).tolist()}) == 5


@pytest.mark.parametrize("output_type", ["pil", "np", "pt"])
def test_label_maps_are_ints_for_every_output_type(output_type):
    tester = TestGroupViTSegmentationPipeline()
    pipeline = tester.get_pipeline()
    output = pipeline(input_images(seeded(0), 2), CLASS_NAMES, output_type=output_type)
    label_maps = output.label_maps
    assert tuple(label_maps.shape) == (2, 32, 32)
    assert int(label_maps.min()) >= 1 and int(label_maps.max()) <= len(CLASS_NAMES)  # no threshold: no background
