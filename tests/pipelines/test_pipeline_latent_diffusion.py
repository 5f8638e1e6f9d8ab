"""LatentDiffusionPipeline: the shared pipeline tests (prompts in place of a batch size), guidance, negative prompts,
both first stages, scheduler swaps, and LoRA files in diffusers' format."""

import tempfile

import pytest
import torch
from diffusers import AutoencoderKL, DDIMScheduler, DPMSolverMultistepScheduler, UNet2DConditionModel

from hfgen import LatentDiffusionPipeline, VAEConfig, VAEModel
from hfgen.data.captions import LabelCaptions
from hfgen.models.latent_diffusion import build_caption_text_encoder, write_caption_tokenizer
from hfgen.pipelines.denoising import classifier_free_guidance
from hfgen.testing.pipeline_tester import PipelineTesterMixin, raises_value_error, seeded

PROMPT = "a handwritten digit one"


def tiny_components(first_stage: str = "hfgen", **unet_overrides) -> dict:
    torch.manual_seed(0)
    if first_stage == "hfgen":
        vae = VAEModel(
            VAEConfig(in_channels=1, sample_size=16, block_out_channels=[8, 16], norm_num_groups=4, latent_channels=4)
        )
    else:
        vae = AutoencoderKL(
            in_channels=1,
            out_channels=1,
            block_out_channels=(8, 16),
            down_block_types=("DownEncoderBlock2D",) * 2,
            up_block_types=("UpDecoderBlock2D",) * 2,
            latent_channels=4,
            norm_num_groups=4,
            layers_per_block=1,
            sample_size=16,
        )
    with tempfile.TemporaryDirectory() as folder:
        tokenizer = write_caption_tokenizer(LabelCaptions([str(i) for i in range(10)]).vocabulary(), folder, 8)
    text_encoder = build_caption_text_encoder(tokenizer, hidden_size=16, num_layers=1)
    unet = UNet2DConditionModel(
        **{
            "sample_size": 8,
            "in_channels": 4,
            "out_channels": 4,
            "block_out_channels": (16, 32),
            "layers_per_block": 1,
            "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
            "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
            "cross_attention_dim": 16,
            "attention_head_dim": 4,
            "norm_num_groups": 8,
            **unet_overrides,
        }
    )
    scheduler = DDIMScheduler(num_train_timesteps=100, clip_sample=False, beta_schedule="scaled_linear")
    return {
        "vae": vae.eval(),
        "text_encoder": text_encoder.eval(),
        "tokenizer": tokenizer,
        "unet": unet.eval(),
        "scheduler": scheduler,
    }


class TestLatentDiffusionPipeline(PipelineTesterMixin):
    pipeline_class = LatentDiffusionPipeline
    # Generated once from this code (tiny_components, 2 DDIM steps, guidance 3): regenerate after an intended change
    # by running test_expected_slice and pasting the values its failure prints.
    expected_slice = (0.293779, 0.406489, 0.541008, 0.418800, 0.455948, 0.607452, 0.618516, 0.462775, 0.543086)

    def get_components(self, **config_overrides):
        return tiny_components(**config_overrides)

    def latent_shape(self, pipeline):
        return (4, 8, 8)

    def get_inputs(self, generator, batch_size: int = 2) -> dict:
        return {
            "prompt": PROMPT,
            "num_images_per_prompt": batch_size,
            "generator": generator,
            "num_inference_steps": 2,
        }

    def replay_inputs(self, output) -> dict:
        return {"latents": output.latents, "prompt": output.prompts, "num_inference_steps": 2}

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
        for bad in (None, [], [1], ["a", 2]):
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
        latents = torch.randn(3, 4, 8, 8, generator=seeded(0))
        output = pipeline(prompt=[PROMPT] * 3, latents=latents, num_inference_steps=2, output_type="pt")
        assert output.images.shape[0] == 3 and torch.equal(output.latents, latents)
        with raises_value_error("latents has 3 rows", "make 2 images"):
            pipeline(prompt=PROMPT, num_images_per_prompt=2, latents=latents)
        with raises_value_error("latents must be a torch.Tensor of shape (batch, 4, 8, 8)", "got (2, 4, 8, 9)"):
            pipeline(prompt=PROMPT, num_images_per_prompt=2, latents=torch.zeros(2, 4, 8, 9))


