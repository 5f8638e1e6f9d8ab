"""The regression prior of unCLIP (Ramesh et al. 2022, section 2.1): CLIP text embedding in, CLIP image embedding
out, trained by regression (cosine loss) on the image embeddings of captioned images. unCLIP's diffusion prior is
diffusers' `PriorTransformer`; this is the simpler baseline the paper measures it against, which diffusers lacks."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel  # noqa: F401
from transformers import initialization as init
from transformers.utils import ModelOutput

from ..modeling_utils import HfgenPreTrainedModel
from .configuration_unclip import UnCLIPRegressionPriorConfig

# `PreTrainedModel` stays imported by that name: diffusers loads a pipeline component by looking a base class it
# knows up in the component's module, whose path pipeline folders record.


@dataclass
class UnCLIPRegressionPriorOutput(ModelOutput):
    """
    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*):
            1 - the mean cosine similarity of the predicted and the given image embeddings, when those are given.
        image_embeds (`torch.FloatTensor` of shape `(batch, embedding_dim)`):
            The predicted CLIP image embeddings, of unit norm.
    """

    loss: torch.FloatTensor | None = None
    image_embeds: torch.FloatTensor | None = None


class UnCLIPRegressionPriorPreTrainedModel(HfgenPreTrainedModel):
    config: UnCLIPRegressionPriorConfig
    config_class = UnCLIPRegressionPriorConfig
    base_model_prefix = "prior"
    main_input_name = "text_embeds"
    input_modalities = ("text",)

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, std=0.02)
            init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)


class UnCLIPRegressionPrior(UnCLIPRegressionPriorPreTrainedModel):
    """Residual MLP prior: `normalize(text_embeds + mlp(text_embeds))`.

    Example:

    ```python
    >>> import torch, hfgen
    >>> prior = hfgen.UnCLIPRegressionPrior(hfgen.UnCLIPRegressionPriorConfig(embedding_dim=64, hidden_size=128))
    >>> text_embeds = torch.randn(4, 64)
    >>> prior(text_embeds).image_embeds.shape                               # unit-norm predictions
    torch.Size([4, 64])
    >>> loss = prior(text_embeds, image_embeds=torch.randn(4, 64)).loss     # 1 - mean cosine
    ```
    """

    def __init__(self, config: UnCLIPRegressionPriorConfig):
        super().__init__(config)
        layers = []
        width = config.embedding_dim
        for _ in range(config.num_hidden_layers):
            layers += [nn.Linear(width, config.hidden_size), nn.LayerNorm(config.hidden_size), nn.GELU()]
            layers.append(nn.Dropout(config.dropout))
            width = config.hidden_size
        self.mlp = nn.Sequential(*layers)
        self.proj_out = nn.Linear(width, config.embedding_dim)
        self.post_init()

    def forward(
        self,
        text_embeds: torch.Tensor,
        image_embeds: torch.Tensor | None = None,
        return_dict: bool | None = None,
    ):
        r"""
        Args:
            text_embeds (`torch.FloatTensor` of shape `(batch, embedding_dim)`):
                CLIP text embeddings (the text tower's projected output; their norm does not matter, they are
                normalised first).
            image_embeds (`torch.FloatTensor` of shape `(batch, embedding_dim)`, *optional*):
                The CLIP image embeddings to regress onto: the output then holds the cosine loss.
            return_dict (`bool`, *optional*):
                Return an [`UnCLIPRegressionPriorOutput`] (the default) instead of a tuple.
        """
        if text_embeds.ndim != 2 or text_embeds.shape[1] != self.config.embedding_dim:
            raise ValueError(
                f"text_embeds must have shape (batch, {self.config.embedding_dim}), got {tuple(text_embeds.shape)}"
            )
        return_dict = return_dict if return_dict is not None else self.config.use_return_dict
        # 1. the text embedding's direction, as CLIP compares embeddings
        text_embeds = F.normalize(text_embeds, dim=-1)
        # 2. plus the MLP's correction towards the image side of the joint space, normalised again
        predicted = F.normalize(text_embeds + self.proj_out(self.mlp(text_embeds)), dim=-1)
        loss = None
        if image_embeds is not None:
            loss = 1 - F.cosine_similarity(predicted, image_embeds, dim=-1).mean()
        if not return_dict:
            return (predicted,) if loss is None else (loss, predicted)
        return UnCLIPRegressionPriorOutput(loss=loss, image_embeds=predicted)


__all__ = ["UnCLIPRegressionPrior", "UnCLIPRegressionPriorOutput", "UnCLIPRegressionPriorPreTrainedModel"]
