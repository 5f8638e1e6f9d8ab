"""Distribution metrics of generated images, streamed batch by batch: FID, KID, Inception Score, precision / recall.

FID, KID and IS are torchmetrics' own metrics; precision / recall is hfgen's [`ManifoldPrecisionRecall`]. The images
go through the feature extractor (by default hfgen's digits classifier, so nothing is downloaded) once per batch, and
every metric receives those features through a pass-through `feature=` module, instead of running the extractor
again for itself. All of them keep torchmetrics states, so under accelerate (torch.distributed initialised)
`compute()` gathers what every process saw and returns the value of the whole set on every process.
"""

import torch
from torch import nn
from torchmetrics import Metric
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.inception import InceptionScore
from torchmetrics.image.kid import KernelInceptionDistance

from .feature_extractor import DigitsFeatureExtractor, load_digits_feature_extractor
from .precision_recall import ManifoldPrecisionRecall

KID_MAX_SUBSET_SIZE = 1000
"""Subset size of KID (Binkowski et al. 2018) when there are enough samples; fewer samples give smaller subsets.

With fewer than 2,000 samples a side, the default subset holds half of the smaller set: subsets as large as the whole
set would all be the same set, and `kid_std` would be 0 instead of the spread over subsets it is meant to report.
"""


class PrecomputedFeatures(nn.Module):
    """The `feature=` module of metrics that are handed features rather than images: returns its input.

    `num_features` is what torchmetrics' FID reads to size its states (it would otherwise probe with a fake image).
    """

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


