"""The inpainting masks: seeded, binary, boxes that are rectangles of the stated sizes, strokes that cover the stated
fractions, the share of full masks, and the fixed evaluation masks that do not depend on how the images are split."""

import pytest
import torch

from hfgen.data.masks import (
    BOX_SIDE_RANGE,
    STROKE_COVERAGE_RANGE,
    box_mask,
    evaluation_masks,
    random_masks,
    stroke_mask,
)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def is_rectangle(mask: torch.Tensor) -> bool:
    rows, columns = mask.any(dim=1).nonzero()[:, 0], mask.any(dim=0).nonzero()[:, 0]
    box = mask[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]
    return bool(box.all()) and box.numel() == mask.sum()


def test_boxes_are_rectangles_with_sides_in_the_stated_range():
    low, high = BOX_SIDE_RANGE
    for seed in range(100):
        mask = box_mask(32, seeded(seed))
        assert set(mask.unique().tolist()) == {0.0, 1.0} and is_rectangle(mask)
        rows, columns = mask.any(dim=1).sum().item(), mask.any(dim=0).sum().item()
        assert round(low * 32) <= min(rows, columns) and max(rows, columns) <= round(high * 32)


def test_strokes_cover_the_stated_fraction_and_are_not_boxes():
    coverages = []
    for seed in range(100):
        mask = stroke_mask(32, seeded(seed))
        assert set(mask.unique().tolist()) == {0.0, 1.0}
        coverages.append(mask.mean().item())
    # strokes are added until they reach a target in the range; the last one may overshoot it
    assert min(coverages) >= STROKE_COVERAGE_RANGE[0] and max(coverages) < 0.75
    assert sum(not is_rectangle(stroke_mask(32, seeded(seed))) for seed in range(20)) >= 18


def test_random_masks_are_seeded_and_hold_the_share_of_full_masks():
    masks = random_masks(400, 16, seeded(0), full_mask_probability=0.25)
    assert masks.shape == (400, 1, 16, 16)
    assert torch.equal(masks, random_masks(400, 16, seeded(0), full_mask_probability=0.25))
    full = (masks.flatten(1).mean(dim=1) == 1).float().mean().item()
    assert full == pytest.approx(0.25, abs=0.07)
    boxes = [mask[0] for mask in random_masks(40, 16, seeded(1), kinds=("box",))]
    assert all(is_rectangle(mask) for mask in boxes)
    # torch's global RNG when no generator is given (a training loop's draws, saved with its checkpoints)
    torch.manual_seed(3)
    drawn = random_masks(4, 16)
    torch.manual_seed(3)
    assert torch.equal(drawn, random_masks(4, 16))
    with pytest.raises(ValueError, match=r"mask kinds must be some of \('box', 'stroke'\), got \('circle',\)"):
        random_masks(1, 16, seeded(0), kinds=("circle",))


def test_evaluation_masks_are_fixed_per_image_whatever_the_split():
    masks = evaluation_masks(list(range(6)), 16, seed=5)
    assert torch.equal(evaluation_masks([3, 4], 16, seed=5), masks[3:5])
    assert all(is_rectangle(masks[index, 0]) for index in (0, 2, 4))
    assert not any(is_rectangle(masks[index, 0]) for index in (1, 3, 5))
    assert not torch.equal(evaluation_masks([0], 16, seed=6)[0], masks[0])
    assert evaluation_masks([], 16, seed=5).shape == (0, 1, 16, 16)
