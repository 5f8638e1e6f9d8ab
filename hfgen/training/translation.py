"""What CycleGAN's and pix2pix's scripts share around their loops: two image domains to load (a built-in pair, two
folders or a two-column dataset), the papers' learning-rate policies, translation metrics, and validation grids.

The metrics depend on what is known about the held-out images:

- paired held-out images (pix2pix always; CycleGAN on the built-in pairs, whose true mapping is known): PSNR and
  SSIM of each translation against its true counterpart, beside the same numbers for the input itself (the
  identity-mapping baseline a translation must beat);
- always for CycleGAN: cycle reconstruction PSNR (A -> B -> A against A, and B -> A -> B);
- with a feature extractor (hfgen's digits classifier on the digit pair, `--metrics_model` elsewhere): FID / KID /
  precision / recall of the translations against the real images of the target domain;
- on the digit pair: class preservation, the digits classifier reading each translation (brought back to grey
  digits by the known inverse map for A -> B) against the label of its input.
"""

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from datasets import Dataset, DatasetDict, Features, Image

from ..data import (
    ImageDataError,
    decoded_if_small,
    image_transform,
    load_image_dataset,
    parse_validation_split,
    split_for_evaluation,
    verify_image_files,
)
from ..data.images import IMAGE_EXTENSIONS
from ..data.translation import (
    BUILTIN_DIGIT_PAIR,
    BUILTIN_PHOTO_PAIR,
    decolourise,
    load_digit_pair,
    load_photo_pair,
    ungrade,
)
from ..metrics import GenerativeMetrics, load_digits_classifier, psnr, resolve_feature_extractor, ssim
from ..metrics.feature_extractor import DigitsFeatureExtractor, load_digits_feature_extractor, to_classifier_pixels
from .adversarial import add_adversarial_run_arguments, constant_then_linear_decay
from .arguments import GREY_MODES

BUILTIN_PAIRS = {BUILTIN_DIGIT_PAIR: load_digit_pair, BUILTIN_PHOTO_PAIR: load_photo_pair}

# The known B -> A maps of the built-in pairs, on uint8 RGB arrays: the digit pair's brings a translation to domain B
# back to a grey digit the digits classifier can read.
KNOWN_INVERSES = {BUILTIN_DIGIT_PAIR: decolourise, BUILTIN_PHOTO_PAIR: ungrade}

TRANSLATION_SCHEDULERS = ("linear_decay", "constant", "step", "cosine", "plateau")

TRANSLATION_CARD_METRIC_NAMES = {
    "psnr_a_to_b": "PSNR of A -> B translations against the true B images (dB)",
    "ssim_a_to_b": "SSIM of A -> B translations against the true B images",
    "psnr_b_to_a": "PSNR of B -> A translations against the true A images (dB)",
    "ssim_b_to_a": "SSIM of B -> A translations against the true A images",
    "cycle_psnr_a": "PSNR of A -> B -> A against A (dB)",
    "cycle_psnr_b": "PSNR of B -> A -> B against B (dB)",
    "fid_a_to_b": "FID of A -> B translations against real B images",
    "kid_a_to_b": "KID of A -> B translations against real B images",
    "fid_b_to_a": "FID of B -> A translations against real A images",
    "kid_b_to_a": "KID of B -> A translations against real A images",
    "class_preservation_a_to_b": "class preservation of A -> B (digits classifier)",
    "class_preservation_b_to_a": "class preservation of B -> A (digits classifier)",
}