class GenerativeMetrics(Metric):
    r"""
    FID, KID, Inception Score and improved precision / recall of generated images against real ones, in one object.

    Feed batches with `update(images, real=True)` (real images) and `update(images, real=False)` (generated
    images), then `compute()`. Images are `(batch, channels, height, width)` tensors in [-1, 1]; they reach the
    extractors unchanged, and the default digits extractor accepts 1 or 3 channels at any resolution (see
    [`DigitsFeatureExtractor`]). The Inception Score is measured on the generated images only, and only when there is
    a classifier to give class logits: with a features-only extractor (e.g. a DINOv2 backbone,
    [`BackboneFeatureExtractor`]) it is absent from `compute()`'s result, and `measures_inception_score` is `False`.

    Args:
        feature_extractor (`torch.nn.Module`, *optional*):
            Maps images to features `(batch, num_features)` for FID, KID and precision / recall, and exposes that
            dimension as a `num_features` attribute. Defaults to the shipped digits classifier
            ([`load_digits_feature_extractor`]).
        logits_extractor (`torch.nn.Module`, *optional*):
            Maps images to class logits `(batch, num_classes)` for the Inception Score. Defaults to the logits of
            `feature_extractor`'s classifier when that is a [`DigitsFeatureExtractor`]; without it, any other
            extractor measures no Inception Score.
        kid_subsets (`int`, *optional*, defaults to 100):
            Random subsets over which KID's unbiased MMD^2 is averaged (`kid_std` is its spread over them).
        kid_subset_size (`int`, *optional*):
            Samples per KID subset. By default `min(1000, min(num_real, num_fake) // 2)`, decided at `compute()`
            from the counts of all processes; an explicit value larger than either count raises a `ValueError`.
        inception_score_splits (`int`, *optional*, defaults to 10):
            Splits of the generated set over which the Inception Score is averaged.
        precision_recall_k (`int`, *optional*, defaults to 3):
            Neighbour that sets the radius of each sample's ball in precision / recall.
        seed (`int`, *optional*, defaults to 0):
            Seed of the random subsets of KID and the random splits of IS, so `compute()` is reproducible and
            identical on every process. The caller's global RNG state is left as it was.
        sync_on_compute (`bool`, *optional*, defaults to `True`):
            Gather the states of all processes in `compute()`. Set it to `False` to measure what this process saw
            alone, e.g. on the main process only: a synchronising `compute()` waits for every process to call it.

    Example:

    ```python
    >>> metrics = GenerativeMetrics().to(accelerator.device)
    >>> for batch in test_dataloader:
    ...     metrics.update(batch["pixel_values"], real=True)
    >>> for _ in range(num_batches):
    ...     metrics.update(pipeline(batch_size=64, output_type="pt").images * 2 - 1, real=False)
    >>> metrics.compute()   # {"fid": ..., "kid_mean": ..., "kid_std": ..., "inception_score_mean": ..., ...}
    ```
    """

    is_differentiable = False
    full_state_update = False

    def __init__(
        self,
        feature_extractor: nn.Module | None = None,
        logits_extractor: nn.Module | None = None,
        kid_subsets: int = 100,
        kid_subset_size: int | None = None,
        inception_score_splits: int = 10,
        precision_recall_k: int = 3,
        seed: int = 0,
        sync_on_compute: bool = True,
    ):
        super().__init__(sync_on_compute=sync_on_compute)
        if feature_extractor is None:
            feature_extractor = load_digits_feature_extractor()
        if logits_extractor is None and isinstance(feature_extractor, DigitsFeatureExtractor):
            logits_extractor = DigitsFeatureExtractor(feature_extractor.classifier, output="logits")
        if not isinstance(getattr(feature_extractor, "num_features", None), int):
            raise TypeError("feature_extractor must expose its feature dimension as an integer `num_features`")
        if kid_subset_size is not None and (not isinstance(kid_subset_size, int) or kid_subset_size < 2):
            raise ValueError(f"kid_subset_size must be None or an integer >= 2, got {kid_subset_size!r}")
        self.feature_extractor = feature_extractor
        self.logits_extractor = logits_extractor
        self.kid_subset_size = kid_subset_size
        self.seed = seed

        features = PrecomputedFeatures(feature_extractor.num_features)
        self.fid = FrechetInceptionDistance(feature=features, sync_on_compute=sync_on_compute)
        # The subset size is set at compute(), once the number of samples of all processes is known.
        self.kid = KernelInceptionDistance(
            feature=features,
            subsets=kid_subsets,
            subset_size=KID_MAX_SUBSET_SIZE,
            sync_on_compute=sync_on_compute,
        )
        # None when there are no class logits to measure it on (a features-only backbone).
        self.inception_score = None
        if logits_extractor is not None:
            self.inception_score = InceptionScore(
                feature=nn.Identity(), splits=inception_score_splits, sync_on_compute=sync_on_compute
            )
        self.precision_recall = ManifoldPrecisionRecall(
            features, k=precision_recall_k, sync_on_compute=sync_on_compute
        )
        self.add_state("num_real", torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("num_fake", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, images: torch.Tensor, real: bool) -> None:
        """Add a batch of real (`real=True`) or generated images, `(batch, channels, height, width)` in [-1, 1]."""
        if images.ndim != 4:
            raise ValueError(f"images must have shape (batch, channels, height, width), got {tuple(images.shape)}")
        # One pass of the extractor per batch; the metrics below get the features through their pass-through module.
        features = self.feature_extractor(images)
        self.fid.update(features, real=real)
        self.kid.update(features, real=real)
        self.precision_recall.update(features, real=real)
        if real:
            self.num_real += images.shape[0]
        else:
            if self.inception_score is not None:
                self.inception_score.update(self.logits_extractor(images))
            self.num_fake += images.shape[0]

    @property
    def measures_inception_score(self) -> bool:
        """Whether `compute()` reports the Inception Score (only with a `logits_extractor`)."""
        return self.inception_score is not None

    def effective_kid_subset_size(self, num_real: int, num_fake: int) -> int:
        """Samples per KID subset: `kid_subset_size`, or by default `min(1000, min(num_real, num_fake) // 2)`."""
        available = min(num_real, num_fake)
        if self.kid_subset_size is None:
            return max(2, min(KID_MAX_SUBSET_SIZE, available // 2))
        if self.kid_subset_size > available:
            raise ValueError(
                f"kid_subset_size={self.kid_subset_size} is larger than the {num_real} real and {num_fake} generated "
                "samples: use more samples, a smaller kid_subset_size, or None to fit it to the samples"
            )
        return self.kid_subset_size

    def _concatenate_feature_batches(self) -> None:
        """Hold KID's and IS's stored features as one tensor per process instead of a list of batches.

        torchmetrics gathers these list states (reduction `None`) one list element at a time: the processes' batches
        come back interleaved, so the random subsets and splits differ from those of one process holding all the
        data, and when processes hold different numbers of batches the exchanges no longer pair up (features are
        lost, or processes wait for each other). With one tensor each, the gathered features come in rank order, as
        precision / recall's "cat" states do.
        """
        states = [(self.kid, ("real_features", "fake_features"))]
        if self.inception_score is not None:
            states.append((self.inception_score, ("features",)))
        for metric, names in states:
            for name in names:
                batches = getattr(metric, name)
                if isinstance(batches, list) and len(batches) > 1:
                    setattr(metric, name, [torch.cat(batches)])

    def compute(self) -> dict[str, float]:
        """FID, KID (mean, std), IS (mean, std; only with class logits), precision and recall of everything seen, as
        Python floats."""
        # Counts summed over all processes (the base class synchronised them before calling this).
        num_real, num_fake = int(self.num_real), int(self.num_fake)
        minimum = self.precision_recall.k + 1
        if num_real < minimum or num_fake < minimum:
            raise ValueError(
                f"distribution metrics need at least {minimum} real and {minimum} generated images, got {num_real} "
                f"real and {num_fake} generated"
            )
        self.kid.subset_size = self.effective_kid_subset_size(num_real, num_fake)
        self._concatenate_feature_batches()
        fid = self.fid.compute()
        # torchmetrics draws KID's subsets and IS's splits from torch's global RNG. A forked, seeded RNG makes them
        # reproducible and the same on every process, and leaves the caller's random stream untouched.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            kid_mean, kid_std = self.kid.compute()
            if self.inception_score is not None:
                torch.manual_seed(self.seed)
                inception_score_mean, inception_score_std = self.inception_score.compute()
        precision, recall = self.precision_recall.compute()
        values = {"fid": fid, "kid_mean": kid_mean, "kid_std": kid_std}
        if self.inception_score is not None:
            values.update(inception_score_mean=inception_score_mean, inception_score_std=inception_score_std)
        values.update(precision=precision, recall=recall)
        return {name: value.item() for name, value in values.items()}

    def forward(self, *args, **kwargs):
        # torchmetrics' forward() would compute every metric on each batch alone: meaningless for distributions.
        raise NotImplementedError(
            "GenerativeMetrics measures whole sets: call update() for each batch, then compute()"
        )

    def reset(self) -> None:
        """Forget every image seen, in this object and in each sub-metric."""
        super().reset()
        for metric in (self.fid, self.kid, self.inception_score, self.precision_recall):
            if metric is not None:
                metric.reset()


__all__ = ["KID_MAX_SUBSET_SIZE", "GenerativeMetrics", "PrecomputedFeatures"]
