"""LatentDiffusionInpaintPipeline and LatentBlendingInpaintPipeline: the shared pipeline tests (an image, its mask and
prompts in place of a batch size), what each keeps of the image, the zero-initialised inpainting UNet, and the one-line
errors for UNets, masks and images that do not fit."""

import pytest
import torch

from hfgen import LatentBlendingInpaintPipeline, LatentDiffusionInpaintPipeline, LatentDiffusionPipeline
from hfgen.pipelines.inpainting.pipeline_latent_diffusion_inpaint import (
    image_latents,
    inpainting_unet_from,
    latent_mask,
)
from hfgen.testing.pipeline_tester import PipelineTesterMixin, raises_value_error, seeded

from .test_pipeline_latent_diffusion import PROMPT, tiny_components

# A 16 px greyscale image in [0, 1] and a box mask over its lower right (white: repainted), where the stored slices
# of the shared tests are.
IMAGE = torch.rand(1, 1, 16, 16, generator=seeded(7))
MASK = torch.zeros(1, 1, 16, 16)
MASK[..., 7:, 5:] = 1


def inpainting_components() -> dict:
    """Tiny components with an inpainting UNet (4 latent channels, 1 mask channel, 4 masked-image channels)."""
    return tiny_components(in_channels=9)


class TestLatentDiffusionInpaintPipeline(PipelineTesterMixin):
    pipeline_class = LatentDiffusionInpaintPipeline
    # Generated once from this code (inpainting_components, 2 DDIM steps, guidance 3, the input pasted back outside
    # the mask): regenerate after an intended change by running test_expected_slice and pasting what it prints.
    expected_slice = (0.281803, 0.376162, 0.535428, 0.424508, 0.466737, 0.612958, 0.603396, 0.453811, 0.546319)

    def get_components(self, **config_overrides):
        return inpainting_components()

    def latent_shape(self, pipeline):
        return (4, 8, 8)

    def get_inputs(self, generator, batch_size: int = 2) -> dict:
        return {
            "prompt": PROMPT,
            "image": IMAGE,
            "mask_image": MASK,
            "num_images_per_prompt": batch_size,
            "generator": generator,
            "num_inference_steps": 2,
        }

    def replay_inputs(self, output) -> dict:
        return {
            "latents": output.latents,
            "prompt": output.prompts,
            "image": IMAGE,
            "mask_image": MASK,
            "num_inference_steps": 2,
        }

    def test_return_dict_false_returns_a_tuple(self):
        pipeline = self.get_pipeline()
        output = self.run_pipeline(pipeline)
        images, latents, prompts = self.run_pipeline(pipeline, return_dict=False)
        assert torch.equal(images, output.images) and torch.equal(latents, output.latents)
        assert prompts == [PROMPT, PROMPT] == output.prompts

    def test_batch_size_is_checked(self):
        pipeline = self.get_pipeline()
        for bad in (0, -1, 2.5, "4", True):
            with raises_value_error("num_images_per_prompt must be a positive int", repr(bad)):
                self.run_pipeline(pipeline, batch_size=bad)
        with raises_value_error("image holds 2 images for 3 prompts", "give one prompt, one image"):
            pipeline(prompt=[PROMPT] * 3, image=IMAGE.repeat(2, 1, 1, 1), mask_image=MASK)

    def test_generator_is_checked(self):
        pipeline = self.get_pipeline()
        with raises_value_error("generator must be a torch.Generator", "one per image", "'seed'"):
            pipeline(prompt=PROMPT, image=IMAGE, mask_image=MASK, generator="seed")
        with raises_value_error("got 3 generators for batch_size=2", "one torch.Generator per image"):
            self.run_pipeline(pipeline, seed=[0, 1, 2], batch_size=2)

    def test_latents_set_the_batch_size_and_are_checked(self):
        pipeline = self.get_pipeline()
        latents = torch.randn(3, 4, 8, 8, generator=seeded(0))
        inputs = dict(image=IMAGE, mask_image=MASK, num_inference_steps=2, output_type="pt")
        output = pipeline(prompt=[PROMPT] * 3, latents=latents, **inputs)
        assert output.images.shape[0] == 3 and torch.equal(output.latents, latents)
        with raises_value_error("latents has 3 rows", "make 2 images"):
            pipeline(prompt=PROMPT, num_images_per_prompt=2, latents=latents, image=IMAGE, mask_image=MASK)
        with raises_value_error("latents must be a torch.Tensor of shape (batch, 4, 8, 8)", "got (1, 4, 8, 9)"):
            pipeline(prompt=PROMPT, latents=torch.zeros(1, 4, 8, 9), image=IMAGE, mask_image=MASK)


