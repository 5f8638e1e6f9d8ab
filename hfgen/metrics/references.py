"""How distribution metrics are measured (the protocol) and what they read on the same data with the same extractor
(the references).

A FID is only meaningful next to the dataset, split, extractor, resolution, resize and sample counts it was measured
with, and next to numbers measured the same way: real data against real data (the floor a perfect model would reach
with this many samples) and a trivial baseline (what a model that learned only pixel statistics would get).
"""

import torch
from torch import nn

from ..data.images import DIGITS_TEST_SIZE, images_as_tensor, load_digits_dataset
from .distribution import GenerativeMetrics
from .feature_extractor import load_digits_feature_extractor

REFERENCE_RESOLUTION = 32
"""Resolution at which the references load the built-in digits: the digits classifier's own input size."""

REAL_VS_REAL = "real_train_vs_evaluation"
TRAIN_MEAN_PLUS_NOISE = "train_mean_plus_noise"

REFERENCE_BATCH_SIZE = 64
"""Images per extractor call in the references: bounds memory with a large backbone, does not change the result."""


def metric_protocol(
    num_fake_samples: int,
    num_real_samples: int = DIGITS_TEST_SIZE,
    metrics: GenerativeMetrics | None = None,
    dataset: str | None = None,
    split: str | None = None,
) -> dict:
    r"""
    Describe how the numbers of a [`GenerativeMetrics`] were measured, to store next to them (cards, metrics.json).

    Args:
        num_fake_samples (`int`):
            Generated images fed to the metrics.
        num_real_samples (`int`, *optional*, defaults to 360):
            Real images fed to the metrics (360 is the whole built-in digits test split).
        metrics (`GenerativeMetrics`, *optional*):
            The object that measured them; by default one with the default settings (digits classifier).
        dataset (`str`, *optional*):
            The dataset the real images come from (`--dataset_name` or `--train_data_dir`), e.g. `"hfgen/faces"`.
        split (`str`, *optional*):
            The split they come from, e.g. `"test"` or [`EvaluationSplit.name`] (`"train[held-out 10 of 100 ...]"`).

    Returns:
        `dict` with the dataset and split (None when not given), the extractor, its input resolution, resize and
        colour handling, the sample counts and the settings of KID, IS (or why it was not measured) and precision /
        recall.
    """
    if metrics is None:
        metrics = GenerativeMetrics()
    extractor = metrics.feature_extractor
    protocol = {"dataset": dataset, "split": split}
    # Custom extractors need not describe themselves; their class name is then all that can be said.
    protocol.update(getattr(extractor, "protocol", {"feature_extractor": type(extractor).__name__}))
    if metrics.measures_inception_score:
        inception_score = (
            "exp(E KL(p(y|x) || p(y))) over the generated images, averaged over "
            f"{metrics.inception_score.splits} splits"
        )
    else:
        inception_score = "not measured: the feature extractor gives no class logits"
    protocol.update(
        num_real_samples=num_real_samples,
        num_fake_samples=num_fake_samples,
        fid="Frechet distance between Gaussian fits of the features (torchmetrics FrechetInceptionDistance)",
        kid=f"unbiased MMD^2, polynomial kernel (x.y / dim + 1)^3, averaged over {metrics.kid.subsets} random subsets "
        f"of {metrics.effective_kid_subset_size(num_real_samples, num_fake_samples)} samples",
        inception_score=inception_score,
        precision_recall=f"k-NN manifolds, k={metrics.precision_recall.k} (Kynkaanniemi et al. 2019)",
        seed=metrics.seed,
    )
    return protocol


def _update_in_batches(metrics: GenerativeMetrics, images: torch.Tensor, real: bool, batch_size: int) -> None:
    device = metrics.num_real.device
    for batch in images.split(batch_size):
        metrics.update(batch.to(device), real=real)


def _check_images(name: str, images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"{name} must be a tensor (num_images, channels, height, width) in [-1, 1], got {shape}")


