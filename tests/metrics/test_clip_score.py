"""CLIP score through torchmetrics with a tiny CLIP saved to a local folder."""

import pytest
import torch
from transformers import CLIPModel, CLIPProcessor

from hfgen.metrics import clip_score, load_clip_score


def test_clip_score_is_the_scaled_cosine_similarity(tiny_clip_folder):
    metric = load_clip_score(tiny_clip_folder)
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(4, 1, 32, 32, generator=generator) * 2 - 1  # greyscale in [-1, 1]
    prompts = ["a digit seven", "a digit two", "a digit", "seven"]
    score = clip_score(metric, images, prompts)
    assert metric(images, prompts).shape == (4,)
    # the same number from the model directly: 100 x cosine of the projected embeddings, floored at 0, averaged
    model = CLIPModel.from_pretrained(tiny_clip_folder).eval()
    processor = CLIPProcessor.from_pretrained(tiny_clip_folder)
    pixels = ((images + 1) * 127.5).round().to(torch.uint8).expand(-1, 3, -1, -1)
    inputs = processor(text=prompts, images=list(pixels), return_tensors="pt", padding=True)
    with torch.no_grad():
        image_embeds = model.get_image_features(pixel_values=inputs["pixel_values"])
        text_embeds = model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    image_embeds = getattr(image_embeds, "pooler_output", image_embeds)
    text_embeds = getattr(text_embeds, "pooler_output", text_embeds)
    cosine = torch.nn.functional.cosine_similarity(image_embeds, text_embeds)
    assert score == pytest.approx((100 * cosine).clamp(min=0).mean().item(), abs=1e-4)
    with pytest.raises(ValueError, match="got 4 images and 3 prompts"):
        metric(images, prompts[:3])


def test_a_folder_without_clip_is_one_line(tmp_path):
    with pytest.raises(ValueError, match="is not a CLIP model with its processor") as error:
        load_clip_score(str(tmp_path))
    assert "\n" not in str(error.value)
