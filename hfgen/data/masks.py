"""Random inpainting masks (1: the pixels to repaint, 0: the pixels kept), drawn on the CPU from a `torch.Generator`
(or torch's global RNG), so a seed gives the same masks on any machine.

- Boxes: an axis-aligned rectangle whose sides are each a uniform fraction of the image's side.
- Strokes: free-form brush strokes, as in the masks of Yu et al. 2019 (DeepFill v2) and the LaMa / Stable Diffusion
  inpainting training masks: random walks of a few straight segments drawn with a round brush, added until the mask
  covers a target fraction of the image.

Training draws a share of full masks too (`random_masks(full_mask_probability=...)`): on them the model sees no
known pixel, so it keeps generating from the prompt alone, as Stable Diffusion's inpainting model was trained.
"""

import math

import torch

# The side of a box, as a fraction of the image's side: it covers 9% to 49% of the image.
BOX_SIDE_RANGE = (0.3, 0.7)
# The fraction of the image that strokes are drawn until they cover (the last stroke may overshoot it).
STROKE_COVERAGE_RANGE = (0.1, 0.4)
# The brush's width, as a fraction of the image's side, and the segments of one stroke.
STROKE_WIDTH_RANGE = (0.08, 0.18)
STROKE_SEGMENTS = (2, 4)
MASK_KINDS = ("box", "stroke")


def _uniform(generator: torch.Generator | None, low: float, high: float) -> float:
    return low + (high - low) * torch.rand((), generator=generator).item()


def box_mask(size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """One `(size, size)` box mask: a rectangle with sides in `BOX_SIDE_RANGE` of the image, placed uniformly."""
    height, width = (max(1, round(_uniform(generator, *BOX_SIDE_RANGE) * size)) for _ in range(2))
    top = torch.randint(0, size - height + 1, (), generator=generator).item()
    left = torch.randint(0, size - width + 1, (), generator=generator).item()
    mask = torch.zeros(size, size)
    mask[top : top + height, left : left + width] = 1
    return mask


def _segment_distance(points: torch.Tensor, start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """The distance of every point `(n, 2)` to the segment from `start` to `end`."""
    direction = end - start
    length = (direction * direction).sum().clamp_min(1e-12)
    along = (((points - start) * direction).sum(dim=1) / length).clamp(0, 1)
    return (points - (start + along[:, None] * direction)).norm(dim=1)


def stroke_mask(size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """One `(size, size)` free-form mask: strokes (random walks of `STROKE_SEGMENTS` straight segments, drawn with a
    round brush of width in `STROKE_WIDTH_RANGE`) added until they cover a fraction drawn in
    `STROKE_COVERAGE_RANGE`."""
    rows, columns = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    pixels = torch.stack([rows, columns], dim=-1).reshape(-1, 2).float() + 0.5
    target = _uniform(generator, *STROKE_COVERAGE_RANGE)
    mask = torch.zeros(size * size, dtype=torch.bool)
    while mask.float().mean().item() < target:
        radius = _uniform(generator, *STROKE_WIDTH_RANGE) * size / 2
        point = torch.rand(2, generator=generator) * size
        segments = torch.randint(STROKE_SEGMENTS[0], STROKE_SEGMENTS[1] + 1, (), generator=generator).item()
        for _ in range(segments):
            angle = _uniform(generator, 0, 2 * math.pi)
            length = _uniform(generator, 0.2, 0.5) * size
            step = torch.tensor([math.sin(angle), math.cos(angle)]) * length
            end = (point + step).clamp(0, size)
            mask |= _segment_distance(pixels, point, end) <= radius
            point = end
    return mask.reshape(size, size).float()


def random_masks(
    batch_size: int,
    size: int,
    generator: torch.Generator | None = None,
    full_mask_probability: float = 0.0,
    kinds: tuple[str, ...] = MASK_KINDS,
) -> torch.Tensor:
    r"""
    A batch of inpainting masks, `(batch_size, 1, size, size)` with 1 where the image is repainted.

    Args:
        batch_size (`int`): masks to draw.
        size (`int`): their side in pixels.
        generator (`torch.Generator`, *optional*): everything is drawn from it (on the CPU), in order, mask after
            mask; torch's global RNG when None (a training loop's draws are then saved with its checkpoints).
        full_mask_probability (`float`, defaults to 0): the share of masks that cover the whole image.
        kinds (`tuple[str, ...]`, defaults to `("box", "stroke")`): the kinds the other masks are drawn from, with
            equal probability.
    """
    unknown = sorted(set(kinds) - set(MASK_KINDS))
    if unknown or not kinds:
        raise ValueError(f"mask kinds must be some of {MASK_KINDS}, got {kinds!r}")
    draw = {"box": box_mask, "stroke": stroke_mask}
    masks = []
    for _ in range(batch_size):
        if torch.rand((), generator=generator).item() < full_mask_probability:
            masks.append(torch.ones(size, size))
            continue
        kind = kinds[torch.randint(0, len(kinds), (), generator=generator).item()]
        masks.append(draw[kind](size, generator))
    return torch.stack(masks)[:, None]


def evaluation_masks(indices: list[int], size: int, seed: int) -> torch.Tensor:
    """The fixed masks the inpainting metrics use for the evaluation images `indices`: image `i`'s mask is drawn from
    a generator seeded `seed + i`, a box for even `i` and strokes for odd `i` (so half of each, whatever the number of
    processes), `(len(indices), 1, size, size)`."""
    masks = []
    for index in indices:
        generator = torch.Generator().manual_seed(seed + index)
        masks.append((box_mask if index % 2 == 0 else stroke_mask)(size, generator))
    return torch.stack(masks)[:, None] if masks else torch.zeros(0, 1, size, size)