def add_translation_data_arguments(parser: argparse.ArgumentParser, paired: bool) -> None:
    """The data flags of both translation scripts; `paired`: pix2pix's (rows or files are pairs)."""
    pairing = (
        "paired by file name: domain_b must hold an image of the same name (any extension) for every image of domain_a"
        if paired
        else "unpaired: any two sets of images"
    )
    parser.add_argument(
        "--dataset_name",
        type=str,
        default=None,
        help=f"A built-in pair ({BUILTIN_DIGIT_PAIR}: digits and their colourised versions; {BUILTIN_PHOTO_PAIR}: "
        "crops of real photographs and a colour-graded version), or a `datasets` name whose rows hold one image of "
        f"each domain (--image_a_column, --image_b_column). Without it or --domain_a / --domain_b: "
        f"{BUILTIN_DIGIT_PAIR}.",
    )
    parser.add_argument("--dataset_config_name", type=str, default=None)
    parser.add_argument("--image_a_column", type=str, default="image_a")
    parser.add_argument("--image_b_column", type=str, default="image_b")
    parser.add_argument(
        "--domain_a",
        type=str,
        default=None,
        help=f"Images of domain A: a local folder or a `datasets` name; {pairing}.",
    )
    parser.add_argument("--domain_b", type=str, default=None, help="Images of domain B, as --domain_a.")
    parser.add_argument("--cache_dir", type=str, default=None)
    parser.add_argument(
        "--resolution", type=int, default=32, help="Images are resized (bicubic) and center-cropped to this."
    )
    parser.add_argument(
        "--color_mode",
        type=str,
        default=None,
        choices=["L", "RGB"],
        help="Of both domains; by default L when every image of both is greyscale, else RGB.",
    )
    parser.add_argument(
        "--random_flip",
        action="store_true",
        help="Flip training images horizontally at random" + (" (both images of a pair together)." if paired else "."),
    )
    parser.add_argument("--dataloader_num_workers", type=int, default=0)
    parser.add_argument(
        "--validation_split",
        type=parse_validation_split,
        default=None,
        help="Images held out for the metrics (per domain): a fraction (0.1) or a count (50). By default the "
        "dataset's own validation / test split, else 10%% of the images (at least 4), fixed by --seed.",
    )
    parser.add_argument(
        "--metrics_model",
        type=str,
        default=None,
        help="A transformers vision backbone (folder or Hub id) whose features give FID / KID of the translations "
        f"on your data; {BUILTIN_DIGIT_PAIR} uses hfgen's digits classifier.",
    )
    parser.set_defaults(builtin_dataset=BUILTIN_DIGIT_PAIR, train_data_dir=None, class_filter=None)


def add_translation_schedule_arguments(parser: argparse.ArgumentParser) -> None:
    """The papers' learning-rate policies: `--lr_scheduler` (of [`add_run_arguments`], called first) takes these
    choices instead of transformers' schedules."""
    (scheduler,) = [action for action in parser._actions if action.dest == "lr_scheduler"]
    scheduler.choices, scheduler.default = TRANSLATION_SCHEDULERS, "linear_decay"
    scheduler.help = (
        "linear_decay: constant for --n_epochs, then linear to zero over --n_epochs_decay (the papers'); step: x0.1 "
        "every --lr_decay_steps; cosine: to zero over the run; plateau: x0.1 when the generators' reconstruction "
        "loss (cycle or L1) has not improved for 3 validations. (default: %(default)s)"
    )
    parser.add_argument(
        "--n_epochs",
        type=int,
        default=None,
        help="Epochs at the starting learning rate; with --n_epochs_decay it sets the run's length. By default the "
        "run is the script's number of steps, the second half decaying.",
    )
    parser.add_argument("--n_epochs_decay", type=int, default=None, help="Epochs of linear decay to zero.")
    parser.add_argument(
        "--lr_decay_steps", type=int, default=None, help="step: steps between decays (default: a third)."
    )


TRANSLATION_FLAG_RANGES = {
    "n_epochs": (0, None, "closed"),
    "n_epochs_decay": (0, None, "closed"),
    "lr_decay_steps": (1, None, "closed"),
}


def check_translation_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """One-line errors for flags that do not go together; names the output folder after the data."""
    if (args.domain_a is None) != (args.domain_b is None):
        parser.error("--domain_a and --domain_b go together: give both image sets, or neither")
    if args.domain_a is not None and args.dataset_name is not None:
        parser.error("give either --dataset_name or --domain_a / --domain_b, not both")
    if (args.n_epochs is None) != (args.n_epochs_decay is None):
        parser.error("--n_epochs and --n_epochs_decay go together (the papers' 100 + 100): give both, or neither")
    if args.n_epochs is not None and args.max_train_steps is not None:
        parser.error("--n_epochs / --n_epochs_decay set the run's length: drop --max_train_steps, or them")
    if args.n_epochs is not None and args.n_epochs + args.n_epochs_decay == 0:
        parser.error("--n_epochs + --n_epochs_decay must be at least 1")
    if args.n_epochs is not None and args.num_train_epochs is not None:
        parser.error("--n_epochs / --n_epochs_decay set the run's length: drop --num_train_epochs")
    if args.lr_warmup_steps:
        parser.error("--lr_warmup_steps: the translation schedules have no warmup (the papers use none); drop it")
    if args.lr_decay_steps is not None and args.lr_scheduler != "step":
        parser.error(f"--lr_decay_steps is for --lr_scheduler step, not {args.lr_scheduler}")
    if args.domain_a is not None:
        args.builtin_dataset = None  # the two domains are the data: no built-in pair in --dataset_name
    if args.output_dir is None and args.domain_a is not None:
        names = [os.path.basename(os.path.normpath(domain)) for domain in (args.domain_a, args.domain_b)]
        args.output_dir = f"{args.output_dir_prefix}-{names[0]}-to-{names[1]}"


