"""Real images into a StyleGAN's latent space, and edits along directions found in it.

- [`invert_images`] projects images into W (one w for every layer) or W+ (one per layer) by optimising the ws with
  Adam from the average w (Karras et al. 2020, appendix D, without their noise regularisation: the noise maps stay the
  model's constant ones): the distance is the pixels' mean squared error at full size and at 1/2 and 1/4 size (the
  coarse scales weigh the overall layout, which pixel error alone leaves to chance), plus, given a feature extractor
  (a transformers vision backbone, `hfgen.metrics.resolve_feature_extractor`), the cosine distance of its features.
- [`principal_directions`]: GANSpace (Härkönen et al. 2020): the principal components of w over mapped random z, the
  directions in which the generator's styles vary most, unsupervised.
- [`classifier_direction`]: InterFaceGAN (Shen et al. 2020): the unit normal of a linear classifier's boundary between
  the ws of images with and without an attribute, supervised by the labels given.

`StyleGANPipeline.invert` / `.edit` call these.
"""

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from diffusers.image_processor import VaeImageProcessor

# Downsampling factors of the multi-scale pixel distance.
SCALES = (1, 2, 4)
# Mapped z that give the average w the inversion starts from (when the model tracked none) and the principal
# directions, drawn with seed 0.
W_SAMPLES = 10_000


def images_as_pixels(images, resolution: int, channels: int, device, dtype) -> torch.Tensor:
    """PIL images, or a tensor `(batch, channels, height, width)` in [0, 1], as the generator draws them: `(batch,
    channels, resolution, resolution)` in [-1, 1], resized (bicubic) and in the generator's colour mode."""
    if isinstance(images, PIL.Image.Image):
        images = [images]
    if isinstance(images, list) and images and all(isinstance(image, PIL.Image.Image) for image in images):
        mode = "L" if channels == 1 else "RGB"
        images = [image.convert(mode).resize((resolution, resolution), PIL.Image.BICUBIC) for image in images]
        pixels = VaeImageProcessor(vae_scale_factor=1, do_normalize=True).preprocess(images)
    elif isinstance(images, torch.Tensor) and images.ndim == 4:
        if images.shape[1] not in (1, 3):
            raise ValueError(f"images must have 1 or 3 channels, got shape {tuple(images.shape)}")
        pixels = F.interpolate(images.float(), size=(resolution, resolution), mode="bicubic", align_corners=False)
        pixels = pixels.clamp(0, 1) * 2 - 1
    else:
        raise ValueError(
            "images must be a PIL image, a list of them, or a tensor (batch, channels, height, width) in [0, 1], got "
            f"{type(images).__name__}"
        )
    if pixels.shape[1] == 3 and channels == 1:
        pixels = (pixels * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
    elif pixels.shape[1] == 1 and channels == 3:
        pixels = pixels.expand(-1, 3, -1, -1)
    return pixels.to(device=device, dtype=dtype)


@torch.no_grad()
def mapped_ws(stylegan, count: int = W_SAMPLES, seed: int = 0, labels: torch.Tensor | None = None) -> torch.Tensor:
    """w `(count, w_dim)` of `count` random z (seed `seed`), mapped without truncation."""
    z = torch.randn(count, stylegan.config.latent_dim, generator=torch.Generator().manual_seed(seed))
    z = z.to(device=stylegan.device, dtype=stylegan.dtype)
    if labels is None and stylegan.config.num_classes:
        labels = torch.arange(count, device=stylegan.device) % stylegan.config.num_classes
    return stylegan.map(z, labels)[:, 0]


def image_distance(reconstructions: torch.Tensor, targets: torch.Tensor, feature_extractor=None) -> torch.Tensor:
    """Per image: the pixels' mean squared error at every scale of `SCALES`, summed, plus the cosine distance of the
    feature extractor's features when one is given."""
    distance = 0
    for scale in SCALES:
        fake = F.avg_pool2d(reconstructions, scale) if scale > 1 else reconstructions
        real = F.avg_pool2d(targets, scale) if scale > 1 else targets
        distance = distance + (fake - real).square().mean(dim=(1, 2, 3))
    if feature_extractor is not None:
        features = F.normalize(feature_extractor(reconstructions), dim=-1)
        target_features = F.normalize(feature_extractor(targets), dim=-1)
        distance = distance + (1 - (features * target_features).sum(dim=-1))
    return distance


def invert_images(
    stylegan,
    images,
    num_steps: int = 300,
    space: str = "w+",
    learning_rate: float = 0.05,
    class_labels: torch.Tensor | None = None,
    feature_extractor=None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`(ws, reconstructions, distances)`: the ws `(batch, num_ws, w_dim)` whose images (constant noise) come closest
    to `images` after `num_steps` Adam steps (learning rate ramped down with a cosine) in `space` (`"w"` or `"w+"`),
    the reconstructions in [-1, 1], and each image's final distance ([`image_distance`])."""
    if space not in ("w", "w+"):
        raise ValueError(f"space must be 'w' or 'w+', got {space!r}")
    if num_steps < 1:
        raise ValueError(f"num_steps must be at least 1, got {num_steps}")
    config = stylegan.config
    targets = images_as_pixels(images, config.resolution, config.num_channels, stylegan.device, stylegan.dtype)
    batch = targets.shape[0]
    if config.num_classes and class_labels is None:
        raise ValueError("a conditional generator inverts images of given classes: pass class_labels")
    labels = None
    if class_labels is not None:
        labels = torch.as_tensor(class_labels, device=stylegan.device).reshape(-1).expand(batch)
    # the search starts from the average w: of each image's class, else the model's tracked one, else (a model that
    # tracked none) the mean of mapped z
    if labels is not None:
        start = torch.stack([mapped_ws(stylegan, 1000, labels=label.repeat(1000)).mean(0) for label in labels])
    elif stylegan.mapping.w_avg.abs().sum() > 0:
        start = stylegan.mapping.w_avg.detach().expand(batch, -1)
    else:
        start = mapped_ws(stylegan).mean(0).expand(batch, -1)
    layers = 1 if space == "w" else stylegan.num_ws
    ws = start[:, None].repeat(1, layers, 1).clone().requires_grad_(True)
    optimizer = torch.optim.Adam([ws], lr=learning_rate, betas=(0.9, 0.999))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + np.cos(np.pi * step / num_steps)))
    was_training = stylegan.training
    stylegan.eval()
    stylegan.requires_grad_(False)
    try:
        for _ in range(num_steps):
            reconstructions = stylegan.synthesize(ws.expand(-1, stylegan.num_ws, -1), noise_mode="const")
            loss = image_distance(reconstructions, targets, feature_extractor).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        with torch.no_grad():
            final_ws = ws.detach().expand(-1, stylegan.num_ws, -1).clone()
            reconstructions = stylegan.synthesize(final_ws, noise_mode="const")
            distances = image_distance(reconstructions, targets, feature_extractor)
    finally:
        stylegan.requires_grad_(True)
        stylegan.train(was_training)
    return final_ws, reconstructions, distances