def test_classifier_free_guidance_mix():
    unconditional, conditional = torch.tensor([1.0, -2.0]), torch.tensor([3.0, 0.0])
    assert torch.equal(classifier_free_guidance(unconditional, conditional, 1.0), conditional)
    assert torch.equal(classifier_free_guidance(unconditional, conditional, 0.0), unconditional)
    assert torch.equal(classifier_free_guidance(unconditional, conditional, 3.0), torch.tensor([7.0, 4.0]))


@pytest.fixture
def pipeline():
    pipeline = LatentDiffusionPipeline(**tiny_components())
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def test_guidance_prompts_and_negative_prompts_change_the_images(pipeline):
    def run(**kwargs):
        arguments = {"prompt": PROMPT, "generator": seeded(0), "num_inference_steps": 3, "output_type": "pt"}
        return pipeline(**{**arguments, **kwargs}).images

    guided = run(guidance_scale=3.0)
    assert torch.equal(guided, run(guidance_scale=3.0))
    assert not torch.allclose(guided, run(guidance_scale=1.0))
    assert not torch.allclose(guided, run(prompt="a handwritten digit seven"))
    assert not torch.allclose(guided, run(negative_prompt="a handwritten digit one"))
    # with guidance 1 the unconditional branch is not run, so a negative prompt changes nothing
    assert torch.equal(run(guidance_scale=1.0), run(guidance_scale=1.0, negative_prompt="the digit zero"))
    # a negative prompt equal to the prompt cancels guidance: the conditional prediction alone
    assert torch.allclose(run(negative_prompt=PROMPT), run(guidance_scale=1.0), atol=1e-5)
    with raises_value_error("negative_prompt has 2 prompts for 1 prompts"):
        run(negative_prompt=["a", "b"])
    with raises_value_error("guidance_scale must be a number >= 0"):
        run(guidance_scale=-1)


def test_prompts_repeat_per_image_and_lists_give_groups(pipeline):
    output = pipeline(
        prompt=["the digit two", "the digit three"], num_images_per_prompt=2, generator=seeded(0), output_type="pt"
    )
    assert output.images.shape == (4, 1, 16, 16)
    assert output.prompts == ["the digit two"] * 2 + ["the digit three"] * 2
    latents = pipeline(prompt=PROMPT, generator=seeded(0), num_inference_steps=2, output_type="latent").images
    assert latents.shape == (1, 4, 8, 8)


def test_an_autoencoder_kl_first_stage_and_a_scheduler_swap(tmp_path):
    pipeline = LatentDiffusionPipeline(**tiny_components(first_stage="autoencoder_kl"))
    pipeline.set_progress_bar_config(disable=True)
    pipeline.scheduler = DPMSolverMultistepScheduler.from_config(pipeline.scheduler.config)
    images = pipeline(prompt=PROMPT, generator=seeded(0), num_inference_steps=3, output_type="pt").images
    assert images.shape == (1, 1, 16, 16) and torch.isfinite(images).all()
    pipeline.save_pretrained(tmp_path)
    loaded = LatentDiffusionPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert type(loaded.vae) is AutoencoderKL and type(loaded.scheduler) is DPMSolverMultistepScheduler
    again = loaded(prompt=PROMPT, generator=seeded(0), num_inference_steps=3, output_type="pt").images
    assert torch.allclose(images, again, atol=1e-6)


def test_a_stable_diffusion_folder_loads_and_samples_what_diffusers_samples(tiny_stable_diffusion_folder):
    from diffusers import StableDiffusionPipeline

    ours = LatentDiffusionPipeline.from_pretrained(tiny_stable_diffusion_folder)
    theirs = StableDiffusionPipeline.from_pretrained(tiny_stable_diffusion_folder)
    for pipeline in (ours, theirs):
        pipeline.set_progress_bar_config(disable=True)
    arguments = dict(prompt=PROMPT, guidance_scale=3.0, num_inference_steps=3, output_type="np")
    expected = theirs(**arguments, generator=seeded(0)).images
    got = ours(**arguments, generator=seeded(0)).images
    assert got.shape == expected.shape == (1, 32, 32, 3)
    assert abs(got - expected).max() < 1e-5