@dataclass
class TranslationData:
    r"""
    The two domains of a translation run, from [`load_translation_data`].

    Attributes:
        dataset (`str`): the data as the user gave it (a built-in pair, a `datasets` name, or "A -> B" folders).
        datasets (`list[str]`): the Hub datasets it came from, for the card (none for local folders).
        split (`str`): which images are evaluated, e.g. `"test"`.
        train_a, train_b: the training images of each domain, transformed (`pixel_values`, `label` when known);
            row `i` of each is a pair when `paired_training`.
        eval_a, eval_b (`torch.Tensor`): the held-out images of each domain, `(n, channels, size, size)` in [-1, 1].
        eval_labels (`torch.Tensor` or `None`): the classes of `eval_a` (the digit pair).
        paired_training, paired_evaluation (`bool`): whether row `i` of A and of B show the same scene.
        known_inverse (`Callable` or `None`): the true B -> A map on uint8 RGB arrays (the built-in pairs).
        feature_extractor (`torch.nn.Module` or `None`), note (`str`): FID's extractor, and which (or why none).
    """

    dataset: str
    datasets: list[str]
    split: str
    train_a: object
    train_b: object
    eval_a: torch.Tensor
    eval_b: torch.Tensor
    eval_labels: torch.Tensor | None
    paired_training: bool
    paired_evaluation: bool
    known_inverse: Callable | None
    feature_extractor: torch.nn.Module | None
    note: str
    protocol: dict = field(default_factory=dict)


def _domain(split: Dataset, column: str) -> Dataset:
    """One domain of a two-column split, as the `image` (and `label`) dataset the image transforms take."""
    keep = [column] + (["label"] if "label" in split.column_names else [])
    domain = split.select_columns(keep)
    return domain.rename_column(column, "image") if column != "image" else domain


def _file_stems(folder: str) -> dict[str, str]:
    """Image files below `folder` by their path relative to it, without the extension."""
    stems = {}
    for root, _, names in os.walk(folder):
        for name in names:
            if name.lower().endswith(IMAGE_EXTENSIONS):
                path = os.path.join(root, name)
                stems[os.path.splitext(os.path.relpath(path, folder))[0]] = path
    return stems


def paired_folders(folder_a: str, folder_b: str) -> DatasetDict:
    """The pairs of two folders, matched by file name (relative path without extension): a `train` split with
    `image_a` / `image_b`. Every image is decoded first, so a broken file is named before training."""
    verify_image_files(folder_a)
    verify_image_files(folder_b)
    files_a, files_b = _file_stems(folder_a), _file_stems(folder_b)
    missing = sorted(set(files_a) - set(files_b))
    if missing:
        raise ImageDataError(
            f"--domain_b {folder_b!r} has no image named like {len(missing)} of the {len(files_a)} images of "
            f"--domain_a (first: {missing[0]!r}): pix2pix trains on pairs of the same file name"
        )
    stems = sorted(files_a)
    features = Features({"image_a": Image(), "image_b": Image()})
    rows = {"image_a": [files_a[stem] for stem in stems], "image_b": [files_b[stem] for stem in stems]}
    return DatasetDict({"train": Dataset.from_dict(rows, features=features)})


def _two_column_dataset(args: argparse.Namespace) -> DatasetDict:
    from datasets import load_dataset

    dataset = load_dataset(args.dataset_name, args.dataset_config_name, cache_dir=args.cache_dir)
    for column, flag in ((args.image_a_column, "--image_a_column"), (args.image_b_column, "--image_b_column")):
        if column not in dataset["train"].column_names:
            raise ImageDataError(
                f"dataset {args.dataset_name!r} has no column {column!r} ({flag}); its columns: "
                f"{dataset['train'].column_names}"
            )
    return dataset


def _resolve_color_mode(args: argparse.Namespace, *domains: Dataset) -> str:
    if args.color_mode is None:
        modes = set()
        for domain in domains:
            modes |= {image.mode for image in domain.select(range(min(256, len(domain))))["image"]}
        args.color_mode = "L" if modes <= GREY_MODES else "RGB"
    return args.color_mode


class PairedImages(torch.utils.data.Dataset):
    """Two transformed datasets of the same length, row `i` of each a pair: `pixel_values_a`, `pixel_values_b`."""

    def __init__(self, images_a, images_b):
        self.images_a, self.images_b = images_a, images_b

    def __len__(self) -> int:
        return len(self.images_a)

    def __getitem__(self, index: int) -> dict:
        return {
            "pixel_values_a": self.images_a[index]["pixel_values"],
            "pixel_values_b": self.images_b[index]["pixel_values"],
        }


