"""Differentiable augmentation for GAN training on small datasets.

DiffAugment (Zhao et al. 2020) applies the same random, differentiable transformations to the real and the generated
images the discriminator sees, so it cannot memorise a small training set, while gradients still reach the
generator. The ADA-style controller (Karras et al. 2020) adapts the probability p with which every transformation is
applied from the sign of the discriminator's outputs on real images: r_t = E[sign(D(x))] above the target means the
discriminator is overfitting, so p rises; below, p falls.

Randomness comes from torch's global RNG, which accelerate saves in every checkpoint and restores on resume.
"""

import torch

AUGMENTATIONS = ("color", "translation", "cutout")


def parse_policy(policy: str) -> list[str]:
    """`"color,translation,cutout"` to a list of operations, rejecting unknown names."""
    operations = [name.strip() for name in policy.split(",") if name.strip()]
    unknown = [name for name in operations if name not in AUGMENTATIONS]
    if unknown or not operations:
        raise ValueError(f"augmentation policy {policy!r}: choose a comma-separated subset of {AUGMENTATIONS}")
    return operations


def _per_image(batch: int, probability: float, device) -> torch.Tensor:
    """1 for the images an operation applies to (each with `probability`), else 0; shape `(batch, 1, 1, 1)`."""
    return (torch.rand(batch, 1, 1, 1, device=device) < probability).float()


def _color(images: torch.Tensor, applies: torch.Tensor) -> torch.Tensor:
    batch = images.shape[0]
    brightness = torch.rand(batch, 1, 1, 1, device=images.device) - 0.5
    images = images + applies * brightness
    if images.shape[1] > 1:
        mean = images.mean(dim=1, keepdim=True)
        saturation = torch.rand(batch, 1, 1, 1, device=images.device) * 2
        images = images + applies * (mean + (images - mean) * saturation - images)
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    contrast = torch.rand(batch, 1, 1, 1, device=images.device) + 0.5
    return images + applies * (mean + (images - mean) * contrast - images)


def _translation(images: torch.Tensor, applies: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift by up to `ratio` of the side, filling with -1 (black in [-1, 1]) and keeping gradients."""
    batch, _, height, width = images.shape
    max_shift = torch.tensor([int(height * ratio + 0.5), int(width * ratio + 0.5)], device=images.device)
    shifts = (torch.rand(batch, 2, device=images.device) * (2 * max_shift + 1)).floor() - max_shift
    shifts = shifts * applies.flatten()[:, None]
    rows = torch.arange(height, device=images.device)[None, :] - shifts[:, :1].long()  # (batch, height)
    cols = torch.arange(width, device=images.device)[None, :] - shifts[:, 1:].long()
    valid = ((rows >= 0) & (rows < height))[:, :, None] & ((cols >= 0) & (cols < width))[:, None, :]
    rows, cols = rows.clamp(0, height - 1), cols.clamp(0, width - 1)
    gathered = images[torch.arange(batch, device=images.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
    gathered = gathered.permute(0, 3, 1, 2)  # advanced indexing put the channels last
    return torch.where(valid[:, None], gathered, torch.full_like(gathered, -1.0))


def _cutout(images: torch.Tensor, applies: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Blank a square of `ratio` of the side at a random place (set to 0, mid-grey)."""
    batch, _, height, width = images.shape
    size_h, size_w = int(height * ratio + 0.5), int(width * ratio + 0.5)
    top = torch.randint(0, height + (1 - size_h % 2), (batch, 1, 1), device=images.device) - size_h // 2
    left = torch.randint(0, width + (1 - size_w % 2), (batch, 1, 1), device=images.device) - size_w // 2
    rows = torch.arange(height, device=images.device)[None, :, None]
    cols = torch.arange(width, device=images.device)[None, None, :]
    inside = (rows >= top) & (rows < top + size_h) & (cols >= left) & (cols < left + size_w)
    keep = 1 - applies * inside[:, None].float()
    return images * keep


def augment_images(images: torch.Tensor, policy: list[str], probability: float) -> torch.Tensor:
    """Apply each operation of `policy` to each image with `probability`; differentiable in `images`."""
    if probability <= 0:
        return images
    operations = {"color": _color, "translation": _translation, "cutout": _cutout}
    for name in policy:
        images = operations[name](images, _per_image(images.shape[0], probability, images.device))
    return images


class AdaptiveAugmentation:
    """The augmentation probability p and how it adapts; saved in checkpoints (`state_dict` / `load_state_dict`).

    Args:
        policy (`str`): operations, e.g. `"color,translation,cutout"`.
        probability (`float`): p to start with (fixed unless `adaptive`).
        adaptive (`bool`): adapt p towards `target` every `interval` discriminator steps (ADA); fixed p otherwise
            (DiffAugment, usually with p = 1).
        target (`float`): the r_t the controller aims at (0.6 in the ADA paper).
        interval (`int`): discriminator steps between adjustments.
        speed_images (`int`): real images it takes p to move from 0 to 1 at full speed (500k in the paper, less for
            short runs).
    """

    def __init__(
        self,
        policy: str,
        probability: float,
        adaptive: bool,
        target: float = 0.6,
        interval: int = 4,
        speed_images: int = 20_000,
    ):
        if not 0 <= probability <= 1:
            raise ValueError(f"augmentation probability must lie in [0, 1], got {probability}")
        self.policy = parse_policy(policy)
        self.probability = probability
        self.adaptive = adaptive
        self.target = target
        self.interval = interval
        self.speed_images = speed_images
        self.sign_sum = 0.0
        self.sign_count = 0
        self.steps = 0

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return augment_images(images, self.policy, self.probability)

    def accumulate(self, sign_sum: float, count: int) -> None:
        """Record sum(sign(D(real))) over `count` real images (summed over all processes by the caller)."""
        if not self.adaptive:
            return
        self.sign_sum += sign_sum
        self.sign_count += count
        self.steps += 1
        if self.steps % self.interval == 0 and self.sign_count:
            r_t = self.sign_sum / self.sign_count
            step = self.sign_count / self.speed_images
            self.probability = float(min(1.0, max(0.0, self.probability + step * (1 if r_t > self.target else -1))))
            self.sign_sum, self.sign_count = 0.0, 0

    def state_dict(self) -> dict:
        return {
            "probability": self.probability,
            "sign_sum": self.sign_sum,
            "sign_count": self.sign_count,
            "steps": self.steps,
        }

    def load_state_dict(self, state: dict) -> None:
        self.probability = float(state["probability"])
        self.sign_sum = float(state["sign_sum"])
        self.sign_count = int(state["sign_count"])
        self.steps = int(state["steps"])