class TestLatentBlendingInpaintPipeline(TestLatentDiffusionInpaintPipeline):
    pipeline_class = LatentBlendingInpaintPipeline
    # Generated once from this code (tiny_components' plain UNet, 2 DDIM steps, guidance 3): see above.
    expected_slice = (0.306632, 0.420137, 0.603157, 0.445385, 0.459111, 0.613431, 0.638252, 0.391514, 0.506631)

    def get_components(self, **config_overrides):
        return tiny_components()


def run(pipeline, **kwargs):
    arguments = dict(prompt=PROMPT, image=IMAGE, mask_image=MASK, generator=seeded(0), num_inference_steps=3)
    return pipeline(**{**arguments, "output_type": "pt", **kwargs})


def test_only_the_masked_pixels_change_and_the_mask_reaches_the_unet():
    pipeline = LatentDiffusionInpaintPipeline(**inpainting_components())
    pipeline.set_progress_bar_config(disable=True)
    pasted, decoded = run(pipeline).images, run(pipeline, preserve_unmasked=False).images
    kept = MASK.expand_as(pasted) == 0
    assert torch.allclose(pasted[kept], IMAGE[kept], atol=1e-6)
    assert torch.equal(pasted[~kept], decoded[~kept])
    assert not torch.allclose(decoded[kept], IMAGE[kept], atol=1e-2)  # an untrained model keeps nothing itself
    # the mask is a UNet input: another mask changes the repainted pixels even where both masks repaint
    other = MASK.clone()
    other[..., :2, :] = 1
    changed = run(pipeline, mask_image=other).images
    assert not torch.allclose(changed[~kept], pasted[~kept], atol=1e-4)


def test_a_widened_plain_unet_starts_as_the_plain_model(tmp_path):
    plain = LatentDiffusionPipeline(**tiny_components())
    plain.set_progress_bar_config(disable=True)
    widened = inpainting_unet_from(plain.unet)
    assert widened.config.in_channels == 9 and widened.conv_in.weight[:, 4:].abs().max() == 0
    assert torch.equal(widened.conv_in.weight[:, :4], plain.unet.conv_in.weight)
    inpainting = LatentDiffusionInpaintPipeline(**{**plain.components, "unet": widened})
    inpainting.set_progress_bar_config(disable=True)
    latents = torch.randn(1, 4, 8, 8, generator=seeded(3))
    expected = plain(PROMPT, latents=latents, num_inference_steps=3, output_type="pt").images
    images = run(inpainting, latents=latents, preserve_unmasked=False).images
    torch.testing.assert_close(images, expected, rtol=0, atol=1e-5)
    # saved, it loads as an inpainting folder, with the generic loader too
    inpainting.save_pretrained(tmp_path / "inpainting")
    loaded = LatentDiffusionInpaintPipeline.from_pretrained(tmp_path / "inpainting")
    assert torch.equal(loaded.unet.conv_in.weight, widened.conv_in.weight)


def test_latent_blending_keeps_the_known_latents_and_is_the_plain_model_under_a_full_mask():
    pipeline = LatentBlendingInpaintPipeline(**tiny_components())
    pipeline.set_progress_bar_config(disable=True)
    latents = torch.randn(1, 4, 8, 8, generator=seeded(3))
    # nothing to repaint: the result is the first stage's own reconstruction of the image
    nothing = torch.zeros_like(MASK)
    decoded = run(pipeline, mask_image=nothing, latents=latents, preserve_unmasked=False).images
    clean = image_latents(pipeline.vae, IMAGE * 2 - 1)
    reconstruction = pipeline.vae.decode(clean / pipeline.vae.config.scaling_factor).sample
    torch.testing.assert_close(decoded, (reconstruction / 2 + 0.5).clamp(0, 1), rtol=0, atol=1e-5)
    # everything to repaint: the plain model's sample from the same noise
    plain = LatentDiffusionPipeline(**pipeline.components)
    plain.set_progress_bar_config(disable=True)
    expected = plain(PROMPT, latents=latents, num_inference_steps=3, output_type="pt").images
    full = run(pipeline, mask_image=torch.ones_like(MASK), latents=latents).images
    torch.testing.assert_close(full, expected, rtol=0, atol=1e-6)


