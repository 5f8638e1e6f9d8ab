"""How distribution metrics are measured (the protocol) and what they read on the built-in digits (the references).

A FID is only meaningful next to the extractor, resolution, resize and sample counts it was measured with, and
next to numbers measured the same way: real data against real data (the floor a perfect model would reach with
this many samples) and a trivial baseline (what a model that learned only pixel statistics would get).
"""

import torch

from ..data.images import DIGITS_TEST_SIZE, image_transform, load_digits_dataset
from .distribution import GenerativeMetrics

REFERENCE_RESOLUTION = 32
"""Resolution at which the references load the built-in digits: the digits classifier's own input size."""


def metric_protocol(
    num_fake_samples: int, num_real_samples: int = DIGITS_TEST_SIZE, metrics: GenerativeMetrics | None = None
) -> dict:
    r"""
    Describe how the numbers of a [`GenerativeMetrics`] were measured, to store next to them (cards, metrics.json).

    Args:
        num_fake_samples (`int`):
            Generated images fed to the metrics.
        num_real_samples (`int`, *optional*, defaults to 360):
            Real images fed to the metrics; 360 is the whole built-in test split.
        metrics (`GenerativeMetrics`, *optional*):
            The object that measured them; by default one with the default settings (digits classifier).

    Returns:
        `dict` with the extractor, its input resolution, resize and colour handling, the sample counts and the
        settings of KID, IS and precision / recall.
    """
    if metrics is None:
        metrics = GenerativeMetrics()
    extractor = metrics.feature_extractor
    # Custom extractors need not describe themselves; their class name is then all that can be said.
    protocol = dict(getattr(extractor, "protocol", {"feature_extractor": type(extractor).__name__}))
    protocol.update(
        num_real_samples=num_real_samples,
        num_fake_samples=num_fake_samples,
        fid="Frechet distance between Gaussian fits of the features (torchmetrics FrechetInceptionDistance)",
        kid=f"unbiased MMD^2, polynomial kernel (x.y / dim + 1)^3, averaged over {metrics.kid.subsets} random subsets "
        f"of {metrics.effective_kid_subset_size(num_real_samples, num_fake_samples)} samples",
        inception_score="exp(E KL(p(y|x) || p(y))) over the generated images, averaged over "
        f"{metrics.inception_score.splits} splits",
        precision_recall=f"k-NN manifolds, k={metrics.precision_recall.k} (Kynkaanniemi et al. 2019)",
        seed=metrics.seed,
    )
    return protocol


def digits_reference_metrics(num_samples: int = DIGITS_TEST_SIZE, seed: int = 0) -> dict:
    r"""
    FID, KID, IS and precision / recall of two references against the built-in test split, with the default protocol.

    - `"real_train_vs_test"`: `num_samples` images drawn from the train split (without replacement). Real data
      against real data: the best value a generator can expect with this many samples.
    - `"train_mean_plus_noise"`: the train split's mean image plus independent Gaussian noise with the train split's
      per-pixel standard deviation, clipped to [-1, 1]: right first and second moments per pixel, no digit.

    The real side is always the whole test split (360 images), as in hfgen's training scripts, so
    `metric_protocol(num_samples)` describes both. Deterministic (a seeded `torch.Generator`, the global RNG is not
    used) and a few seconds on a CPU. Computed on the calling process alone, so it can run on the main process only.

    Args:
        num_samples (`int`, *optional*, defaults to 360):
            Images of each reference, at most 1437 (the size of the train split).
        seed (`int`, *optional*, defaults to 0):
            Seed of the train-split draw, of the noise and of the metrics' random subsets.

    Returns:
        `dict` mapping each reference name to the `dict` returned by [`GenerativeMetrics.compute`].
    """
    # 1. the built-in digits as [-1, 1] tensors
    dataset = load_digits_dataset(REFERENCE_RESOLUTION)
    transform = image_transform(REFERENCE_RESOLUTION, "L")
    train = torch.stack(dataset["train"].with_transform(transform)[:]["pixel_values"])
    test = torch.stack(dataset["test"].with_transform(transform)[:]["pixel_values"])
    if not 1 <= num_samples <= train.shape[0]:
        raise ValueError(f"num_samples must lie between 1 and {train.shape[0]} (the train split), got {num_samples}")

    # 2. the two reference sets, from one seeded generator
    generator = torch.Generator().manual_seed(seed)
    train_sample = train[torch.randperm(train.shape[0], generator=generator)[:num_samples]]
    noise = torch.randn((num_samples, *train.shape[1:]), generator=generator)
    mean_plus_noise = (train.mean(dim=0) + train.std(dim=0) * noise).clamp(-1.0, 1.0)

    # 3. each against the test split
    metrics = GenerativeMetrics(seed=seed, sync_on_compute=False)
    references = {}
    for name, fake in (("real_train_vs_test", train_sample), ("train_mean_plus_noise", mean_plus_noise)):
        metrics.reset()
        metrics.update(test, real=True)
        metrics.update(fake, real=False)
        references[name] = metrics.compute()
    return references


__all__ = ["REFERENCE_RESOLUTION", "digits_reference_metrics", "metric_protocol"]
