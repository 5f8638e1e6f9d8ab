"""Captions for text-conditioned training: a caption column when the data has one, else captions written from class
labels with a few templates ("a handwritten digit seven"), else none (every caption empty: an unconditional model).
"""

import torch

# Digit class names ("0" ... "9") are spelt out, so prompts read as people write them.
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

DIGIT_TEMPLATES = (
    "a handwritten digit {}",
    "the digit {}",
    "a picture of the number {}",
    "{} written by hand",
)
"""Caption templates for digit classes; the first is the one the metrics prompt with."""

CLASS_TEMPLATES = ("a photo of {}", "an image of {}", "{}")
"""Caption templates for any other class names (a folder's class subfolders)."""


def class_phrases(class_names: list[str]) -> tuple[list[str], tuple[str, ...]]:
    """The words each class is called in captions, and the templates that go around them: digits when every class
    name is a single digit, the class names themselves (underscores as spaces) otherwise."""
    if class_names and all(name.isdigit() and len(name) == 1 for name in class_names):
        return [NUMBER_WORDS[int(name)] for name in class_names], DIGIT_TEMPLATES
    return [name.replace("_", " ") for name in class_names], CLASS_TEMPLATES


class LabelCaptions:
    """Captions of class labels: `caption(label, rng)` picks a template at random; `prompt(label)` is the first
    template, used to prompt for samples of a class."""

    def __init__(self, class_names: list[str]):
        self.phrases, self.templates = class_phrases(class_names)

    def prompt(self, label: int) -> str:
        return self.templates[0].format(self.phrases[label])

    def captions(self, labels: torch.Tensor, generator: torch.Generator | None = None) -> list[str]:
        """One caption per label, each with a template drawn from `generator` (torch's global RNG when None, so a
        training loop's draws are saved with its checkpoints)."""
        picks = torch.randint(0, len(self.templates), (len(labels),), generator=generator).tolist()
        return [
            self.templates[pick].format(self.phrases[int(label)]) for pick, label in zip(picks, labels, strict=True)
        ]

    def vocabulary(self) -> set[str]:
        """Every word the captions use."""
        return {
            word for template in self.templates for phrase in self.phrases for word in template.format(phrase).split()
        }


def drop_captions(captions: list[str], probability: float, generator: torch.Generator | None = None) -> list[str]:
    """Replace each caption by the empty one with `probability` (classifier-free guidance training, Ho & Salimans
    2022: the same network learns the unconditional prediction)."""
    if probability <= 0:
        return list(captions)
    keep = torch.rand(len(captions), generator=generator) >= probability
    return [caption if kept else "" for caption, kept in zip(captions, keep.tolist(), strict=True)]


class ColumnCaptions:
    """Captions from a dataset column, looked up by image index."""

    def __init__(self, texts: list[str]):
        self.texts = texts

    def vocabulary(self) -> set[str]:
        return {word for text in self.texts for word in text.split()}


def dataset_captions(dataset, caption_column: str | None):
    """The captions of `dataset` (a `datasets.Dataset`): the texts of `caption_column` (`ColumnCaptions`), else
    `LabelCaptions` of its class names, else None (no labels: every caption empty, an unconditional model). A
    column the data lacks is a one-line error naming `--caption_column`."""
    if caption_column is not None:
        if caption_column not in dataset.column_names:
            raise ValueError(
                f"--caption_column {caption_column!r} is not a column of the data (its columns: "
                f"{', '.join(dataset.column_names)})"
            )
        return ColumnCaptions([str(text) for text in dataset[caption_column]])
    label_feature = dataset.features.get("label")
    if label_feature is not None and hasattr(label_feature, "names"):
        return LabelCaptions(label_feature.names)
    return None


def batch_captions(batch: dict, captions) -> list[str]:
    """The captions of a training batch (from [`collate_indexed`]): drawn from templates for labels, looked up for a
    caption column, empty for unconditional data."""
    if isinstance(captions, LabelCaptions):
        return captions.captions(batch["labels"].cpu())
    if isinstance(captions, ColumnCaptions):
        return [captions.texts[index] for index in batch["indices"].tolist()]
    return [""] * batch["pixel_values"].shape[0]


def grid_prompts(captions, count: int) -> list[str]:
    """Prompts of a validation grid: the classes in turn (one column each), or the texts of the caption column, or
    the empty prompt."""
    if isinstance(captions, LabelCaptions):
        return [captions.prompt(i % len(captions.phrases)) for i in range(count)]
    if isinstance(captions, ColumnCaptions):
        return [captions.texts[i % len(captions.texts)] for i in range(count)]
    return [""] * count


class IndexedImages(torch.utils.data.Dataset):
    """Images (any map-style dataset of dicts) with their index, so a batch can look its captions and control maps
    up."""

    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return {**self.images[index], "index": index}


def collate_indexed(examples) -> dict:
    """`collate_images` of the examples, plus their `indices`."""
    from .images import collate_images

    batch = collate_images(examples)
    batch["indices"] = torch.tensor([example["index"] for example in examples])
    return batch