def collate_pairs(examples) -> dict:
    return {key: torch.stack([example[key] for example in examples]) for key in ("pixel_values_a", "pixel_values_b")}


def _as_tensor(dataset: Dataset, transform) -> torch.Tensor:
    return torch.stack(dataset.with_transform(transform)[:]["pixel_values"])


def load_translation_data(args: argparse.Namespace, accelerator, paired: bool, logger) -> TranslationData:
    """Step 1 of a translation script: load both domains (every image decoded first), hold out the evaluation
    images, resolve `--color_mode`, choose FID's extractor, and transform the images to [-1, 1] tensors.

    `paired` (pix2pix) needs pairs: a built-in pair served paired, a two-column dataset (rows are pairs) or two
    folders matched by file name. CycleGAN (`paired=False`) takes the built-in pairs served unpaired, two image sets
    (folders or `datasets` names, each split on its own), or a two-column dataset whose rows it does not pair.
    """
    builtin = args.dataset_name in BUILTIN_PAIRS
    two_domains = args.domain_a is not None
    if builtin:
        pair = BUILTIN_PAIRS[args.dataset_name](args.resolution, paired=paired)
        if args.validation_split is not None:
            raise ValueError(
                f"{args.dataset_name} has its own test split, which is evaluated: drop --validation_split"
            )
    elif two_domains and paired:
        pair = paired_folders(args.domain_a, args.domain_b)
    elif not two_domains:
        pair = _two_column_dataset(args)
    if builtin or not two_domains or paired:
        splits = split_for_evaluation(pair, args.validation_split, seed=args.seed)
        columns = ("image_a", "image_b") if builtin or two_domains else (args.image_a_column, args.image_b_column)
        train_a, train_b = (_domain(splits.train, column) for column in columns)
        eval_a, eval_b = (_domain(splits.evaluation, column) for column in columns)
        split_name = splits.name
        paired_evaluation = builtin or paired
    else:
        domains = []
        for folder in (args.domain_a, args.domain_b):
            local = os.path.exists(folder)
            dataset = load_image_dataset(
                None if local else folder, folder if local else None, args.resolution, args.dataset_config_name,
                args.cache_dir,
            )  # fmt: skip
            domains.append(split_for_evaluation(dataset, args.validation_split, seed=args.seed))
        (train_a, eval_a), (train_b, eval_b) = ((domain.train, domain.evaluation) for domain in domains)
        split_name = (
            domains[0].name if domains[0].name == domains[1].name else f"{domains[0].name} / {domains[1].name}"
        )
        paired_evaluation = False
    for name, domain in (("A", eval_a), ("B", eval_b)):
        if len(domain) < max(4, accelerator.num_processes):
            raise ValueError(
                f"domain {name} has {len(domain)} held-out images; the metrics need at least 4 (and one per "
                "process): raise --validation_split or add images"
            )

    color_mode = _resolve_color_mode(args, train_a, train_b)
    transform = image_transform(args.resolution, color_mode)
    channels = 1 if color_mode == "L" else 3
    images_a = decoded_if_small(train_a, transform, args.resolution, channels)
    images_b = decoded_if_small(train_b, transform, args.resolution, channels)
    if args.metrics_model is None and args.dataset_name == BUILTIN_DIGIT_PAIR:
        extractor = load_digits_feature_extractor(device=accelerator.device)
        note = "distribution metrics through hfgen's digits classifier"
    else:
        data_name = args.dataset_name or args.domain_b
        extractor, note = resolve_feature_extractor(args.metrics_model, data_name, data_name, accelerator.device)
    dataset = args.dataset_name or f"{args.domain_a} -> {args.domain_b}"
    hub_names = (
        [args.dataset_name] if args.dataset_name and not builtin and not os.path.exists(args.dataset_name) else []
    )
    if two_domains:
        hub_names = [domain for domain in (args.domain_a, args.domain_b) if not os.path.exists(domain)]
    data = TranslationData(
        dataset=dataset,
        datasets=hub_names,
        split=split_name,
        train_a=PairedImages(images_a, images_b) if paired else images_a,
        train_b=None if paired else images_b,
        eval_a=_as_tensor(eval_a, transform),
        eval_b=_as_tensor(eval_b, transform),
        eval_labels=torch.tensor(eval_a["label"]) if "label" in eval_a.column_names else None,
        paired_training=paired,
        paired_evaluation=paired_evaluation,
        known_inverse=KNOWN_INVERSES.get(args.dataset_name),
        feature_extractor=extractor,
        note=note,
    )
    data.protocol = translation_protocol(data, paired)
    if two_domains and not hub_names:  # two local folders: the card's model-index names no Hub dataset
        data.protocol["dataset_type"] = "imagefolder"
    logger.info(
        f"{len(images_a)} A and {len(images_b)} B training images ({'paired' if paired else 'unpaired'}); metrics on "
        f"{dataset} ({split_name}): {note}"
    )
    return data