@torch.no_grad()
def principal_directions(stylegan, num_components: int = 10, num_samples: int = W_SAMPLES, seed: int = 0):
    """`(directions, standard_deviations)`: the `num_components` principal directions of w `(num_components,
    w_dim)`, unit vectors in decreasing order of variance, and the standard deviation of w along each (a natural unit
    for edit strengths)."""
    if not 1 <= num_components <= stylegan.config.w_dim:
        raise ValueError(f"num_components must lie in [1, {stylegan.config.w_dim}], got {num_components}")
    ws = mapped_ws(stylegan, num_samples, seed).float()
    centred = ws - ws.mean(dim=0)
    _, singular_values, right_vectors = torch.linalg.svd(centred, full_matrices=False)
    standard_deviations = singular_values[:num_components] / np.sqrt(num_samples - 1)
    return right_vectors[:num_components], standard_deviations


def classifier_direction(ws: torch.Tensor, labels) -> torch.Tensor:
    """The unit normal `(w_dim,)` of a logistic-regression boundary between the ws `(count, w_dim)` (or `(count,
    num_ws, w_dim)`, their first layer's w) labelled 1 and those labelled 0: moving along it adds the attribute."""
    from sklearn.linear_model import LogisticRegression

    ws = ws[:, 0] if ws.ndim == 3 else ws
    labels = np.asarray(labels).reshape(-1)
    if ws.ndim != 2 or len(labels) != ws.shape[0]:
        raise ValueError(f"give one label per w: {len(labels)} labels for ws of shape {tuple(ws.shape)}")
    if set(np.unique(labels)) != {0, 1}:
        raise ValueError(
            f"labels must be 0 (without the attribute) and 1 (with it), both present, got {np.unique(labels)}"
        )
    classifier = LogisticRegression(max_iter=1000).fit(ws.detach().cpu().double().numpy(), labels)
    normal = torch.from_numpy(classifier.coef_[0]).to(ws.dtype)
    return normal / normal.norm()
