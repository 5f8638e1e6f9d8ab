"""hfgen's training head on transformers' open-vocabulary detectors, OWL-ViT (Minderer et al. 2022) and OWLv2
(Minderer et al. 2023).

transformers ships `OwlViTForObjectDetection` and `Owlv2ForObjectDetection` for inference only: their outputs have a
`loss` field that nothing fills. [`OwlViTForOpenVocabularyDetection`] keeps the detector as it is, in `detector` (so
any OWL checkpoint loads into it, PEFT LoRA reaches its `q_proj` / `k_proj` / `v_proj` / `out_proj` layers, and
`model.detector.save_pretrained(folder)` writes a plain transformers folder), and adds the set-prediction loss of
`hfgen.losses.detection`: each image's boxes are matched one-to-one to the patch predictions (DETR's Hungarian
matching, Carion et al. 2020), every prediction learns its class scores (matched: its box's class query; unmatched:
no class) and the matched ones learn their box.
"""

import math

import torch
from transformers import Owlv2ForObjectDetection, OwlViTForObjectDetection
from transformers import initialization as init

from ...losses.detection import detection_matching_loss
from ..modeling_utils import HfgenPreTrainedModel
from .configuration_owlvit_heads import OwlViTDetectionConfig

DETECTOR_CLASSES = {"owlvit": OwlViTForObjectDetection, "owlv2": Owlv2ForObjectDetection}

CLASS_PRIOR = 0.01
"""Probability every class score of a new detector starts at: the few objects among many patches make "no object"
the right first guess (Lin et al. 2017's prior for focal-loss training)."""


def _loss_targets(labels: list[dict], batch_size: int, num_queries: int, device) -> list[dict[str, torch.Tensor]]:
    """`labels` in transformers' detection format (`class_labels`, `boxes`) as `detection_matching_loss` takes them
    (`labels`, `boxes`), checked: one dict per image, class ids among the image's text queries."""
    if not isinstance(labels, (list, tuple)) or len(labels) != batch_size:
        raise ValueError(f"labels must be a list of one dict per image ({batch_size}), got {type(labels).__name__}")
    targets = []
    for index, target in enumerate(labels):
        if not isinstance(target, dict) or not {"class_labels", "boxes"} <= set(target):
            raise ValueError(
                f"labels[{index}] must be a dict with 'class_labels' (num_boxes,) and 'boxes' (num_boxes, 4) "
                "normalised cxcywh"
            )
        class_labels, boxes = target["class_labels"], target["boxes"]
        if boxes.ndim != 2 or boxes.shape[-1] != 4 or class_labels.shape != boxes.shape[:1]:
            raise ValueError(
                f"labels[{index}] has 'boxes' of shape {tuple(boxes.shape)} and 'class_labels' of shape "
                f"{tuple(class_labels.shape)}: they must be (num_boxes, 4) and (num_boxes,)"
            )
        if class_labels.is_floating_point():
            raise ValueError(
                f"labels[{index}]['class_labels'] must hold integer query indices, got dtype {class_labels.dtype}"
            )
        if class_labels.numel() and (class_labels.min() < 0 or class_labels.max() >= num_queries):
            raise ValueError(
                f"labels[{index}]['class_labels'] {class_labels.tolist()} must index the image's {num_queries} text "
                "queries"
            )
        targets.append({"labels": class_labels.to(device), "boxes": boxes.to(device)})
    return targets


