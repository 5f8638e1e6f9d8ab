"""hfgen's heads on transformers' CLIP: a zero-shot image classifier and a linear probe.

Both keep transformers' CLIP towers as they are (so any CLIP checkpoint loads into them, and PEFT LoRA reaches their
`q_proj` / `k_proj` / `v_proj` / `out_proj` layers) and add what transformers lacks: class embeddings built from class
names and prompt templates and saved with the weights (so the saved classifier needs no tokenizer to classify), and
a linear classifier on frozen image embeddings, fitted in closed-form-like full-batch L-BFGS.
"""

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPModel, CLIPVisionModelWithProjection, PreTrainedModel  # noqa: F401
from transformers import initialization as init
from transformers.modeling_outputs import ImageClassifierOutput

from ..modeling_utils import HfgenPreTrainedModel
from .configuration_clip_heads import CLIPLinearProbeConfig, CLIPZeroShotClassifierConfig

# `PreTrainedModel` stays imported by that name: diffusers loads a pipeline component by looking a base class it
# knows up in the component's module, whose path pipeline folders record.


def _embedding(output) -> torch.Tensor:
    # transformers 5's get_*_features return a model output whose `pooler_output` is the projected embedding
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _classification_output(logits: torch.Tensor, labels: torch.Tensor | None, return_dict: bool):
    loss = F.cross_entropy(logits, labels) if labels is not None else None
    if not return_dict:
        return (logits,) if loss is None else (loss, logits)
    return ImageClassifierOutput(loss=loss, logits=logits)


