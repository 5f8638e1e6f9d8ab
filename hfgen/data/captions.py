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
