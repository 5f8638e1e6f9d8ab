"""Feature extractors from transformers vision backbones (`--metrics_model`), and the choice of extractor for a run.

On a user's own data, hfgen's digits classifier means nothing: FID, KID and precision / recall need features of a
network that knows natural images. Any transformers vision backbone serves, by Hub id or local folder; DINOv2
(`facebook/dinov2-small` ... `-giant`) is the recommended one: Stein et al. (NeurIPS 2023, "Exposing flaws of
generative model evaluation metrics") found the Frechet distance in DINOv2-ViT-L/14 features ("FD-DINOv2") to follow
human judgement far better than Inception's. CLIP vision towers work too, also from a full CLIP checkpoint.

The preprocessing is done here in torch, on the batch as the metrics get it (no PIL round trip, so it runs on the
accelerator and keeps full precision): [-1, 1] images are resized to the backbone's input size and normalised with
the mean / std of its image processor config.
"""

import logging
import os
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from ..data.images import BUILTIN_DIGITS
from .feature_extractor import load_digits_feature_extractor, to_signed_unit_range

RECOMMENDED_METRICS_MODEL = "facebook/dinov2-small"
"""Suggested in messages: the smallest DINOv2 (22 M parameters), fast enough for evaluation on a CPU."""

DEFAULT_IMAGE_MEAN = (0.485, 0.456, 0.406)
DEFAULT_IMAGE_STD = (0.229, 0.224, 0.225)
"""ImageNet statistics, the normalisation of most vision backbones; used only when neither the folder's
preprocessor_config.json nor a default image processor of the model type says otherwise."""


class MetricsModelError(ValueError):
    """Raised when `--metrics_model` cannot serve as a feature extractor; the message names it and what to do."""


@contextmanager
def _quiet_transformers():
    """Silence transformers' load report while a vision tower is taken from a full checkpoint (e.g. CLIP): the
    text-tower weights it lists as unused are expected. Missing weights are checked separately, so nothing that
    matters is hidden."""
    transformers_logger = logging.getLogger("transformers")
    level = transformers_logger.level
    transformers_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        transformers_logger.setLevel(level)


def _square_or_pair(value) -> tuple[int, int]:
    if isinstance(value, (list, tuple)):
        return int(value[0]), int(value[1])
    return int(value), int(value)


def _input_size(processor, config) -> tuple[int, int] | None:
    """(height, width) the backbone takes: the processor's crop, else its fixed size, else the config's image_size."""
    if processor is not None:
        crop = getattr(processor, "crop_size", None)
        if getattr(processor, "do_center_crop", False) and crop and "height" in crop:
            return int(crop["height"]), int(crop["width"])
        size = getattr(processor, "size", None) or {}
        if "height" in size and "width" in size:
            return int(size["height"]), int(size["width"])
        if "shortest_edge" in size:
            return int(size["shortest_edge"]), int(size["shortest_edge"])
    if getattr(config, "image_size", None) is not None:
        return _square_or_pair(config.image_size)
    return None


