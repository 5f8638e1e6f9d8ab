"""A perceptual reconstruction loss through a frozen transformers vision backbone (`--perceptual_model`).

Pixel losses alone make a VQ-GAN's reconstructions blurry; Esser et al. (2021) add LPIPS (Zhang et al. 2018), a
distance between the feature maps of a pretrained network. hfgen ships no such weights and downloads nothing, so the
backbone is the user's: any transformers vision model folder (or Hub id in the cache), loaded and preprocessed exactly
as `--metrics_model` is (`hfgen.metrics.backbone`). The distance follows LPIPS without its learned channel weights:
every hidden layer's features are normalised to unit length per position, and the squared distances between those of
the reconstruction and of the original are averaged over positions, then over layers.
"""

import torch
from torch import nn

from ...metrics.backbone import BackboneFeatureExtractor, MetricsModelError, load_backbone_feature_extractor


class PerceptualLoss(nn.Module):
    r"""
    Feature-space distance between reconstructions and originals, through a frozen vision backbone.

    Args:
        extractor ([`BackboneFeatureExtractor`]):
            The backbone and its preprocessing (resize to its input size, normalisation); kept frozen.
    """

    def __init__(self, extractor: BackboneFeatureExtractor):
        super().__init__()
        self.extractor = extractor

    def train(self, mode: bool = True) -> "PerceptualLoss":
        # a fixed function: dropout and the like stay off whatever the parent's mode
        return super().train(False)

    def hidden_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The backbone's hidden states after its embeddings, each normalised to unit length per position:
        `(batch, tokens, dim)` for transformers, `(batch, channels, height, width)` for convolutional backbones."""
        pixel_values = self.extractor.preprocess(images).to(self.extractor.model.dtype)
        hidden_states = self.extractor.model(pixel_values=pixel_values, output_hidden_states=True).hidden_states
        features = []
        for hidden in hidden_states[1:]:
            feature_dim = -1 if hidden.ndim == 3 else 1
            features.append(hidden / (hidden.norm(dim=feature_dim, keepdim=True) + 1e-10))
        return features

    def forward(self, reconstructions: torch.Tensor, originals: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1], `(batch, channels, height, width)`; the gradient flows to `reconstructions`."""
        if reconstructions.shape != originals.shape:
            raise ValueError(
                f"reconstructions {tuple(reconstructions.shape)} and originals {tuple(originals.shape)} differ in "
                "shape"
            )
        batch = reconstructions.shape[0]
        # the backbone reads images in [-1, 1]; a decoder's output may overshoot, which the pixel losses correct
        images = torch.cat([reconstructions.clamp(-1, 1), originals.detach()])
        features = self.hidden_features(images)
        distances = []
        for feature in features:
            feature_dim = -1 if feature.ndim == 3 else 1
            squared = (feature[:batch] - feature[batch:]).pow(2).sum(dim=feature_dim)
            distances.append(squared.mean())
        return torch.stack(distances).mean()


def load_perceptual_loss(name_or_path: str, device: str | torch.device | None = None) -> PerceptualLoss:
    """`--perceptual_model` (a transformers vision backbone folder or cached Hub id) as a [`PerceptualLoss`]; a folder
    that cannot serve is a one-line `ValueError` naming the flag."""
    try:
        extractor = load_backbone_feature_extractor(name_or_path, device=device)
    except MetricsModelError as error:
        raise ValueError(str(error).replace("--metrics_model", "--perceptual_model")) from error
    return PerceptualLoss(extractor)


__all__ = ["PerceptualLoss", "load_perceptual_loss"]
