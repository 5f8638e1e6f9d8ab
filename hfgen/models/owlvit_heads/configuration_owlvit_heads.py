"""Configuration of hfgen's training head on transformers' OWL-ViT / OWLv2 detectors: the detector's own configuration
as a sub-config, and the set-prediction loss that transformers' detectors lack (its class loss and term weights)."""

from transformers import AutoConfig, Owlv2Config, OwlViTConfig
from transformers.configuration_utils import SubConfigSpec

from ...losses.detection import CLASS_LOSSES
from ..configuration_utils import HfgenConfig

DETECTOR_CONFIGS = {"owlvit": OwlViTConfig, "owlv2": Owlv2Config}
"""The detectors the head wraps, by the `model_type` of their configuration."""


class OwlViTDetectionConfig(HfgenConfig):
    r"""
    Configuration of an [`OwlViTForOpenVocabularyDetection`]: transformers' OWL-ViT (Minderer et al. 2022) or OWLv2
    (Minderer et al. 2023) detector, trained with the DETR-style set loss of `hfgen.losses.detection` (Hungarian
    matching of the ground-truth boxes to the patch predictions, then a sigmoid class loss on every prediction and L1
    plus GIoU box losses on the matched ones).

    Args:
        detector_config (`OwlViTConfig`, `Owlv2Config` or `dict`, *optional*):
            The detector's configuration; a dict picks OWL-ViT or OWLv2 by its `model_type` (`"owlvit"`, the default,
            or `"owlv2"`). transformers' OWL-ViT defaults when omitted. Its `projection_dim` must equal the text
            tower's `hidden_size`: the class head compares the text embeddings with image features of that width.
        class_loss (`str`, *optional*, defaults to `"focal"`):
            `"focal"` (sigmoid focal loss, Lin et al. 2017, summed over queries and classes and divided by the number
            of boxes) or `"bce"` (binary cross-entropy averaged over queries and classes).
        class_loss_weight (`float`, *optional*, defaults to 2.0):
            Weight of the class loss in the total, and of the class cost in the matching.
        bbox_loss_weight (`float`, *optional*, defaults to 5.0):
            Weight of the L1 distance of the matched boxes (normalised cxcywh), in the total and in the matching.
        giou_loss_weight (`float`, *optional*, defaults to 2.0):
            Weight of 1 - GIoU (Rezatofighi et al. 2019) of the matched boxes, in the total and in the matching.
        focal_alpha (`float`, *optional*, defaults to 0.25), focal_gamma (`float`, *optional*, defaults to 2.0):
            Weight of the positives and focusing exponent of the focal class loss.
    """

    model_type = "hfgen_owlvit_detection"
    sub_configs_defaults = {"detector_config": SubConfigSpec(config_class=AutoConfig, model_type="owlvit")}

    detector_config: dict | OwlViTConfig | Owlv2Config | None = None
    class_loss: str = "focal"
    class_loss_weight: float = 2.0
    bbox_loss_weight: float = 5.0
    giou_loss_weight: float = 2.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0

    def __post_init__(self, **kwargs):
        if self.detector_config is None:
            self.detector_config = OwlViTConfig()
        elif isinstance(self.detector_config, dict):
            model_type = self.detector_config.get("model_type", "owlvit")
            if model_type not in DETECTOR_CONFIGS:
                raise ValueError(
                    f"OwlViTDetectionConfig.detector_config must be an OWL-ViT or OWLv2 config (model_type one of "
                    f"{list(DETECTOR_CONFIGS)}), got model_type {model_type!r}"
                )
            self.detector_config = DETECTOR_CONFIGS[model_type](**self.detector_config)
        elif not isinstance(self.detector_config, tuple(DETECTOR_CONFIGS.values())):
            raise ValueError(
                "OwlViTDetectionConfig.detector_config must be an OwlViTConfig, an Owlv2Config or a dict, got "
                f"{type(self.detector_config).__name__}"
            )
        text_width = self.detector_config.text_config.hidden_size
        if self.detector_config.projection_dim != text_width:
            raise ValueError(
                f"OwlViTDetectionConfig.detector_config.projection_dim ({self.detector_config.projection_dim}) must "
                f"equal text_config.hidden_size ({text_width}): OWL's class head compares text embeddings with image "
                "features of the text tower's width"
            )
        if self.class_loss not in CLASS_LOSSES:
            raise ValueError(
                f"OwlViTDetectionConfig.class_loss must be one of {CLASS_LOSSES}, got {self.class_loss!r}"
            )
        for name in ("class_loss_weight", "bbox_loss_weight", "giou_loss_weight", "focal_gamma"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"OwlViTDetectionConfig.{name} must be a number >= 0, got {value!r}")
        alpha = self.focal_alpha
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
            raise ValueError(f"OwlViTDetectionConfig.focal_alpha must be a number in [0, 1], got {self.focal_alpha!r}")
        super().__post_init__(**kwargs)


__all__ = ["DETECTOR_CONFIGS", "OwlViTDetectionConfig"]