def _message_line(error: Exception) -> str:
    """The first line of an exception's message (transformers' loading errors run over several lines)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class BackboneFeatureExtractor(nn.Module):
    r"""
    A transformers vision backbone as a feature extractor for [`GenerativeMetrics`] (FID, KID, precision / recall).

    The forward pass takes images `(batch, 1 or 3, height, width)`, float in [-1, 1] or uint8, and returns the
    backbone's pooled features `(batch, num_features)` in float64:

    1. grey images are repeated to 3 channels (or RGB images reduced to grey by BT.601 luma for a 1-channel backbone);
    2. each image is resized whole to `image_size` with bicubic, antialiased `torch.nn.functional.interpolate`
       (no resize-then-center-crop: generated images are square and their borders count), clamped to [-1, 1];
    3. [-1, 1] is mapped to the processor's pixel scale (0-255 times `rescale_factor` when it rescales) and normalised
       with `image_mean` / `image_std` when it normalises;
    4. the features are the model's `pooler_output` (flattened; DINOv2: the layer-normed CLS token, as FD-DINOv2;
       CLIP: the post-layernorm CLS token), or the mean of `last_hidden_state` over positions for a model without a
       pooler.

    There are no class logits, so [`GenerativeMetrics`] measures no Inception Score with it.

    Args:
        model (`transformers.PreTrainedModel`):
            A vision model taking `pixel_values`; frozen and kept in eval mode.
        image_size (`tuple[int, int]`):
            (height, width) the images are resized to.
        image_mean, image_std (`tuple[float, ...]`):
            Per-channel normalisation after rescaling.
        rescale_factor (`float`, *optional*, defaults to 1/255):
            Factor from 0-255 pixels to the scale the mean / std apply to; `None` when the processor does not rescale.
        do_normalize (`bool`, *optional*, defaults to `True`):
            Whether to apply `image_mean` / `image_std`.
        name (`str`, *optional*):
            The Hub id or folder it came from, for the protocol.
        preprocessing_source (`str`, *optional*):
            Where the size and normalisation came from, for the protocol.
    """

    def __init__(
        self,
        model: nn.Module,
        image_size: tuple[int, int],
        image_mean: tuple[float, ...] = DEFAULT_IMAGE_MEAN,
        image_std: tuple[float, ...] = DEFAULT_IMAGE_STD,
        rescale_factor: float | None = 1 / 255,
        do_normalize: bool = True,
        name: str | None = None,
        preprocessing_source: str = "given explicitly",
    ):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.num_channels = int(getattr(model.config, "num_channels", 3))
        if self.num_channels not in (1, 3):
            raise ValueError(f"the backbone takes {self.num_channels}-channel images; only 1 or 3 are supported")
        if len(image_mean) != self.num_channels or len(image_std) != self.num_channels:
            raise ValueError(
                f"image_mean {list(image_mean)} and image_std {list(image_std)} must have one value per channel of "
                f"the backbone ({self.num_channels})"
            )
        self.image_size = _square_or_pair(image_size)
        self.rescale_factor = rescale_factor
        self.do_normalize = do_normalize
        self.name = name or model.config.name_or_path or type(model).__name__
        self.preprocessing_source = preprocessing_source
        device = next(model.parameters()).device
        mean = torch.tensor(image_mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        std = torch.tensor(image_std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.register_buffer("image_mean", mean, persistent=False)
        self.register_buffer("image_std", std, persistent=False)
        # Read by torchmetrics' FID to size its states; one probe gives the exact pooled dimension of any backbone.
        with torch.no_grad():
            probe = torch.zeros(1, self.num_channels, *self.image_size, device=self.image_mean.device)
            self.num_features = int(self.forward(probe).shape[1])

    def train(self, mode: bool = True) -> "BackboneFeatureExtractor":
        # A metric's extractor is a fixed function: dropout and the like must stay off under `parent.train()`.
        return super().train(False)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Steps 1-3 of the forward pass: the `pixel_values` the backbone receives."""
        images = to_signed_unit_range(images).to(self.image_mean.device, torch.float32)
        if images.shape[1] == 1 and self.num_channels == 3:
            images = images.expand(-1, 3, -1, -1)
        elif images.shape[1] == 3 and self.num_channels == 1:
            luma = torch.tensor((0.299, 0.587, 0.114), device=images.device)
            images = torch.einsum("bchw,c->bhw", images, luma).unsqueeze(1)
        if tuple(images.shape[-2:]) != self.image_size:
            images = F.interpolate(images, size=self.image_size, mode="bicubic", align_corners=False, antialias=True)
            # Bicubic overshoots at sharp edges; a processor resizing 8-bit PIL images clips the same way.
            images = images.clamp(-1.0, 1.0)
        pixels = (images + 1.0) * 127.5
        if self.rescale_factor is not None:
            pixels = pixels * self.rescale_factor
        if self.do_normalize:
            pixels = (pixels - self.image_mean) / self.image_std
        return pixels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pixel_values = self.preprocess(images).to(self.model.dtype)
        outputs = self.model(pixel_values=pixel_values)
        pooled = getattr(outputs, "pooler_output", None)
        if pooled is None:
            hidden = outputs.last_hidden_state
            # (batch, tokens, dim) for transformers, (batch, channels, height, width) for convolutional backbones.
            pooled = hidden.mean(dim=1) if hidden.ndim == 3 else hidden.flatten(2).mean(dim=2)
        # float64 for the metrics downstream, as the digits extractor: KID's unbiased MMD^2 is a small difference of
        # large sums.
        return pooled.flatten(1).double()

    @property
    def protocol(self) -> dict:
        """What a number measured through this extractor depends on, for model cards and metric logs."""
        config = self.model.config
        height, width = self.image_size
        if self.do_normalize:
            normalization = (
                f"(x - mean) / std with mean {[round(v, 4) for v in self.image_mean.flatten().tolist()]}, "
                f"std {[round(v, 4) for v in self.image_std.flatten().tolist()]}"
            )
        else:
            normalization = "none"
        scale = f"0-255 x {self.rescale_factor:.6g}" if self.rescale_factor is not None else "0-255"
        return {
            "feature_extractor": f"{self.name} ({config.model_type}, {type(self.model).__name__})",
            "features": f"pooled backbone features, {self.num_features}-d (no class logits: no Inception Score)",
            "input_resolution": height if height == width else [height, width],
            "resize": "torch.nn.functional.interpolate of the whole image, bicubic, antialias=True, clamped to "
            "[-1, 1]",
            "normalization": f"pixels {scale}, then {normalization} ({self.preprocessing_source})",
            "color": "grey repeated to 3 channels"
            if self.num_channels == 3
            else "RGB converted to grey with ITU-R BT.601 luma weights (0.299, 0.587, 0.114)",
        }