class OwlViTForOpenVocabularyDetection(HfgenPreTrainedModel):
    """
    Open-vocabulary detection with transformers' OWL-ViT or OWLv2 (`config.detector_config` picks which), trainable:
    `forward(pixel_values, input_ids, attention_mask, labels)` returns the detector's own output
    (`OwlViTObjectDetectionOutput` / `Owlv2ObjectDetectionOutput`: `logits` `(batch, num_patches, num_queries)`,
    `pred_boxes` `(batch, num_patches, 4)` normalised cxcywh, ...) with, when `labels` are given, `loss` (the weighted
    total) and `loss_dict` (`loss_class`, `loss_l1`, `loss_giou`) filled in.

    Build one around a pretrained detector with [`OwlViTForOpenVocabularyDetection.from_owlvit`]; after training,
    `model.detector` is the plain transformers detector (`model.detector.save_pretrained(folder)`), whose outputs its
    processor's `post_process_grounded_object_detection` reads. OWLv2's objectness head is left untrained: the loss
    covers the class and box predictions, which are what text-queried detection scores by.
    """

    config: OwlViTDetectionConfig
    config_class = OwlViTDetectionConfig
    base_model_prefix = "owlvit_detection"
    main_input_name = "pixel_values"
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True

    def __init__(self, config: OwlViTDetectionConfig):
        super().__init__(config)
        self.detector = DETECTOR_CLASSES[config.detector_config.model_type](config.detector_config)
        self.post_init()
        # from_pretrained records the weights' dtype in sub-configs; a new model records it here, so both agree
        config.detector_config.dtype = self.dtype

    def initialize_weights(self):
        """transformers' initialisation of the detector, then its heads moved to OWL's priors.

        transformers' OWL detectors draw their heads' linear layers with the config's `initializer_factor` (1.0) as
        standard deviation, which saturates every box sigmoid and class score of a new detector: harmless for
        checkpoints, fatal for training from scratch. Here the heads start instead from each box at its patch with
        the patch's size (the detector's box bias alone: the last box layer at zero, as DETR-style detectors start)
        and every class probability near 0.01 (the focal loss's prior, Lin et al. 2017). This is done here rather
        than in an `_init_weights`: transformers initialises the detector's modules with the detector's own, and
        does not call one for a custom model's module without parameters of its own, such as this wrapper. Weights
        loaded from a checkpoint are left alone (transformers' `init` functions skip them)."""
        super().initialize_weights()
        detector = self.detector
        std = detector.config.vision_config.initializer_range
        box_heads = [detector.box_head] + ([detector.objectness_head] if hasattr(detector, "objectness_head") else [])
        for head in box_heads:
            for layer in (head.dense0, head.dense1):
                init.normal_(layer.weight, std=std)
                init.zeros_(layer.bias)
            init.zeros_(head.dense2.weight)
            init.zeros_(head.dense2.bias)
        class_head = detector.class_head
        for layer in (class_head.dense0, class_head.logit_shift, class_head.logit_scale):
            init.normal_(layer.weight, std=std)
            init.zeros_(layer.bias)
        init.constant_(class_head.logit_shift.bias, -math.log((1 - CLASS_PRIOR) / CLASS_PRIOR))

    @classmethod
    def from_owlvit(
        cls, detector: OwlViTForObjectDetection | Owlv2ForObjectDetection, **loss_settings
    ) -> "OwlViTForOpenVocabularyDetection":
        """A trainable detector holding a copy of `detector`'s weights; `loss_settings` are the loss fields of
        [`OwlViTDetectionConfig`] (`class_loss`, `class_loss_weight`, ...)."""
        if not isinstance(detector, tuple(DETECTOR_CLASSES.values())):
            raise ValueError(
                "from_owlvit takes an OwlViTForObjectDetection or Owlv2ForObjectDetection, got "
                f"{type(detector).__name__}"
            )
        model = cls(OwlViTDetectionConfig(detector_config=detector.config.to_dict(), **loss_settings))
        model.detector.load_state_dict(detector.state_dict())
        return model.to(detector.device)

    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: list[dict[str, torch.Tensor]] | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ):
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch, 3, image_size, image_size)`):
            Images as the OWL-ViT / OWLv2 image processor prepares them.
        input_ids (`torch.LongTensor` of shape `(batch * num_queries, sequence_length)`):
            The text queries of every image, image after image (as the OWL processor lays them out); a query whose
            first token is 0 is padding and scores no box.
        attention_mask (`torch.LongTensor` of the same shape, *optional*):
            1 on tokens, 0 on padding.
        labels (`list[dict]`, *optional*):
            One dict per image: `class_labels` `(num_boxes,)`, the index of each box's query among the image's
            queries, and `boxes` `(num_boxes, 4)`, normalised cxcywh (centre and size over the image's width and
            height; for OWLv2, over the padded square's side, as its image processor pads). With them the output
            holds the loss.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        # 1. the detector's own forward: class logits per patch and query, and one box per patch
        output = self.detector(
            pixel_values=pixel_values, input_ids=input_ids, attention_mask=attention_mask, return_dict=True, **kwargs
        )
        # 2. the set loss: Hungarian matching, then the class loss on every patch and box losses on matched ones
        if labels is not None:
            batch_size, _, num_queries = output.logits.shape
            targets = _loss_targets(labels, batch_size, num_queries, output.pred_boxes.device)
            losses = detection_matching_loss(
                output.logits,
                output.pred_boxes,
                targets,
                class_loss=self.config.class_loss,
                class_weight=self.config.class_loss_weight,
                l1_weight=self.config.bbox_loss_weight,
                giou_weight=self.config.giou_loss_weight,
                focal_alpha=self.config.focal_alpha,
                focal_gamma=self.config.focal_gamma,
            )
            # a new output rather than fields set on this one: a ModelOutput orders its tuple by insertion, and the
            # loss comes first
            output = type(output)(loss=losses.pop("loss"), loss_dict=losses, **output)
        return output if return_dict else output.to_tuple()


__all__ = ["DETECTOR_CLASSES", "OwlViTForOpenVocabularyDetection"]