def translation_protocol(data: TranslationData, paired: bool) -> dict:
    """How the run's numbers were measured, for metrics.json and the card."""
    protocol = {
        "dataset": data.dataset,
        "split": data.split,
        "num_images_a": len(data.eval_a),
        "num_images_b": len(data.eval_b),
        "training_pairs": "paired" if paired else "unpaired",
        "psnr_ssim": "each translation against its true counterpart, images in [-1, 1] (data range 2), averaged "
        "per image; SSIM with an 11x11 Gaussian window"
        if data.paired_evaluation
        else "not measured: the held-out images have no known counterparts",
        "distribution_metrics": data.note,
    }
    if data.eval_labels is not None:
        protocol["class_preservation"] = (
            "hfgen's digits classifier on each translation (A -> B brought back to grey by the known inverse map) "
            "against its input's label"
        )
    if data.feature_extractor is not None:
        digits = isinstance(data.feature_extractor, DigitsFeatureExtractor)
        protocol["extractor"] = "hfgen digits classifier" if digits else data.feature_extractor.name
        if hasattr(data.feature_extractor, "protocol"):
            protocol["extractor_details"] = data.feature_extractor.protocol
    return protocol


def matching_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """`images` with `channels` channels: grey repeated to RGB, RGB to grey by BT.601 luma."""
    if images.shape[1] == channels:
        return images
    if channels == 3:
        return images.expand(-1, 3, -1, -1)
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)


