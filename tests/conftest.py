"""Shared test setup: no network, a throwaway Hugging Face cache, and tiny real components.

The environment is set when pytest imports this file, before any test module imports huggingface_hub, datasets or
evaluate, which read these variables once at import time.
"""

import os
import tempfile

_HF_HOME = tempfile.TemporaryDirectory(prefix="hfgen-tests-hf-home-")
os.environ["HF_HOME"] = _HF_HOME.name
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_EVALUATE_OFFLINE"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

from hfgen import VAEConfig, VAEModel  # noqa: E402
from hfgen.data import image_transform, load_digits_dataset  # noqa: E402

# The test models are tiny: one thread runs them fastest, and on a busy 2-core machine two threads that wait on
# each other made a forward pass ~80x slower (0.7 s instead of 9 ms).
torch.set_num_threads(1)


@pytest.fixture
def tiny_vae_config() -> VAEConfig:
    """16x16 greyscale images to a 2 x 8 x 8 latent, 8 and 16 feature channels."""
    return VAEConfig(in_channels=1, sample_size=16, block_out_channels=[8, 16], norm_num_groups=4, latent_channels=2)


@pytest.fixture
def tiny_vae(tiny_vae_config) -> VAEModel:
    """A randomly initialised VAE (seeded, so every test sees the same weights), in eval mode."""
    torch.manual_seed(0)
    return VAEModel(tiny_vae_config).eval()


@pytest.fixture(scope="session")
def digits16():
    """The built-in digits at 16x16 pixels, loaded once per session."""
    return load_digits_dataset(16)


@pytest.fixture(scope="session")
def digit_batch(digits16) -> torch.Tensor:
    """Eight real training digits (two each of 0-3) as a `(8, 1, 16, 16)` tensor in [-1, 1]."""
    labels = digits16["train"]["label"]
    indices = [i for digit in range(4) for i in [j for j, label in enumerate(labels) if label == digit][:2]]
    examples = digits16["train"].select(indices)[:]
    return torch.stack(image_transform(16)(examples)["pixel_values"])


@pytest.fixture(scope="session")
def tiny_stable_diffusion_folder(tmp_path_factory) -> str:
    """A Stable-Diffusion-shaped folder saved by diffusers' own StableDiffusionPipeline, at tiny size: an RGB
    AutoencoderKL (32 px to 4 x 16 x 16), a CLIP text encoder with a tokenizer written from files, a cross-attention
    UNet and a DDIM scheduler; no safety checker. What `--pretrained_model_name_or_path` gets from real users."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel

    from hfgen.data.captions import LabelCaptions
    from hfgen.models.latent_diffusion import build_caption_text_encoder, write_caption_tokenizer

    folder = tmp_path_factory.mktemp("tiny-stable-diffusion")
    torch.manual_seed(0)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=4,
        layers_per_block=1,
        sample_size=32,
    )
    vocabulary = LabelCaptions([str(digit) for digit in range(10)]).vocabulary()
    tokenizer = write_caption_tokenizer(vocabulary, folder / "tokenizer-files", model_max_length=16)
    text_encoder = build_caption_text_encoder(tokenizer, hidden_size=32, num_layers=2)
    unet = UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        block_out_channels=(16, 32),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=8,
    )
    scheduler = DDIMScheduler(
        num_train_timesteps=100,
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipeline = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.save_pretrained(folder / "pipeline")
    return str(folder / "pipeline")


@pytest.fixture(scope="session")
def tiny_clip_folder(tmp_path_factory) -> str:
    """A tiny CLIP model with its processor (tokenizer written from files) in a local folder, for CLIP scores."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from hfgen.models.latent_diffusion import write_caption_tokenizer

    folder = tmp_path_factory.mktemp("clip")
    tokenizer = write_caption_tokenizer(["a", "digit", "seven", "two"], folder / "vocab", model_max_length=16)
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=16,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=32,
            patch_size=8,
        ),
        projection_dim=32,
    )
    CLIPModel(config).save_pretrained(folder / "clip")
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder / "clip")
    return str(folder / "clip")


@pytest.fixture(scope="session")
def tiny_groupvit_pipeline():
    """A tiny GroupViT segmentation pipeline (32 px, 8 px patches, two grouping stages), tokenizer written here."""
    import tempfile

    from transformers import GroupViTConfig, GroupViTModel

    from hfgen import GroupViTSegmentationPipeline
    from hfgen.models.clip_heads import build_clip_processor

    with tempfile.TemporaryDirectory() as vocabulary:
        processor = build_clip_processor(["the digit one"], vocabulary, 32, max_length=16)
    tower = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    vision = dict(tower, depths=[1, 1], num_hidden_layers=2, num_group_tokens=[2, 0], num_output_groups=[2, 2])
    text = dict(tower, vocab_size=len(processor.tokenizer), max_position_embeddings=16)
    config = GroupViTConfig(
        text_config=text, vision_config=dict(vision, image_size=32, patch_size=8), projection_dim=8
    )
    model = GroupViTModel(config).eval()
    return GroupViTSegmentationPipeline(model, processor.tokenizer, processor.image_processor)
