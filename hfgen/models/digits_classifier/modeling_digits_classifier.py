"""hfgen's digits classifier: a small CNN trained on the built-in digits
(training_scripts/metrics/train_digits_classifier.py).

Its job is to be the offline feature extractor of hfgen's metrics: `get_image_features` gives the spatially averaged
last-level activations (the analogue of Inception-v3's pool3 features) that FID, KID and precision / recall compare,
and the logits give the class probabilities of the Inception Score. The trained weights ship inside the package
(`hfgen/metrics/digits_classifier/`), so every model family gets a quality number without downloading anything.
"""

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel  # noqa: F401
from transformers import initialization as init
from transformers.modeling_outputs import ImageClassifierOutputWithNoAttention

from ..modeling_utils import HfgenPreTrainedModel
from .configuration_digits_classifier import DigitsClassifierConfig

# `PreTrainedModel` stays imported by that name: diffusers loads a pipeline component by looking a base class it
# knows up in the component's module, whose path pipeline folders record.


class DigitsClassifierBlock(nn.Module):
    """`num_layers` 3x3 convolutions with ReLU, then 2x2 max pooling unless this is the last level."""

    def __init__(self, in_channels: int, out_channels: int, num_layers: int, downsample: bool):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, kernel_size=3, padding=1)
            for i in range(num_layers)
        )
        self.downsample = downsample

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            hidden_states = F.relu(conv(hidden_states))
        if self.downsample:
            hidden_states = F.max_pool2d(hidden_states, kernel_size=2)
        return hidden_states


class DigitsClassifierPreTrainedModel(HfgenPreTrainedModel):
    config: DigitsClassifierConfig
    config_class = DigitsClassifierConfig
    base_model_prefix = "digits_classifier"
    main_input_name = "pixel_values"
    input_modalities = ("image",)

    def _init_weights(self, module):
        # He initialisation suits a plain ReLU stack without normalisation layers; transformers' default N(0, 0.02)
        # would shrink the signal at every layer.
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            init.zeros_(module.bias)


class DigitsClassifier(DigitsClassifierPreTrainedModel):
    """CNN classifier of `config.image_size`-pixel digit images in [-1, 1], with an image-feature method for metrics.

    Example:

    ```python
    >>> import torch, hfgen
    >>> model = hfgen.DigitsClassifier(hfgen.DigitsClassifierConfig())
    >>> images = torch.rand(4, 1, 32, 32) * 2 - 1
    >>> logits = model(images).logits                               # (4, 10)
    >>> loss = model(images, labels=torch.tensor([0, 1, 2, 3])).loss
    >>> features = model.get_image_features(images)                 # (4, 64)
    ```
    """

    def __init__(self, config: DigitsClassifierConfig):
        super().__init__(config)
        channels = config.hidden_channels
        self.blocks = nn.ModuleList(
            DigitsClassifierBlock(
                config.num_channels if i == 0 else channels[i - 1],
                channels[i],
                config.layers_per_block,
                downsample=i < len(channels) - 1,
            )
            for i in range(len(channels))
        )
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(channels[-1], config.num_labels)
        self.post_init()

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        r"""
        Penultimate activations: the last level's feature maps averaged over space.

        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch, num_channels, height, width)`):
                Images in [-1, 1].

        Returns:
            `torch.FloatTensor` of shape `(batch, hidden_channels[-1])`.
        """
        if pixel_values.ndim != 4 or pixel_values.shape[1] != self.config.num_channels:
            raise ValueError(
                f"pixel_values must have shape (batch, {self.config.num_channels}, height, width), "
                f"got {tuple(pixel_values.shape)}"
            )
        hidden_states = pixel_values
        for block in self.blocks:
            hidden_states = block(hidden_states)
        return hidden_states.mean(dim=(2, 3))

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.LongTensor | None = None,
        return_dict: bool | None = None,
    ):
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch, num_channels, height, width)`):
                Images in [-1, 1], at `config.image_size` for the accuracy the classifier was trained for.
            labels (`torch.LongTensor` of shape `(batch,)`, *optional*):
                Class indices in `[0, config.num_labels)`; when given, the output carries the cross-entropy loss.
            return_dict (`bool`, *optional*):
                Return an `ImageClassifierOutputWithNoAttention` (default: `config.return_dict`) or a tuple.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        # 1. image features
        features = self.get_image_features(pixel_values)
        # 2. class logits
        logits = self.classifier(self.dropout(features))
        # 3. cross-entropy against the labels, when given
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        if not return_dict:
            return (loss, logits) if loss is not None else (logits,)
        return ImageClassifierOutputWithNoAttention(loss=loss, logits=logits)


__all__ = ["DigitsClassifier", "DigitsClassifierPreTrainedModel"]