def _load_preprocessing(name_or_path: str, config, model_config, load_kwargs: dict) -> dict:
    """Size and normalisation from the checkpoint's image processor, else from the defaults of the model type's
    image processor class, else ImageNet statistics at the config's image_size."""
    from transformers import AutoImageProcessor
    from transformers.models.auto.image_processing_auto import (
        IMAGE_PROCESSOR_MAPPING_NAMES,
        get_image_processor_class_from_name,
    )

    processor, source = None, None
    try:
        # The PIL backend: torchvision is not a dependency, and only the processor's settings are read.
        processor = AutoImageProcessor.from_pretrained(name_or_path, backend="pil", **load_kwargs)
        source = "from its preprocessor_config.json"
    except (OSError, ValueError):
        # A vision config's own type (e.g. clip_vision_model) often has no processor entry, its family's does.
        model_types = (
            config.model_type,
            model_config.model_type,
            model_config.model_type.removesuffix("_vision_model"),
        )
        for model_type in model_types:
            class_names = IMAGE_PROCESSOR_MAPPING_NAMES.get(model_type) or {}
            class_name = class_names.get("pil") or class_names.get("torchvision")
            processor_class = get_image_processor_class_from_name(class_name) if class_name else None
            if processor_class is not None:
                try:
                    processor = processor_class()
                except ImportError:  # a backend whose library is missing
                    continue
                source = f"defaults of {processor_class.__name__}: the checkpoint has no preprocessor_config.json"
                break
    if processor is None:
        return {
            "image_size": _input_size(None, model_config),
            "preprocessing_source": "ImageNet statistics: the checkpoint has no preprocessor_config.json",
        }
    # Without its own processor config, the image size is the model's (a default processor's 224 may not fit it).
    image_size = _input_size(processor, model_config) if source.startswith("from") else _input_size(None, model_config)
    if image_size is None:
        image_size = _input_size(processor, model_config)
    rescale = getattr(processor, "do_rescale", True)
    return {
        "image_size": image_size,
        "image_mean": tuple(getattr(processor, "image_mean", None) or DEFAULT_IMAGE_MEAN),
        "image_std": tuple(getattr(processor, "image_std", None) or DEFAULT_IMAGE_STD),
        "rescale_factor": float(getattr(processor, "rescale_factor", 1 / 255)) if rescale else None,
        "do_normalize": bool(getattr(processor, "do_normalize", True)),
        "preprocessing_source": source,
    }


