"""How closely generated images follow their control maps: the map is computed again from each generated image, with
the same function and parameters as the control, and compared with the control it was generated from.

- edges (`canny`, `sobel`): F1 of edge pixels with a tolerance, as edge detectors are scored (Martin et al. 2004,
  BSDS): precision is the share of generated edge pixels within `tolerance` pixels of a control edge, recall the
  share of control edge pixels within `tolerance` of a generated edge;
- `mask`: intersection over union of the foreground masks;
- `blur`: PSNR between the blurred generated image and the blurred control image.

The same images drawn without a ControlNet (same prompts, same noise) give the chance level a ControlNet must beat.
"""

import numpy as np
import torch
from scipy import ndimage

from ..data.control import CONTROL_TYPES, to_greyscale

CONTROL_METRICS = {"canny": "edge_f1", "sobel": "edge_f1", "mask": "mask_iou", "blur": "blur_psnr"}
"""The agreement metric of each control type, by the name it is logged and carded under."""


def edge_f1(control_edges: np.ndarray, generated_edges: np.ndarray, tolerance: int = 1) -> float:
    """F1 of the edge pixels of `generated_edges` against `control_edges` (binary `(height, width)` maps), matching
    pixels up to `tolerance` pixels apart (chessboard distance). Two maps without edges agree fully (1.0); one
    without edges against one with them not at all (0.0)."""
    control, generated = np.asarray(control_edges) > 0.5, np.asarray(generated_edges) > 0.5
    if not control.any() and not generated.any():
        return 1.0
    if not control.any() or not generated.any():
        return 0.0
    square = np.ones((2 * tolerance + 1,) * 2, dtype=bool)
    near_control = ndimage.binary_dilation(control, square) if tolerance else control
    near_generated = ndimage.binary_dilation(generated, square) if tolerance else generated
    precision = (generated & near_control).sum() / generated.sum()
    recall = (control & near_generated).sum() / control.sum()
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


def mask_iou(control_mask: np.ndarray, generated_mask: np.ndarray) -> float:
    """Intersection over union of two binary masks; two empty masks agree fully (1.0)."""
    control, generated = np.asarray(control_mask) > 0.5, np.asarray(generated_mask) > 0.5
    union = (control | generated).sum()
    return 1.0 if union == 0 else float((control & generated).sum() / union)


def blur_psnr(control_image: np.ndarray, generated_blurred: np.ndarray) -> float:
    """PSNR in dB between two images in [0, 1] (capped at 100 for identical images)."""
    error = float(np.mean((np.asarray(control_image, np.float64) - np.asarray(generated_blurred, np.float64)) ** 2))
    return 100.0 if error <= 1e-10 else min(100.0, float(10 * np.log10(1.0 / error)))


_AGREEMENT = {"edge_f1": edge_f1, "mask_iou": mask_iou, "blur_psnr": blur_psnr}


def control_agreement(
    control: torch.Tensor, generated: torch.Tensor, control_type: str, tolerance: int = 1, **parameters
) -> torch.Tensor:
    """Per-image agreement of `generated` images (`(batch, channels, height, width)` in [-1, 1]) with their `control`
    maps (`(batch, channels, height, width)` in [0, 1], as [`hfgen.data.control.control_maps`] gives them), by the
    metric of `control_type` (`CONTROL_METRICS`); `parameters` are those the controls were computed with. Returns a
    float tensor of shape `(batch,)`."""
    if control_type not in CONTROL_METRICS:
        raise ValueError(f"unknown control type {control_type!r}: choose one of {', '.join(CONTROL_METRICS)}")
    if control.shape[0] != generated.shape[0] or control.shape[-2:] != generated.shape[-2:]:
        raise ValueError(
            f"control maps of shape {tuple(control.shape)} do not match generated images of shape "
            f"{tuple(generated.shape)}: one map per image, of the same height and width"
        )
    metric = CONTROL_METRICS[control_type]
    controls = control.detach().float().cpu().mean(dim=1).numpy()  # the channels repeat one grey map
    recomputed = [CONTROL_TYPES[control_type](image, **parameters) for image in to_greyscale(generated)]
    if metric == "edge_f1":
        scores = [edge_f1(c, g, tolerance) for c, g in zip(controls, recomputed, strict=True)]
    else:
        scores = [_AGREEMENT[metric](c, g) for c, g in zip(controls, recomputed, strict=True)]
    return torch.tensor(scores, dtype=torch.float32)