@torch.no_grad()
def reference_metrics(
    train_images: torch.Tensor,
    eval_images: torch.Tensor,
    feature_extractor: nn.Module,
    num_samples: int | None = None,
    seed: int = 0,
    batch_size: int = REFERENCE_BATCH_SIZE,
) -> dict:
    r"""
    FID, KID, (IS) and precision / recall of two references against the evaluation images, for any dataset and
    extractor: the numbers a generated set of the same size is to be read against.

    - `"real_train_vs_evaluation"`: `num_samples` training images drawn without replacement. Real data against real
      data: the best value a generator can expect with this many samples.
    - `"train_mean_plus_noise"`: the training images' mean plus independent Gaussian noise with their per-pixel
      standard deviation, clipped to [-1, 1]: right first and second moments per pixel, no content.

    The real side is always all of `eval_images`, as in the training scripts, so `metric_protocol(num_samples,
    len(eval_images), ...)` describes both. Deterministic (a seeded `torch.Generator`; the global RNG is not used) and
    computed on the calling process alone (`sync_on_compute=False`), so it can run on the main process only. A few
    seconds on a CPU for a few hundred 32-pixel images through the digits classifier.

    Args:
        train_images (`torch.Tensor` of shape `(num_train, channels, height, width)`):
            Training images in [-1, 1] (e.g. [`hfgen.data.images_as_tensor`] of the train split).
        eval_images (`torch.Tensor` of shape `(num_eval, channels, height, width)`):
            The evaluation split's images in [-1, 1].
        feature_extractor (`torch.nn.Module`):
            As given to [`GenerativeMetrics`] (e.g. from [`resolve_feature_extractor`]); the Inception Score is
            included only when it gives class logits (the digits classifier does).
        num_samples (`int`, *optional*):
            Images of each reference, between 1 and `num_train`; all training images by default. Use the number of
            generated images the model is measured with, as FID and KID depend on the sample count.
        seed (`int`, *optional*, defaults to 0):
            Seed of the training-image draw, of the noise and of the metrics' random subsets.
        batch_size (`int`, *optional*, defaults to 64):
            Images per extractor call.

    Returns:
        `dict` mapping each reference name to the `dict` returned by [`GenerativeMetrics.compute`].
    """
    _check_images("train_images", train_images)
    _check_images("eval_images", eval_images)
    num_train = train_images.shape[0]
    if num_samples is None:
        num_samples = num_train
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or not 1 <= num_samples <= num_train:
        raise ValueError(
            f"num_samples must lie between 1 and {num_train} (the training images given), got {num_samples!r}"
        )

    # 1. the two reference sets, from one seeded generator
    generator = torch.Generator().manual_seed(seed)
    train_images = train_images.float()
    train_sample = train_images[torch.randperm(num_train, generator=generator)[:num_samples]]
    noise = torch.randn((num_samples, *train_images.shape[1:]), generator=generator)
    mean_plus_noise = (train_images.mean(dim=0) + train_images.std(dim=0) * noise).clamp(-1.0, 1.0)

    # 2. each against the evaluation images, in batches
    metrics = GenerativeMetrics(feature_extractor, seed=seed, sync_on_compute=False)
    references = {}
    for name, fake in ((REAL_VS_REAL, train_sample), (TRAIN_MEAN_PLUS_NOISE, mean_plus_noise)):
        metrics.reset()
        _update_in_batches(metrics, eval_images, real=True, batch_size=batch_size)
        _update_in_batches(metrics, fake, real=False, batch_size=batch_size)
        references[name] = metrics.compute()
    return references


def digits_reference_metrics(num_samples: int = DIGITS_TEST_SIZE, seed: int = 0) -> dict:
    r"""
    [`reference_metrics`] of the built-in digits (train split against the 360 test images) through the shipped digits
    classifier, under the names `"real_train_vs_test"` and `"train_mean_plus_noise"`.

    Args:
        num_samples (`int`, *optional*, defaults to 360):
            Images of each reference, at most 1437 (the size of the train split).
        seed (`int`, *optional*, defaults to 0):
            Seed of the train-split draw, of the noise and of the metrics' random subsets.

    Returns:
        `dict` mapping each reference name to the `dict` returned by [`GenerativeMetrics.compute`].
    """
    dataset = load_digits_dataset(REFERENCE_RESOLUTION)
    train = images_as_tensor(dataset["train"], REFERENCE_RESOLUTION, "L")
    test = images_as_tensor(dataset["test"], REFERENCE_RESOLUTION, "L")
    references = reference_metrics(train, test, load_digits_feature_extractor(), num_samples=num_samples, seed=seed)
    # The digits evaluate their test split; the name predates the general function and is kept for saved records.
    return {"real_train_vs_test": references[REAL_VS_REAL], TRAIN_MEAN_PLUS_NOISE: references[TRAIN_MEAN_PLUS_NOISE]}


__all__ = [
    "REAL_VS_REAL",
    "REFERENCE_RESOLUTION",
    "TRAIN_MEAN_PLUS_NOISE",
    "digits_reference_metrics",
    "metric_protocol",
    "reference_metrics",
]