def to_domain_a(images_b: torch.Tensor, inverse: Callable) -> torch.Tensor:
    """Images of domain B in [-1, 1] brought back to domain A by a known inverse map on uint8 RGB arrays."""
    array = ((matching_channels(images_b, 3).clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    restored = torch.from_numpy(np.ascontiguousarray(inverse(array))).float() / 127.5 - 1
    return restored[:, None] if restored.ndim == 3 else restored.permute(0, 3, 1, 2)


@torch.no_grad()
def evaluate_translations(
    translators: dict[str, Callable[[torch.Tensor], torch.Tensor]],
    data: TranslationData,
    accelerator,
    batch_size: int = 64,
    seed: int = 0,
) -> dict[str, float]:
    r"""
    Metrics of a run's translations of the held-out images (every process measures its share; the results are those
    of the whole set on every process).

    Args:
        translators (`dict`): `"a_to_b"` and, for CycleGAN, `"b_to_a"`: functions from a batch of one domain in
            [-1, 1] (on the accelerator's device) to its translation.
        data (`TranslationData`): the held-out images, and what is known about them.

    Returns:
        `dict` with, per direction `d`: `psnr_d` / `ssim_d` when the evaluation is paired, `fid_d` / `kid_d` with an
        extractor, `class_preservation_d` on labelled data; with both directions `cycle_psnr_a` / `cycle_psnr_b`.
    """
    device = accelerator.device
    sources = {"a_to_b": (data.eval_a, data.eval_b), "b_to_a": (data.eval_b, data.eval_a)}
    classifier = load_digits_classifier(device) if data.eval_labels is not None else None
    metrics = {}
    for direction, translate in translators.items():
        inputs, targets = sources[direction]
        distribution = None
        if data.feature_extractor is not None:
            distribution = GenerativeMetrics(data.feature_extractor, seed=seed).to(device)
        sums = torch.zeros(4, device=device)  # PSNR, SSIM, classes kept, cycle PSNR
        with accelerator.split_between_processes(list(range(len(inputs)))) as local:
            local = torch.tensor(local, dtype=torch.long)
        for start in range(0, len(local), batch_size):
            indices = local[start : start + batch_size]
            source = inputs[indices].to(device)
            translated = translate(source).clamp(-1, 1)
            target = targets[indices].to(device)
            if data.paired_evaluation:
                sums[0] += psnr(translated, target, reduction="sum")
                sums[1] += ssim(translated, target, reduction="sum")
            if distribution is not None:
                distribution.update(target, real=True)
                distribution.update(translated, real=False)
            if classifier is not None:
                readable = to_domain_a(translated.cpu(), data.known_inverse) if direction == "a_to_b" else translated
                pixels = to_classifier_pixels(readable.to(device), classifier.config.image_size)
                sums[2] += (classifier(pixels).logits.argmax(dim=1) == data.eval_labels[indices].to(device)).sum()
            if len(translators) == 2:
                back = "b_to_a" if direction == "a_to_b" else "a_to_b"
                sums[3] += psnr(translators[back](translated).clamp(-1, 1), source, reduction="sum")
        sums = accelerator.reduce(sums, reduction="sum") / len(inputs)
        if data.paired_evaluation:
            metrics[f"psnr_{direction}"], metrics[f"ssim_{direction}"] = sums[0].item(), sums[1].item()
        if distribution is not None:
            measured = distribution.compute()
            metrics[f"fid_{direction}"], metrics[f"kid_{direction}"] = measured["fid"], measured["kid_mean"]
        if classifier is not None:
            metrics[f"class_preservation_{direction}"] = sums[2].item()
        if len(translators) == 2:
            metrics[f"cycle_psnr_{direction[0]}"] = sums[3].item()
    return metrics


def translation_references(data: TranslationData, directions: tuple[str, ...]) -> dict | None:
    """What a model must beat, read the same way: the identity mapping (each input taken as its own translation;
    PSNR / SSIM against the true counterpart) and, on labelled data, how often the classifier reads the real
    held-out images right (the ceiling of class preservation). None when the evaluation is unpaired."""
    if not data.paired_evaluation:
        return None
    references = {}
    sources = {"a_to_b": (data.eval_a, data.eval_b), "b_to_a": (data.eval_b, data.eval_a)}
    for direction in directions:
        inputs, targets = sources[direction]
        kept = matching_channels(inputs, targets.shape[1])
        references[f"psnr_{direction}"] = {"identity mapping": psnr(kept, targets).item()}
        references[f"ssim_{direction}"] = {"identity mapping": ssim(kept, targets).item()}
    if data.eval_labels is not None:
        classifier = load_digits_classifier("cpu")
        pixels = to_classifier_pixels(data.eval_a, classifier.config.image_size)
        accuracy = (classifier(pixels).logits.argmax(dim=1) == data.eval_labels).float().mean().item()
        for direction in directions:
            references[f"class_preservation_{direction}"] = {"real held-out digits": accuracy}
    return references


def make_translation_scheduler(args: argparse.Namespace, optimizer, batches_per_epoch: int):
    """The `--lr_scheduler` policy over `args.max_train_steps` (set by the caller), stepped once per training step
    (`plateau`: once per validation, with the reconstruction loss). Returns a torch scheduler, whose position
    checkpoints keep (the caller registers it)."""
    steps = args.max_train_steps
    if args.lr_scheduler == "linear_decay":
        constant = args.n_epochs * batches_per_epoch if args.n_epochs is not None else steps // 2
        return constant_then_linear_decay(optimizer, constant, max(0, steps - constant))
    if args.lr_scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=args.lr_decay_steps or max(1, steps // 3), gamma=0.1
        )
    if args.lr_scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps, eta_min=0.0)
    if args.lr_scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.1, patience=2)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def resolve_translation_steps(args: argparse.Namespace, batches_per_epoch: int, default_steps: int) -> int:
    """`--max_train_steps`, else (`--n_epochs` + `--n_epochs_decay`) or `--num_train_epochs` epochs, else the
    script's default; recorded in `args`."""
    if args.max_train_steps is None:
        if args.n_epochs is not None:
            args.max_train_steps = max(1, (args.n_epochs + args.n_epochs_decay) * batches_per_epoch)
        elif args.num_train_epochs is not None:
            args.max_train_steps = max(1, args.num_train_epochs * batches_per_epoch)
        else:
            args.max_train_steps = default_steps
    return args.max_train_steps


@torch.no_grad()
def translation_grid_rows(
    translators: dict[str, Callable], data: TranslationData, count: int, device
) -> tuple[list[torch.Tensor], list[str]]:
    """Rows of the validation grid, in [-1, 1] and all in the output's channels: the first `count` held-out A images,
    their translations to B and (CycleGAN) back to A; then the same from B. Also the rows' names."""
    rows, names = [], []
    channels = max(data.eval_a.shape[1], data.eval_b.shape[1])
    for direction, inputs in (("a_to_b", data.eval_a), ("b_to_a", data.eval_b)):
        if direction not in translators:
            continue
        source = inputs[:count].to(device)
        translated = translators[direction](source).clamp(-1, 1)
        rows += [source, translated]
        names += [direction[0].upper(), f"{direction[0]} -> {direction[-1]}".upper()]
        back = "b_to_a" if direction == "a_to_b" else "a_to_b"
        if back in translators:
            rows.append(translators[back](translated).clamp(-1, 1))
            names.append(f"{direction[0]} -> {direction[-1]} -> {direction[0]}".upper())
        if direction == "a_to_b" and back not in translators and data.paired_evaluation:
            rows.append(data.eval_b[:count].to(device))  # pix2pix: the true targets under the translations
            names.append("true B")
    return [matching_channels(row, channels).cpu() for row in rows], names


