"""Control maps computed from images, for ControlNet training and evaluation, with numpy and scipy only (no
annotator model to download): Canny and Sobel edges, a blurred image ("tile"-style control) and a foreground mask.

Every function takes one greyscale image as a float array in [0, 1] of shape `(height, width)` and returns a map of
the same shape in [0, 1]; [`control_maps`] applies one to a batch of training images (tensors in [-1, 1]) and gives
the 3-channel maps in [0, 1] that ControlNets and diffusers' ControlNet pipelines take.
"""

import numpy as np
import torch
from scipy import ndimage


def canny_edges(image: np.ndarray, low_threshold: float = 0.1, high_threshold: float = 0.2, sigma: float = 1.0):
    """Canny's edge detector (1986): Gaussian smoothing, Sobel gradients, thinning by non-maximum suppression along
    the gradient, and hysteresis: pixels above `high_threshold` are edges, and so are those above `low_threshold`
    connected to one. Thresholds are on the gradient magnitude of a [0, 1] image, scaled so that a sharp step from 0
    to 1 has magnitude 1. Returns a binary map (1 on edges)."""
    if not 0 <= low_threshold <= high_threshold:
        raise ValueError(
            f"the Canny thresholds must satisfy 0 <= low <= high, got low {low_threshold} and high {high_threshold}"
        )
    smoothed = ndimage.gaussian_filter(np.asarray(image, dtype=np.float64), sigma) if sigma > 0 else image
    gradient_y, gradient_x = ndimage.sobel(smoothed, axis=0), ndimage.sobel(smoothed, axis=1)
    # a unit step seen by the 3x3 Sobel kernel gives 4; after Gaussian smoothing the peak is lower but the scale of
    # the thresholds stays that of the step
    magnitude = np.hypot(gradient_x, gradient_y) / 4.0
    thin = magnitude * _is_local_maximum(magnitude, gradient_x, gradient_y)
    strong, weak = thin >= high_threshold, thin >= low_threshold
    # hysteresis: keep the 8-connected components of weak pixels that hold a strong one
    components, count = ndimage.label(weak, structure=np.ones((3, 3)))
    keep = np.zeros(count + 1, dtype=bool)
    keep[np.unique(components[strong])] = True
    keep[0] = False
    return keep[components].astype(np.float32)


def _is_local_maximum(magnitude: np.ndarray, gradient_x: np.ndarray, gradient_y: np.ndarray) -> np.ndarray:
    """Non-maximum suppression: whether each pixel is larger than its neighbour behind it along the gradient direction
    (quantised to 0, 45, 90 or 135 degrees) and at least as large as the one ahead, so that a step between two pixels
    of equal magnitude keeps one of them."""
    padded = np.pad(magnitude, 1)
    height, width = magnitude.shape

    def shifted(dy: int, dx: int) -> np.ndarray:
        return padded[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]

    angle = (np.rad2deg(np.arctan2(gradient_y, gradient_x)) + 180.0) % 180.0
    sector = np.round(angle / 45.0).astype(int) % 4  # 0: horizontal gradient, 1: 45, 2: vertical, 3: 135 degrees
    neighbours = {0: (0, 1), 1: (1, 1), 2: (1, 0), 3: (1, -1)}
    result = np.zeros_like(magnitude, dtype=bool)
    for index, (dy, dx) in neighbours.items():
        is_max = (magnitude >= shifted(dy, dx)) & (magnitude > shifted(-dy, -dx))
        result |= (sector == index) & is_max
    return result & (magnitude > 0)


def sobel_edges(image: np.ndarray, threshold: float = 0.25) -> np.ndarray:
    """Pixels whose Sobel gradient magnitude (scaled so that a sharp step from 0 to 1 gives 1) is at least
    `threshold`: thick edges, without Canny's thinning. Returns a binary map."""
    image = np.asarray(image, dtype=np.float64)
    magnitude = np.hypot(ndimage.sobel(image, axis=0), ndimage.sobel(image, axis=1)) / 4.0
    return (magnitude >= threshold).astype(np.float32)


def blurred_image(image: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """The image under a Gaussian blur of `sigma` pixels: the layout and tones without the detail (the "tile" control
    of ControlNet 1.1, which regenerates detail from a degraded image)."""
    return np.clip(ndimage.gaussian_filter(np.asarray(image, dtype=np.float64), sigma), 0, 1).astype(np.float32)


def otsu_threshold(image: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold (1979): the grey level that maximises the variance between the two classes it separates."""
    histogram, edges = np.histogram(np.asarray(image).ravel(), bins=bins, range=(0.0, 1.0))
    centres = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(histogram)
    weight_high = weight_low[-1] - weight_low
    sum_low = np.cumsum(histogram * centres)
    mean_low = sum_low / np.maximum(weight_low, 1)
    mean_high = (sum_low[-1] - sum_low) / np.maximum(weight_high, 1)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return float(centres[np.argmax(between)])


def foreground_mask(image: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """Pixels brighter than `threshold` (Otsu's threshold of the image when None): a binary silhouette. A uniform image
    has no foreground."""
    image = np.asarray(image, dtype=np.float64)
    if threshold is None:
        if image.max() - image.min() < 1e-6:
            return np.zeros_like(image, dtype=np.float32)
        threshold = otsu_threshold(image)
    return (image > threshold).astype(np.float32)


CONTROL_TYPES = {
    "canny": canny_edges,
    "sobel": sobel_edges,
    "blur": blurred_image,
    "mask": foreground_mask,
}
"""The control maps hfgen computes, by name: `--control_type` of the ControlNet script."""


def to_greyscale(pixel_values: torch.Tensor) -> np.ndarray:
    """Images `(batch, channels, height, width)` in [-1, 1] as greyscale arrays `(batch, height, width)` in [0, 1]
    (ITU-R 601 luma for colour images)."""
    images = ((pixel_values.detach().float().cpu() + 1) / 2).clamp(0, 1)
    if images.shape[1] == 3:
        images = 0.299 * images[:, 0] + 0.587 * images[:, 1] + 0.114 * images[:, 2]
    elif images.shape[1] == 1:
        images = images[:, 0]
    else:
        raise ValueError(f"images must have 1 or 3 channels, got a batch of shape {tuple(pixel_values.shape)}")
    return images.numpy()


def control_maps(pixel_values: torch.Tensor, control_type: str, channels: int = 3, **parameters) -> torch.Tensor:
    """The `control_type` map (see `CONTROL_TYPES`, with its keyword `parameters`) of each image of a batch in
    [-1, 1]: a `(batch, channels, height, width)` tensor in [0, 1] on the images' device, the grey map repeated over
    `channels` (3 for ControlNets that take RGB control images, as diffusers' pipelines give them)."""
    if control_type not in CONTROL_TYPES:
        raise ValueError(f"unknown control type {control_type!r}: choose one of {', '.join(CONTROL_TYPES)}")
    function = CONTROL_TYPES[control_type]
    maps = np.stack([function(image, **parameters) for image in to_greyscale(pixel_values)])
    maps = torch.from_numpy(maps).to(device=pixel_values.device, dtype=torch.float32)
    return maps[:, None].expand(-1, channels, -1, -1).contiguous()