def test_the_latent_mask_covers_every_latent_a_masked_pixel_falls_in():
    mask = torch.zeros(1, 1, 16, 16)
    mask[0, 0, 5, 9] = 1
    pooled = latent_mask(mask, (8, 8))
    assert pooled.sum() == 1 and pooled[0, 0, 2, 4] == 1


def test_unets_masks_and_images_that_do_not_fit_are_one_line_errors(tmp_path):
    plain_components = tiny_components()
    with raises_value_error("the unet takes 4 input channels", "inpainting UNet takes 9", "LatentBlendingInpaint"):
        LatentDiffusionInpaintPipeline(**plain_components)
    inpainting = inpainting_components()
    for pipeline_class in (LatentDiffusionPipeline, LatentBlendingInpaintPipeline):
        with raises_value_error("the unet takes 9 input channels for 4-channel latents", "LatentDiffusionInpaint"):
            pipeline_class(**inpainting)
    # the same from folders: a plain folder given to the inpainting pipeline, and the reverse
    LatentDiffusionPipeline(**plain_components).save_pretrained(tmp_path / "plain")
    LatentDiffusionInpaintPipeline(**inpainting).save_pretrained(tmp_path / "inpainting")
    with raises_value_error("the unet takes 4 input channels", "inpainting UNet takes 9"):
        LatentDiffusionInpaintPipeline.from_pretrained(tmp_path / "plain")
    with raises_value_error("the unet takes 9 input channels", "loads with LatentDiffusionInpaintPipeline"):
        LatentDiffusionPipeline.from_pretrained(tmp_path / "inpainting")

    pipeline = LatentDiffusionInpaintPipeline(**inpainting)
    with raises_value_error("mask_image is 8x8 but image is 16x16", "give a mask of the image's size"):
        pipeline(prompt=PROMPT, image=IMAGE, mask_image=torch.ones(1, 1, 8, 8))
    with raises_value_error("image holds values in [-0.9", "give images in [0, 1]"):
        pipeline(prompt=PROMPT, image=IMAGE * 2 - 1, mask_image=MASK)
    with raises_value_error("image holds values in [3, 255]", "give images in [0, 1]"):  # an 8-bit array
        pipeline(prompt=PROMPT, image=(IMAGE[0].permute(1, 2, 0) * 255).round().numpy(), mask_image=MASK)
    with raises_value_error("mask_image holds 2 masks for 3 images"):
        pipeline(prompt=PROMPT, image=IMAGE.repeat(3, 1, 1, 1), mask_image=MASK.repeat(2, 1, 1, 1))
    with raises_value_error("mask_image must be a PIL image"):
        pipeline(prompt=PROMPT, image=IMAGE, mask_image="mask.png")


@pytest.mark.parametrize("image_kind", ["pil", "array"])
def test_pil_and_array_inputs_give_the_tensors_result(image_kind):
    from PIL import Image

    pipeline = LatentDiffusionInpaintPipeline(**inpainting_components())
    pipeline.set_progress_bar_config(disable=True)
    expected = run(pipeline).images
    pixels = (IMAGE[0, 0] * 255).round() / 255  # what an 8-bit file holds
    if image_kind == "pil":
        image = Image.fromarray((pixels * 255).byte().numpy(), mode="L").convert("RGB")
        mask = Image.fromarray((MASK[0, 0] * 255).byte().numpy(), mode="L")
    else:
        # a boolean mask, as `array > 0` gives it, is as good as a 0 / 1 one
        image, mask = pixels[None, :, :, None].numpy(), MASK[0, 0][None, :, :, None].numpy() > 0.5
    images = run(pipeline, image=image, mask_image=mask).images
    torch.testing.assert_close(images, expected, rtol=0, atol=2e-2)