@torch.no_grad()
def prompt_ensemble_embeddings(
    clip: CLIPModel, tokenizer, class_names: list[str], templates: list[str]
) -> torch.Tensor:
    """One normalised embedding per class, `(num_classes, projection_dim)`: the mean direction of `clip`'s text
    embeddings of the class name in every template (prompt ensembling, Radford et al. 2021)."""
    prompts = [template.format(name) for name in class_names for template in templates]
    max_length = clip.config.text_config.max_position_embeddings
    inputs = tokenizer(prompts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    inputs = {key: value.to(clip.device) for key, value in inputs.items()}
    text = F.normalize(_embedding(clip.get_text_features(**inputs)), dim=-1)
    return F.normalize(text.view(len(class_names), len(templates), -1).mean(dim=1), dim=-1)


def fit_linear_classifier(
    classifier: nn.Linear, embeddings: torch.Tensor, labels: torch.Tensor, weight_decay: float, max_iter: int
) -> float:
    """Fit `classifier` to `embeddings` `(n, in_features)` and class indices `labels` `(n,)` by L2-regularised
    multinomial logistic regression (full-batch L-BFGS, as the CLIP paper's linear probes); returns the final
    objective."""
    if embeddings.ndim != 2 or embeddings.shape[1] != classifier.in_features:
        raise ValueError(f"embeddings must be (n, {classifier.in_features}), got {tuple(embeddings.shape)}")
    if (
        labels.shape != (embeddings.shape[0],)
        or not 0 <= int(labels.min()) <= int(labels.max()) < classifier.out_features
    ):
        raise ValueError(
            f"labels must be ({embeddings.shape[0]},) class indices below {classifier.out_features}, got shape "
            f"{tuple(labels.shape)}"
        )
    embeddings = embeddings.to(classifier.weight)
    labels = labels.to(classifier.weight.device)
    optimizer = torch.optim.LBFGS(
        classifier.parameters(), max_iter=max_iter, line_search_fn="strong_wolfe", tolerance_grad=1e-7
    )

    def objective():
        return F.cross_entropy(classifier(embeddings), labels) + weight_decay * classifier.weight.pow(2).sum()

    def closure():
        optimizer.zero_grad()
        loss = objective()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
        return objective().item()


class CLIPZeroShotClassifier(HfgenPreTrainedModel):
    """
    Zero-shot image classification with a CLIP model (Radford et al. 2021): the class embeddings come from the text
    tower reading every class name in every prompt template, and are stored in the buffer `class_embeddings`, saved
    with the weights. `forward(pixel_values)` gives `logit_scale * cos(image, class)` for each class.

    Build one from a trained CLIP with [`CLIPZeroShotClassifier.from_clip`], or load one with `from_pretrained`,
    `transformers.AutoModel` or `transformers.AutoModelForImageClassification` (after `import hfgen`). Call
    [`set_classes`] with a tokenizer to classify among other classes.
    """

    config: CLIPZeroShotClassifierConfig
    config_class = CLIPZeroShotClassifierConfig
    base_model_prefix = "clip_zero_shot"
    main_input_name = "pixel_values"
    input_modalities = ("image",)

    def __init__(self, config: CLIPZeroShotClassifierConfig):
        super().__init__(config)
        self.clip = CLIPModel(config.clip_config)
        self.register_buffer(
            "class_embeddings", torch.zeros(len(config.id2label), config.clip_config.projection_dim), persistent=True
        )
        self.post_init()
        # from_pretrained records the weights' dtype in sub-configs; a new model records it here, so both agree
        config.clip_config.dtype = self.dtype

    def _init_weights(self, module):
        # the CLIP towers initialise themselves; the class embeddings start random, like any untrained head, until
        # `set_classes` (or `from_clip`) computes them
        if module is self:
            init.normal_(self.class_embeddings, std=1.0)
            # CLIPModel sets its temperature when built, not in its own initialisation (a model built on the meta
            # device would keep an empty one)
            init.constant_(self.clip.logit_scale, self.config.clip_config.logit_scale_init_value)

    @classmethod
    def from_clip(
        cls, clip: CLIPModel, tokenizer, class_names: list[str], templates: list[str] | None = None
    ) -> "CLIPZeroShotClassifier":
        """A classifier among `class_names` that shares `clip`'s weights (copied), its class embeddings computed with
        `tokenizer` (the tokenizer `clip` was trained with)."""
        extra = {} if templates is None else {"templates": list(templates)}
        config = CLIPZeroShotClassifierConfig(clip_config=clip.config.to_dict(), class_names=class_names, **extra)
        classifier = cls(config)
        classifier.clip.load_state_dict(clip.state_dict())
        classifier.to(clip.device)
        classifier.set_classes(tokenizer, class_names, templates)
        return classifier

    @torch.no_grad()
    def set_classes(self, tokenizer, class_names: list[str], templates: list[str] | None = None) -> None:
        """Compute and store the class embeddings of `class_names` (and, when given, new `templates`) with the text
        tower; `config.id2label` and `config.templates` follow."""
        templates = list(templates) if templates is not None else self.config.templates
        self.config.templates = templates
        self.config.id2label = {index: str(name) for index, name in enumerate(class_names)}
        self.config.label2id = {name: index for index, name in self.config.id2label.items()}
        class_embeddings = prompt_ensemble_embeddings(self.clip, tokenizer, class_names, templates)
        self.class_embeddings = class_embeddings.to(self.class_embeddings.dtype)

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """L2-normalised image embeddings, `(batch, projection_dim)`."""
        return F.normalize(_embedding(self.clip.get_image_features(pixel_values=pixel_values)), dim=-1)

    def forward(
        self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, return_dict: bool | None = None, **kwargs
    ):
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch, 3, image_size, image_size)`):
            Images as the CLIP image processor prepares them.
        labels (`torch.LongTensor` of shape `(batch,)`, *optional*):
            Class indices; with them the output holds the cross-entropy loss.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        image_embeddings = self.get_image_features(pixel_values)
        class_embeddings = F.normalize(self.class_embeddings, dim=-1)
        logits = self.clip.logit_scale.exp() * image_embeddings @ class_embeddings.t()
        return _classification_output(logits, labels, return_dict)


class CLIPLinearProbe(HfgenPreTrainedModel):
    """
    A linear classifier on CLIP's frozen image embeddings (the linear-probe evaluation of Radford et al. 2021): the
    vision tower and image projection of a CLIP model (transformers' `CLIPVisionModelWithProjection`), then
    `classifier`, one `nn.Linear` from the embedding to the class logits. Build one with [`CLIPLinearProbe.from_clip`]
    and fit its classifier with [`CLIPLinearProbe.fit`]; the tower stays frozen.
    """

    config: CLIPLinearProbeConfig
    config_class = CLIPLinearProbeConfig
    base_model_prefix = "clip_linear_probe"
    main_input_name = "pixel_values"
    input_modalities = ("image",)

    def __init__(self, config: CLIPLinearProbeConfig):
        super().__init__(config)
        self.vision = CLIPVisionModelWithProjection(config.vision_config)
        self.classifier = nn.Linear(config.vision_config.projection_dim, len(config.id2label))
        self.vision.requires_grad_(False)
        self.post_init()
        config.vision_config.dtype = self.dtype  # as from_pretrained sets it (see CLIPZeroShotClassifier)

    def _init_weights(self, module):
        if module is self.classifier:
            init.normal_(module.weight, std=0.02)
            init.zeros_(module.bias)

    @classmethod
    def from_clip(
        cls, clip: CLIPModel, class_names: list[str], normalize_embeddings: bool = True
    ) -> "CLIPLinearProbe":
        """A probe on `clip`'s vision tower and image projection (copied), with an untrained classifier."""
        vision_config = clip.config.vision_config.to_dict()
        vision_config["projection_dim"] = clip.config.projection_dim
        config = CLIPLinearProbeConfig(
            vision_config=vision_config, class_names=class_names, normalize_embeddings=normalize_embeddings
        )
        probe = cls(config)
        probe.vision.vision_model.load_state_dict(clip.vision_model.state_dict())
        probe.vision.visual_projection.load_state_dict(clip.visual_projection.state_dict())
        return probe.to(clip.device)

    @torch.no_grad()
    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The frozen image embeddings the classifier reads, `(batch, projection_dim)` (normalised when the config
        says so)."""
        embeddings = self.vision(pixel_values=pixel_values).image_embeds
        return F.normalize(embeddings, dim=-1) if self.config.normalize_embeddings else embeddings

    def fit(
        self, image_embeddings: torch.Tensor, labels: torch.Tensor, weight_decay: float = 1e-4, max_iter: int = 200
    ) -> float:
        """Fit the classifier to embeddings from [`get_image_features`] (see [`fit_linear_classifier`]); returns the
        final training objective."""
        return fit_linear_classifier(self.classifier, image_embeddings, labels, weight_decay, max_iter)

    def forward(
        self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, return_dict: bool | None = None, **kwargs
    ):
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch, 3, image_size, image_size)`):
            Images as the CLIP image processor prepares them.
        labels (`torch.LongTensor` of shape `(batch,)`, *optional*):
            Class indices; with them the output holds the cross-entropy loss.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        logits = self.classifier(self.get_image_features(pixel_values))
        return _classification_output(logits, labels, return_dict)


__all__ = ["CLIPLinearProbe", "CLIPZeroShotClassifier", "fit_linear_classifier", "prompt_ensemble_embeddings"]
