"""UnCLIPPipeline: the shared pipeline tests (prompts in place of a batch size) with the diffusion prior, then the
regression prior, image variations, embeddings given directly, guidance and the checks of its components."""

import tempfile

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, PriorTransformer, UnCLIPScheduler, UNet2DConditionModel
from PIL import Image
from transformers import CLIPConfig, CLIPModel

from hfgen import UnCLIPPipeline, UnCLIPRegressionPrior, UnCLIPRegressionPriorConfig
from hfgen.data.captions import LabelCaptions
from hfgen.models.clip_heads import build_clip_processor
from hfgen.pipelines.unclip.pipeline_unclip import clip_pixels, clip_towers
from hfgen.testing.pipeline_tester import PipelineTesterMixin, raises_value_error, seeded

PROMPT = "a handwritten digit one"
EMBEDDING_DIM, TEXT_LENGTH = 16, 8


def tiny_clip() -> tuple[CLIPModel, object]:
    """A tiny CLIP (16-wide embeddings, 16 px images) and its processor, with a tokenizer over the digit captions."""
    captions = LabelCaptions([str(i) for i in range(10)])
    texts = [template.format(phrase) for template in captions.templates for phrase in captions.phrases]
    with tempfile.TemporaryDirectory() as folder:
        processor = build_clip_processor(texts, folder, image_size=16, max_length=TEXT_LENGTH)
    tokenizer = processor.tokenizer
    tower = dict(hidden_size=EMBEDDING_DIM, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    config = CLIPConfig(
        text_config={
            **tower,
            "vocab_size": len(tokenizer),
            "max_position_embeddings": TEXT_LENGTH,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={**tower, "image_size": 16, "patch_size": 8},
        projection_dim=EMBEDDING_DIM,
    )
    torch.manual_seed(0)
    return CLIPModel(config).eval(), processor


def tiny_decoder() -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=16,
        in_channels=1,
        out_channels=1,
        block_out_channels=(16, 32),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=4,
        norm_num_groups=8,
        encoder_hid_dim=EMBEDDING_DIM,
        encoder_hid_dim_type="image_proj",
        addition_embed_type="image",
    ).eval()


def tiny_components(prior_type: str = "diffusion") -> dict:
    clip, processor = tiny_clip()
    text_encoder, image_encoder = clip_towers(clip)
    torch.manual_seed(1)
    if prior_type == "diffusion":
        prior = PriorTransformer(
            num_attention_heads=2,
            attention_head_dim=8,
            num_layers=1,
            embedding_dim=EMBEDDING_DIM,
            num_embeddings=TEXT_LENGTH,
            additional_embeddings=4,
        )
        # a standardisation as training sets it from the data's embeddings
        with torch.no_grad():
            prior.clip_mean.normal_(0, 0.1)
            prior.clip_std.uniform_(0.1, 0.3)
        prior_scheduler = UnCLIPScheduler(num_train_timesteps=100, prediction_type="sample", clip_sample_range=5.0)
    else:
        prior = UnCLIPRegressionPrior(UnCLIPRegressionPriorConfig(embedding_dim=EMBEDDING_DIM, hidden_size=32))
        prior_scheduler = None
    torch.manual_seed(2)
    return {
        "prior": prior.eval(),
        "decoder": tiny_decoder(),
        "text_encoder": text_encoder,
        "tokenizer": processor.tokenizer,
        "image_encoder": image_encoder,
        "feature_extractor": processor.image_processor,
        "decoder_scheduler": DDIMScheduler(num_train_timesteps=100, clip_sample=False),
        "prior_scheduler": prior_scheduler,
    }


class TestUnCLIPPipeline(PipelineTesterMixin):
    pipeline_class = UnCLIPPipeline
    # Generated once from this code (tiny_components, 2 prior and 2 decoder steps): regenerate after
    # an intended change by running test_expected_slice and pasting the values its failure prints.
    expected_slice = (0.749175, 1.000000, 0.733975, 0.000000, 1.000000, 1.000000, 0.358245, 0.992988, 0.000000)

    def get_components(self, **config_overrides):
        return tiny_components(**config_overrides)

    def latent_shape(self, pipeline):
        return (1, 16, 16)

    def get_inputs(self, generator, batch_size: int = 2) -> dict:
        return {
            "prompt": PROMPT,
            "num_images_per_prompt": batch_size,
            "generator": generator,
            "prior_num_inference_steps": 2,
            "num_inference_steps": 2,
            # no decoder guidance: the random tiny decoder saturates most pixels with it (guidance has its own test)
            "guidance_scale": 1.0,
        }

    def replay_inputs(self, output) -> dict:
        # the prior's embeddings and the decoder's noise redo the images without drawing anything
        return {
            "image_embeds": output.image_embeds,
            "latents": output.latents,
            "num_inference_steps": 2,
            "guidance_scale": 1.0,
        }

    def test_batch_size_is_checked(self):
        pipeline = self.get_pipeline()
        for bad in (0, -1, 2.5, "4", True):
            with raises_value_error("num_images_per_prompt must be a positive int", repr(bad)):
                self.run_pipeline(pipeline, batch_size=bad)
        for bad in ([], [1], ["a", 2]):
            with raises_value_error("prompt must be a string or a non-empty list of strings"):
                pipeline(prompt=bad)

    def test_generator_is_checked(self):
        pipeline = self.get_pipeline()
        with raises_value_error("generator must be a torch.Generator", "one per image", "'seed'"):
            pipeline(prompt=PROMPT, generator="seed")
        with raises_value_error("got 3 generators for batch_size=2", "one torch.Generator per image"):
            self.run_pipeline(pipeline, seed=[0, 1, 2], batch_size=2)
        with raises_value_error("generator must be a torch.Generator", "holds 7 (int)"):
            pipeline(prompt=PROMPT, num_images_per_prompt=2, generator=[seeded(0), 7])

    def test_latents_set_the_batch_size_and_are_checked(self):
        pipeline = self.get_pipeline()
        latents = torch.randn(3, 1, 16, 16, generator=seeded(0))
        inputs = dict(prior_num_inference_steps=2, num_inference_steps=2, output_type="pt")
        output = pipeline(prompt=[PROMPT] * 3, latents=latents, **inputs)
        assert output.images.shape == (3, 1, 16, 16) and torch.equal(output.latents, latents)
        with raises_value_error("latents has 3 rows but the call makes 2 images"):
            pipeline(prompt=PROMPT, num_images_per_prompt=2, latents=latents, **inputs)
        with raises_value_error("latents must be a torch.Tensor of shape (batch, 1, 16, 16)", "got (2, 1, 16, 17)"):
            pipeline(prompt=PROMPT, num_images_per_prompt=2, latents=torch.zeros(2, 1, 16, 17), **inputs)


@pytest.fixture(scope="module")
def pipeline():
    pipeline = UnCLIPPipeline(**tiny_components())
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def run(pipeline, **kwargs):
    arguments = dict(generator=seeded(0), prior_num_inference_steps=2, num_inference_steps=2, output_type="pt")
    return pipeline(**{**arguments, **kwargs})


def test_the_towers_are_clips_own_embeddings():
    clip, processor = tiny_clip()
    text_encoder, image_encoder = clip_towers(clip)
    inputs = processor.tokenizer([PROMPT, "the digit two"], padding=True, return_tensors="pt")
    pixels = torch.randn(2, 3, 16, 16, generator=seeded(0))
    with torch.no_grad():
        assert torch.allclose(text_encoder(**inputs).text_embeds, clip.get_text_features(**inputs).pooler_output)
        expected = clip.get_image_features(pixel_values=pixels).pooler_output
        assert torch.allclose(image_encoder(pixel_values=pixels).image_embeds, expected)


def test_tensors_are_prepared_as_the_image_processor_prepares_pil_images(pipeline):
    # a 16 px greyscale image: the PIL path (feature extractor) and the tensor path (clip_pixels) agree
    array = np.random.default_rng(0).integers(0, 256, (16, 16), dtype=np.uint8)
    tensor = torch.from_numpy(array).float()[None, None] / 255
    processor = pipeline.feature_extractor
    from_pil = processor(images=Image.fromarray(array), return_tensors="pt").pixel_values
    from_tensor = clip_pixels(tensor * 2 - 1, 16, processor.image_mean, processor.image_std)
    assert torch.allclose(from_pil, from_tensor, atol=1e-5)
    assert torch.allclose(pipeline.encode_image(Image.fromarray(array)), pipeline.encode_image(tensor), atol=1e-5)
    # an array is channels-last, and one image may come unbatched, as np.asarray(pil_image) / 255 gives it
    from_array = pipeline.encode_image(array[:, :, None] / 255)
    assert torch.allclose(from_array, pipeline.encode_image(tensor), atol=1e-5)


def test_variations_decode_the_input_images_own_embeddings(pipeline):
    images = torch.rand(2, 1, 16, 16, generator=seeded(0))
    output = run(pipeline, image=images, num_images_per_prompt=2)
    assert output.images.shape == (4, 1, 16, 16)
    own = pipeline.encode_image(images)
    assert torch.allclose(output.image_embeds, own.repeat_interleave(2, dim=0))
    assert torch.allclose(output.image_embeds.norm(dim=-1), torch.ones(4), atol=1e-5)
    # the same embeddings given directly draw the same images
    direct = run(pipeline, image_embeds=own * 3, num_images_per_prompt=2)
    assert torch.allclose(direct.images, output.images, atol=1e-6)
    assert not torch.allclose(output.images[0], output.images[1]), "two variations of one image were identical"


def test_prior_and_decoder_guidance_change_the_images(pipeline):
    guided = run(pipeline, prompt=PROMPT, guidance_scale=3.0)
    assert torch.allclose(guided.image_embeds.norm(dim=-1), torch.ones(1), atol=1e-5)
    assert not torch.allclose(guided.image_embeds, run(pipeline, prompt=PROMPT, prior_guidance_scale=1.0).image_embeds)
    assert not torch.allclose(guided.images, run(pipeline, prompt=PROMPT, guidance_scale=1.0).images)
    assert not torch.allclose(guided.image_embeds, run(pipeline, prompt="the digit seven").image_embeds)
    with raises_value_error("prior_guidance_scale must be a number >= 0"):
        run(pipeline, prompt=PROMPT, prior_guidance_scale=-1)


def test_exactly_one_input(pipeline):
    with raises_value_error("give exactly one of prompt", "got none"):
        pipeline()
    with raises_value_error("give exactly one of prompt", "got prompt, image"):
        pipeline(prompt=PROMPT, image=torch.rand(1, 1, 16, 16))
    with raises_value_error("image holds values in", "give images in [0, 1]"):
        pipeline(image=torch.rand(1, 1, 16, 16) * 2 - 1)
    with raises_value_error(f"image_embeds must be a (batch, {EMBEDDING_DIM}) tensor"):
        pipeline(image_embeds=torch.zeros(2, 3))


def test_the_regression_prior_predicts_one_embedding_per_prompt(tmp_path):
    pipeline = UnCLIPPipeline(**tiny_components("regression"))
    pipeline.set_progress_bar_config(disable=True)
    first = run(pipeline, prompt=[PROMPT, "the digit two"])
    again = run(pipeline, prompt=[PROMPT, "the digit two"], generator=seeded(5))
    assert torch.equal(first.image_embeds, again.image_embeds), "the regression prior is deterministic"
    text_embeds, _, _ = pipeline.encode_prompt([PROMPT, "the digit two"])
    assert torch.allclose(first.image_embeds, pipeline.prior(text_embeds).image_embeds)
    pipeline.save_pretrained(tmp_path)
    loaded = UnCLIPPipeline.from_pretrained(tmp_path)
    assert type(loaded.prior) is UnCLIPRegressionPrior and loaded.prior_scheduler is None
    loaded.set_progress_bar_config(disable=True)
    assert torch.equal(run(loaded, prompt=[PROMPT, "the digit two"]).images, first.images)


def test_components_that_do_not_fit_are_refused():
    components = tiny_components()
    with raises_value_error("a PriorTransformer prior samples with a prior_scheduler"):
        UnCLIPPipeline(**{**components, "prior_scheduler": None})
    wide = UnCLIPRegressionPrior(UnCLIPRegressionPriorConfig(embedding_dim=8, hidden_size=8))
    with raises_value_error("the prior makes 8-wide image embeddings but the CLIP model's are 16-wide"):
        UnCLIPPipeline(**{**components, "prior": wide})
    plain = UNet2DConditionModel(
        sample_size=16,
        in_channels=1,
        out_channels=1,
        block_out_channels=(16, 32),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        norm_num_groups=8,
    )
    with raises_value_error("an unCLIP decoder takes the image embedding", "addition_embed_type='image'"):
        UnCLIPPipeline(**{**components, "decoder": plain})