def add_translation_model_arguments(parser: argparse.ArgumentParser, paired: bool) -> None:
    """The networks, losses and optimizers of both translation scripts, with the papers' defaults except the
    networks' size (small enough for the built-in pair on a CPU; the papers' is `--generator_channels 64
    --num_residual_blocks 9 --discriminator_channels 64`)."""
    from ..losses.translation import CYCLE_WEIGHT, IDENTITY_SHARE, PIX2PIX_L1_WEIGHT

    folder = "generator/ (and discriminator/" if paired else "generator_ab/, generator_ba/ (and discriminator_a/, _b/"
    parser.add_argument(
        "--pretrained_model_name_or_path",
        type=str,
        default=None,
        help=f"A folder or Hub id this script wrote: {folder} when kept) to continue from.",
    )
    parser.add_argument(
        "--model_config_name_or_path", type=str, default=None, help="A CycleGANConfig for new networks."
    )
    parser.add_argument(
        "--generator_architecture", type=str, default="unet" if paired else "resnet", choices=["resnet", "unet"]
    )
    parser.add_argument("--num_residual_blocks", type=int, default=6, help="resnet: 9 at 256 px, 6 at 128 (papers).")
    parser.add_argument(
        "--unet_num_downs", type=int, default=None, help="unet: down to 1x1 by default (log2 of --resolution)."
    )
    parser.add_argument("--generator_channels", type=int, default=32, help="ngf (the papers': 64).")
    parser.add_argument("--discriminator_architecture", type=str, default="patch", choices=["patch", "pixel"])
    parser.add_argument(
        "--discriminator_layers",
        type=int,
        default=None,
        help="patch: 3 (70x70 patches) by default, fewer below 64 px.",
    )
    parser.add_argument("--discriminator_channels", type=int, default=32, help="ndf (the papers': 64).")
    parser.add_argument(
        "--norm", type=str, default="batch" if paired else "instance", choices=["instance", "batch", "none"]
    )
    parser.add_argument(
        "--use_dropout",
        action=argparse.BooleanOptionalAction,
        default=paired,
        help="Dropout 0.5 in the generator (pix2pix's noise, kept at test time by the papers; off at inference here).",
    )
    parser.add_argument(
        "--upsampling",
        type=str,
        default="nearest",
        choices=["nearest", "transposed"],
        help="nearest + 3x3 convolution (no checkerboard, LoRA reaches it) or the papers' transposed convolutions.",
    )
    parser.add_argument(
        "--gan_loss",
        type=str,
        default="lsgan",
        choices=["lsgan", "vanilla", "wgan-gp"],
        help="Least squares (the papers' default for CycleGAN), the original cross-entropy, or WGAN-GP.",
    )
    parser.add_argument("--gp_weight", type=float, default=10.0, help="wgan-gp: lambda of the gradient penalty.")
    if paired:
        parser.add_argument("--lambda_l1", type=float, default=PIX2PIX_L1_WEIGHT, help="Weight of the L1 to targets.")
    else:
        parser.add_argument("--lambda_cycle", type=float, default=CYCLE_WEIGHT, help="Weight of both cycle losses.")
        parser.add_argument(
            "--lambda_identity",
            type=float,
            default=IDENTITY_SHARE,
            help="Identity loss weight, as a share of --lambda_cycle (0: off; needs the same channels both sides).",
        )
        parser.add_argument("--pool_size", type=int, default=50, help="History of translations D sees (0: off).")
    parser.add_argument("--learning_rate", type=float, default=2e-4)
    parser.add_argument("--adam_beta1", type=float, default=0.5)
    parser.add_argument("--adam_beta2", type=float, default=0.999)
    add_adversarial_run_arguments(parser)


MODEL_FLAG_RANGES = {
    "num_residual_blocks": (0, None, "closed"),
    "unet_num_downs": (2, None, "closed"),
    "generator_channels": (1, None, "closed"),
    "discriminator_layers": (1, None, "closed"),
    "discriminator_channels": (1, None, "closed"),
    "gp_weight": (0, None, "closed"),
    "lambda_l1": (0, None, "closed"),
    "lambda_cycle": (0, None, "closed"),
    "lambda_identity": (0, None, "closed"),
    "pool_size": (0, None, "closed"),
    "learning_rate": (0, None, "open"),
    "loss_limit": (0, None, "open"),
}