def test_lora_saves_only_lora_keys_and_reloads_to_the_same_images(tiny_stable_diffusion_folder, tmp_path):
    from diffusers import StableDiffusionPipeline
    from safetensors import safe_open

    from hfgen.training.diffusion import add_unet_lora, save_lora

    def sample(pipeline):
        pipeline.set_progress_bar_config(disable=True)
        arguments = dict(prompt=PROMPT, guidance_scale=3.0, num_inference_steps=3, output_type="pt")
        return pipeline(**arguments, generator=seeded(0)).images

    base = sample(LatentDiffusionPipeline.from_pretrained(tiny_stable_diffusion_folder))
    adapted = LatentDiffusionPipeline.from_pretrained(tiny_stable_diffusion_folder)
    add_unet_lora(adapted.unet, rank=2, alpha=4)  # alpha != rank: the scale must survive the round trip
    assert torch.equal(sample(adapted), base)  # B starts at zero
    with torch.no_grad():
        for name, parameter in adapted.unet.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.5, generator=seeded(1))
    trained = sample(adapted)
    assert not torch.allclose(trained, base, atol=1e-3)
    path = save_lora(tmp_path, adapted.unet)
    with safe_open(path, "pt") as weights:
        keys = list(weights.keys())
    assert keys and all(key.startswith("unet.") and ".lora." in key for key in keys)
    assert len(keys) == 2 * sum("lora_A" in name for name, _ in adapted.unet.named_parameters())

    reloaded = LatentDiffusionPipeline.from_pretrained(tiny_stable_diffusion_folder)
    reloaded.load_lora_weights(tmp_path)
    assert torch.allclose(sample(reloaded), trained, atol=1e-6)
    # diffusers' own pipeline takes the same file to the same images
    theirs = StableDiffusionPipeline.from_pretrained(tiny_stable_diffusion_folder)
    theirs.load_lora_weights(tmp_path)
    assert torch.allclose(sample(theirs), trained, atol=1e-5)


def test_a_unet_with_a_guidance_embedding_samples_what_diffusers_lcm_pipeline_samples(tiny_stable_diffusion_folder):
    """A latent consistency model (time_cond_proj_dim) gets the guidance scale as its timestep_cond and runs without
    an unconditional branch: the images are those of diffusers' LatentConsistencyModelPipeline."""
    from diffusers import LatentConsistencyModelPipeline, LCMScheduler

    components = LatentDiffusionPipeline.from_pretrained(tiny_stable_diffusion_folder).components
    torch.manual_seed(0)
    components["unet"] = UNet2DConditionModel.from_config(components["unet"].config, time_cond_proj_dim=32).eval()
    components["scheduler"] = LCMScheduler.from_config(components["scheduler"].config, original_inference_steps=10)
    ours = LatentDiffusionPipeline(**components)
    theirs = LatentConsistencyModelPipeline(
        **components, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )
    for pipeline in (ours, theirs):
        pipeline.set_progress_bar_config(disable=True)
    arguments = dict(prompt=PROMPT, num_inference_steps=2, output_type="np")
    for guidance_scale in (1.5, 4.0):
        expected = theirs(**arguments, guidance_scale=guidance_scale, generator=seeded(0)).images
        got = ours(**arguments, guidance_scale=guidance_scale, generator=seeded(0)).images
        assert got.shape == expected.shape == (1, 32, 32, 3)
        assert abs(got - expected).max() < 1e-4
    # the scale is the student's condition: another scale, other images
    assert abs(got - ours(**arguments, guidance_scale=1.5, generator=seeded(0)).images).max() > 1e-3
    with raises_value_error("negative_prompt: this UNet has its guidance folded in"):
        ours(prompt=PROMPT, negative_prompt="blurry")