def load_backbone_feature_extractor(
    metrics_model: str,
    device: str | torch.device | None = None,
    cache_dir: str | None = None,
    revision: str | None = None,
) -> BackboneFeatureExtractor:
    r"""
    Load `--metrics_model` (a Hub id or a local folder) as a [`BackboneFeatureExtractor`].

    The model is loaded with `AutoModel`; for a checkpoint whose config holds a `vision_config` (a full CLIP, SigLIP,
    ...) only its vision tower is loaded (`CLIPVisionModel` for CLIP). Size and normalisation come from the
    checkpoint's `preprocessor_config.json`, or, when it has none, from the defaults of the model type's image
    processor and the config's `image_size` (the protocol says which).

    Args:
        metrics_model (`str`):
            E.g. `"facebook/dinov2-small"`, `"openai/clip-vit-base-patch32"`, or a folder with `config.json` and
            weights. Hub ids are fetched only where the Hub is reachable (not under `HF_HUB_OFFLINE=1`), and found in
            the cache otherwise.
        device (`str` or `torch.device`, *optional*):
            Where to put the model.

    Raises:
        [`MetricsModelError`]: one line naming `--metrics_model`, the id, why, and what to do.
    """
    from transformers import AutoConfig, AutoModel, PreTrainedConfig

    load_kwargs = {"cache_dir": cache_dir, "revision": revision}
    advice = (
        "download it first where there is a network (e.g. `hf download "
        f"{metrics_model}`, with the same HF_HOME), or pass a local folder holding its config.json and weights"
    )
    source = os.path.expanduser(metrics_model)
    looks_like_path = os.path.isabs(metrics_model) or metrics_model.startswith((".", "~"))
    if looks_like_path and not os.path.isdir(source):
        raise MetricsModelError(
            f"--metrics_model {metrics_model!r} is not a folder: pass the folder of a saved model (config.json and "
            f"weights) or a Hub id such as {RECOMMENDED_METRICS_MODEL}"
        )
    try:
        config = AutoConfig.from_pretrained(source, **load_kwargs)
    except (OSError, ValueError) as error:
        raise MetricsModelError(
            f"--metrics_model {metrics_model!r} cannot be loaded ({_message_line(error)}): {advice}"
        ) from error

    model_config = getattr(config, "vision_config", None)
    if not isinstance(model_config, PreTrainedConfig):
        model_config = config
    try:
        with _quiet_transformers():
            model, loading_info = AutoModel.from_pretrained(
                source, config=model_config, output_loading_info=True, **load_kwargs
            )
    except (OSError, ValueError) as error:
        raise MetricsModelError(
            f"--metrics_model {metrics_model!r} cannot be loaded as a vision backbone ({_message_line(error)}): pass "
            f"a vision model such as {RECOMMENDED_METRICS_MODEL}, or {advice}"
        ) from error
    if getattr(model, "main_input_name", None) != "pixel_values":
        raise MetricsModelError(
            f"--metrics_model {metrics_model!r} is a {config.model_type} model that does not take images: pass a "
            f"vision backbone such as {RECOMMENDED_METRICS_MODEL}"
        )
    missing = sorted(loading_info.get("missing_keys", []))
    if missing:
        # Randomly initialised layers would give features, and metrics, that mean nothing.
        raise MetricsModelError(
            f"--metrics_model {metrics_model!r}: its checkpoint has no weights for {len(missing)} parameters of "
            f"{type(model).__name__} (e.g. {missing[0]}): pass a complete checkpoint of a vision backbone"
        )

    preprocessing = _load_preprocessing(source, config, model_config, load_kwargs)
    if preprocessing["image_size"] is None:
        raise MetricsModelError(
            f"--metrics_model {metrics_model!r} states no input size (no preprocessor_config.json and no image_size "
            "in its config): add a preprocessor_config.json to the folder"
        )
    if device is not None:
        model = model.to(device)
    return BackboneFeatureExtractor(model, name=metrics_model, **preprocessing)


def resolve_feature_extractor(
    metrics_model: str | None,
    dataset_name: str | None,
    train_data_dir: str | None = None,
    device: str | torch.device | None = None,
) -> tuple[nn.Module | None, str]:
    r"""
    The feature extractor of a run's distribution metrics, and a one-line note saying which (or why there is none).

    - `metrics_model` given: that backbone ([`load_backbone_feature_extractor`]), on any data.
    - otherwise, the built-in digits (`dataset_name` is `"hfgen/digits"` or None, and no `train_data_dir`): the shipped
      digits classifier ([`DigitsFeatureExtractor`], which also gives the Inception Score's logits).
    - otherwise: `None`. hfgen ships no extractor that knows other images, so FID, KID and precision / recall are not
      measured, and the note says how to get them; scripts still report what needs no extractor (PSNR / SSIM).

    Args:
        metrics_model (`str`, *optional*):
            `--metrics_model`.
        dataset_name (`str`, *optional*), train_data_dir (`str`, *optional*):
            `--dataset_name` and `--train_data_dir` as the script got them (`train_data_dir` takes precedence).
        device (`str` or `torch.device`, *optional*):
            Where to put the extractor.

    Returns:
        `(extractor, note)`: `extractor` goes to `GenerativeMetrics(extractor)`; `note` is for the log.

    Raises:
        [`MetricsModelError`] when `metrics_model` cannot be loaded.
    """
    if metrics_model is not None:
        extractor = load_backbone_feature_extractor(metrics_model, device=device)
        return extractor, f"distribution metrics through {metrics_model} ({extractor.num_features}-d features)"
    if train_data_dir is None and dataset_name in (None, BUILTIN_DIGITS):
        return load_digits_feature_extractor(device=device), "distribution metrics through hfgen's digits classifier"
    data = train_data_dir if train_data_dir is not None else dataset_name
    return None, (
        f"no feature extractor for FID on {data}: pass --metrics_model {RECOMMENDED_METRICS_MODEL} (or a local "
        "folder) to measure FID/KID/precision/recall"
    )


__all__ = [
    "RECOMMENDED_METRICS_MODEL",
    "BackboneFeatureExtractor",
    "MetricsModelError",
    "load_backbone_feature_extractor",
    "resolve_feature_extractor",
]