# What `--gan_loss` means in hfgen.losses.gan; "vanilla" is the papers' name for the cross-entropy GAN loss.
GAN_LOSS_NAMES = {"lsgan": "lsgan", "vanilla": "non-saturating", "wgan-gp": "wgan-gp"}

# The papers' generator loss is MSE(D(G(x)), 1) for LSGAN; hfgen's is half that (Mao et al.'s form): scaled back so
# the adversarial term keeps the papers' balance with the cycle and L1 terms.
ADVERSARIAL_SCALE = {"lsgan": 2.0}


def translation_config(config_class, args: argparse.Namespace, in_channels: int, out_channels: int, paired: bool):
    """The config (of `config_class`, `hfgen.CycleGANConfig`) of a new A -> B generator and its discriminator:
    `--model_config_name_or_path`, else the flags, with the U-Net's depth and the PatchGAN's layers fitted to
    `--resolution` when not given."""
    if args.model_config_name_or_path is not None:
        config = config_class.from_pretrained(args.model_config_name_or_path)
        config.conditional_discriminator = paired
        return config
    resolution = args.resolution
    unet_num_downs = args.unet_num_downs or max(2, resolution.bit_length() - 1)
    # Each PatchGAN layer halves the image; its two last 4x4 convolutions need at least 2 pixels left.
    discriminator_layers = args.discriminator_layers or min(3, max(1, (resolution // 8).bit_length() - 1))
    return config_class(
        in_channels=in_channels,
        out_channels=out_channels,
        generator_architecture=args.generator_architecture,
        num_residual_blocks=args.num_residual_blocks,
        unet_num_downs=unet_num_downs,
        generator_channels=args.generator_channels,
        discriminator_architecture=args.discriminator_architecture,
        discriminator_layers=discriminator_layers,
        discriminator_channels=args.discriminator_channels,
        conditional_discriminator=paired,
        norm=args.norm,
        use_dropout=args.use_dropout,
        upsampling=args.upsampling,
    )


def check_fits_domains(config, channels: int, resolution: int, name: str) -> None:
    """A one-line error when a (pretrained or configured) generator does not fit the data."""
    problems = []
    for side, value in (("in_channels", config.in_channels), ("out_channels", config.out_channels)):
        if value != channels:
            problems.append(f"its {side} is {value} but the images have {channels} (--color_mode)")
    if resolution % config.generator_stride:
        problems.append(f"--resolution {resolution} is not a multiple of its stride {config.generator_stride}")
    if problems:
        raise ValueError(f"{name} does not fit the data: " + "; ".join(problems))


def save_translation_grid(rows: list[torch.Tensor], folder: str, name: str, accelerator, step: int):
    """The rows of [`translation_grid_rows`] as one PNG under `folder` (and on TensorBoard); returns the PIL images."""
    from diffusers.image_processor import VaeImageProcessor

    from .runs import save_grid

    images = VaeImageProcessor(vae_scale_factor=1).postprocess(torch.cat(rows), output_type="pil")
    save_grid(images, folder, name, accelerator, step, columns=rows[0].shape[0])
    return images


def load_translation_networks(generator_class, discriminator_class, path: str, subfolders: list[str], logger) -> dict:
    """Networks of a folder a translation script wrote, by subfolder: those named `generator*` of `generator_class`,
    the others of `discriminator_class`; a missing discriminator is None (the caller starts a new one)."""
    networks = {}
    for subfolder in subfolders:
        is_generator = subfolder.startswith("generator")
        network_class = generator_class if is_generator else discriminator_class
        location = os.path.join(path, subfolder)
        if os.path.isdir(path) and not os.path.isdir(location):
            if is_generator:
                raise ValueError(
                    f"--pretrained_model_name_or_path {path} has no {subfolder}/: give a folder this script wrote "
                    f"(it holds {', '.join(name + '/' for name in subfolders)})"
                )
            logger.info(f"no {subfolder}/ in {path}: starting a new discriminator")
            networks[subfolder] = None
            continue
        networks[subfolder] = network_class.from_pretrained(path, subfolder=subfolder)
    return networks


__all__ = [
    "BUILTIN_PAIRS",
    "TRANSLATION_CARD_METRIC_NAMES",
    "PairedImages",
    "TranslationData",
    "add_translation_data_arguments",
    "add_translation_model_arguments",
    "add_translation_schedule_arguments",
    "check_fits_domains",
    "check_translation_arguments",
    "collate_pairs",
    "evaluate_translations",
    "load_translation_data",
    "make_translation_scheduler",
    "paired_folders",
    "load_translation_networks",
    "resolve_translation_steps",
    "save_translation_grid",
    "translation_config",
    "translation_grid_rows",
    "translation_references",
]
