"""Tiny transformers vision backbones saved to folders, standing in for `--metrics_model` (no download)."""

import pytest
import torch
from transformers import (
    BitImageProcessorPil,
    CLIPConfig,
    CLIPModel,
    CLIPVisionConfig,
    CLIPVisionModel,
    Dinov2Config,
    Dinov2Model,
)

TINY_VISION = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 37,
    "patch_size": 8,
    "image_size": 32,
}


@pytest.fixture(scope="session")
def dinov2_folder(tmp_path_factory):
    """A random 2-layer DINOv2 at 32 pixels with the processor settings of facebook/dinov2-* (ImageNet mean / std,
    bicubic), at its own input size."""
    folder = tmp_path_factory.mktemp("dinov2-tiny")
    torch.manual_seed(0)
    Dinov2Model(Dinov2Config(**TINY_VISION)).save_pretrained(folder)
    BitImageProcessorPil(
        size={"height": 32, "width": 32},
        crop_size={"height": 32, "width": 32},
        do_center_crop=False,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def clip_folder(tmp_path_factory):
    """A random full CLIP (text and vision towers) without a preprocessor_config.json."""
    folder = tmp_path_factory.mktemp("clip-tiny")
    torch.manual_seed(0)
    text = {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 37,
        "vocab_size": 99,
        "max_position_embeddings": 16,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "pad_token_id": 1,
    }
    CLIPModel(CLIPConfig(text_config=text, vision_config=TINY_VISION, projection_dim=16)).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def clip_vision_folder(tmp_path_factory):
    """A random CLIP vision tower alone."""
    folder = tmp_path_factory.mktemp("clip-vision-tiny")
    torch.manual_seed(0)
    CLIPVisionModel(CLIPVisionConfig(**TINY_VISION)).save_pretrained(folder)
    return str(folder)
