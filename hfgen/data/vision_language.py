"""Data for vision-language models (detection, segmentation, contrastive captions, visual questions).

Built in, with nothing to download: `hfgen/digit-canvases`, real digit scans of the built-in digits pasted at random
positions and sizes on a black RGB canvas, with a box, a class and a per-pixel mask for every digit, so that
open-vocabulary detection ("a photo of the digit seven"), segmentation (mIoU), contrastive captions ("the digits
three and seven") and visual questions ("which digit is on the left?") are all scored against exact answers. Train
canvases are cut from the digits' `train` split only, test canvases from their `test` split only.

User data, from a local folder in `imagefolder` layout with a `metadata.jsonl`, or a `datasets` name:

- captions: `{"file_name": "a.png", "text": "a red bicycle"}` per image ([`load_caption_dataset`]);
- detection: `{"file_name": "a.png", "objects": {"bbox": [[x, y, width, height], ...], "category": [...]}}` per
  image, COCO's boxes as in the Hugging Face object-detection guide (e.g. `cppe-5`) ([`load_detection_dataset`]).

Detection data comes out as the canvases do: RGB images and `objects = {"bbox": [[x0, y0, x1, y1], ...],
"category": [id, ...]}`, boxes as pixel edges (a box around pixel columns 3 to 5 has x0 = 3, x1 = 6) and the class
names on the dataset, where the Hugging Face object-detection guide reads them:
`dataset["train"].features["objects"]["category"].feature.names`. Every mistake in the data is a one-line error
naming the file and field at fault.
"""

import json
import math
import os
from collections.abc import Sequence as SequenceOf
from io import BytesIO

import numpy as np
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, Sequence, Value, load_dataset
from PIL import Image as PILImage

from .captions import NUMBER_WORDS
from .images import (
    ImageDataError,
    _image_files,
    check_resolution,
    convert_image,
    load_digits_dataset,
    verify_image_files,
)

BUILTIN_CANVASES = "hfgen/digit-canvases"
"""Name of the built-in detection canvases, accepted by [`load_detection_dataset`] as a `dataset_name`."""

CANVAS_TRAIN_SIZE = 1000
CANVAS_TEST_SIZE = 200
"""Default numbers of train and test canvases: both splits are built in about a second on one CPU core."""

MIN_CANVAS_SIZE = 32
MAX_DIGITS_PER_CANVAS = 4

DIGIT_SIDE_SHARES = (14 / 64, 28 / 64)
"""Smallest and largest side of a pasted digit scan, as shares of the canvas side (14-28 pixels on a 64 canvas)."""

INK_LEVEL = 64
"""Grey level (0-255) from which a pixel of a resized digit is ink. Bicubic upsampling leaves a faint fringe below it
around the strokes; that fringe is cut to black when a digit is pasted, so every lit pixel of a canvas is ink of a
boxed, labelled digit."""

MAX_BOX_IOU = 0.1
"""Largest intersection over union of any two boxes of a canvas: digits may touch, not hide each other."""

MAX_PLACEMENT_TRIES = 50
"""Random positions tried for a digit before the canvas is drawn again from scratch."""


def _count_word(count: int) -> str:
    return NUMBER_WORDS[count] if count < len(NUMBER_WORDS) else str(count)


def _box_iou(box: SequenceOf[float], other: SequenceOf[float]) -> float:
    """Intersection over union of two `[x0, y0, x1, y1]` boxes."""
    width = min(box[2], other[2]) - max(box[0], other[0])
    height = min(box[3], other[3]) - max(box[1], other[1])
    intersection = max(width, 0) * max(height, 0)
    area = (box[2] - box[0]) * (box[3] - box[1]) + (other[2] - other[0]) * (other[3] - other[1])
    return intersection / (area - intersection)


def _ink_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """The tight `(x0, y0, x1, y1)` pixel-edge box around the true pixels of `mask`."""
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(columns[0]), int(rows[0]), int(columns[-1]) + 1, int(rows[-1]) + 1


def _free_position(
    rng: np.random.Generator, ink_box: tuple[int, int, int, int], side: int, canvas_size: int, boxes: list
) -> tuple[int, int] | None:
    """A random top-left corner for a `side`-pixel digit whose ink box (`ink_box` within the digit's square) keeps
    within `MAX_BOX_IOU` of each of `boxes`, or None when `MAX_PLACEMENT_TRIES` positions all failed."""
    for _ in range(MAX_PLACEMENT_TRIES):
        x, y = (int(offset) for offset in rng.integers(0, canvas_size - side + 1, size=2))
        box = (x + ink_box[0], y + ink_box[1], x + ink_box[2], y + ink_box[3])
        if all(_box_iou(box, other) <= MAX_BOX_IOU for other in boxes):
            return x, y
    return None


def _draw_canvas(rng: np.random.Generator, scans: list, canvas_size: int) -> list[tuple[int, np.ndarray, int, int]]:
    """Draw the digits of one canvas: `(scan index, resized strokes, x, y)` for each. A digit that finds no free place
    restarts the canvas with the same count (rather than leaving it a digit short), so counts stay uniform over 1 to
    `MAX_DIGITS_PER_CANVAS`."""
    smallest, largest = (round(share * canvas_size) for share in DIGIT_SIDE_SHARES)
    count = int(rng.integers(1, MAX_DIGITS_PER_CANVAS + 1))
    while True:
        placed, boxes = [], []
        while len(placed) < count:
            index = int(rng.integers(len(scans)))
            side = int(rng.integers(smallest, largest + 1))
            strokes = np.asarray(scans[index].resize((side, side), PILImage.BICUBIC))
            strokes = np.where(strokes >= INK_LEVEL, strokes, 0).astype(np.uint8)
            x0, y0, x1, y1 = _ink_box(strokes > 0)
            position = _free_position(rng, (x0, y0, x1, y1), side, canvas_size, boxes)
            if position is None:
                break
            x, y = position
            placed.append((index, strokes, x, y))
            boxes.append((x + x0, y + y0, x + x1, y + y1))
        if len(placed) == count:
            return placed


def _paint_canvas(placed: list, labels: list[int], canvas_size: int) -> tuple[np.ndarray, np.ndarray, list]:
    """Paste the drawn digits: the grey canvas, its segmentation (1 + class id on ink, 0 elsewhere) and the boxes.
    Where two digits' ink meets, the brighter stroke shows (and labels the pixel), as ink on ink looks."""
    canvas = np.zeros((canvas_size, canvas_size), dtype=np.uint8)
    segmentation = np.zeros_like(canvas)
    boxes = []
    for index, strokes, x, y in placed:
        side = strokes.shape[0]
        window = canvas[y : y + side, x : x + side]
        shows = (strokes > 0) & (strokes >= window)
        segmentation[y : y + side, x : x + side][shows] = 1 + labels[index]
        np.maximum(window, strokes, out=window)
        x0, y0, x1, y1 = _ink_box(strokes > 0)
        boxes.append([float(x + x0), float(y + y0), float(x + x1), float(y + y1)])
    return canvas, segmentation, boxes


def _canvas_features() -> Features:
    return Features(
        {
            "image": Image(),
            "objects": {
                "bbox": Sequence(Sequence(Value("float32"), length=4)),
                "category": Sequence(ClassLabel(names=list(NUMBER_WORDS))),
            },
            "segmentation": Image(),
            "digit_index": Sequence(Value("int64")),
        }
    )


def load_digit_canvases(
    canvas_size: int = 64, num_train: int = CANVAS_TRAIN_SIZE, num_test: int = CANVAS_TEST_SIZE, seed: int = 0
) -> DatasetDict:
    r"""
    The built-in detection canvases (`hfgen/digit-canvases`): 1 to 4 real digit scans of the built-in digits per
    black `canvas_size` x `canvas_size` RGB canvas, each resized (bicubic, from the 8x8 scan) to a random side of
    14/64 to 28/64 of the canvas and pasted at a random position, no two boxes overlapping by more than
    `MAX_BOX_IOU`. White strokes on black, as the scans are; RGB so that vision-language processors take them.

    Args:
        canvas_size (`int`, *optional*, defaults to 64):
            Side of the canvases in pixels, at least 32.
        num_train (`int`, *optional*, defaults to 1000), num_test (`int`, *optional*, defaults to 200):
            Canvases in the `train` split (cut from the digits' `train` split only) and in `test` (from their `test`
            split only). Building the default 1,000 + 200 takes about a second on one CPU core.
        seed (`int`, *optional*, defaults to 0):
            Fixes the draws: the same seed gives byte-identical canvases. Each split draws from its own generator, so
            the test canvases do not change with `num_train`.

    Returns:
        `datasets.DatasetDict` with `train` and `test` splits, whose columns are `image` (RGB), `objects`
        (`{"bbox": [[x0, y0, x1, y1], ...], "category": [id, ...]}`: pixel-edge boxes tight around each digit's ink,
        class ids of a `ClassLabel` named `"zero"` ... `"nine"`), `segmentation` (an `L` image: 0 on background,
        1 + class id on a digit's ink) and `digit_index` (for each object, the row of the digits' split, as
        [`load_digits_dataset`] serves it, the digit was cut from).
    """
    canvas_size = check_resolution(canvas_size)
    if canvas_size < MIN_CANVAS_SIZE:
        raise ValueError(f"canvas_size {canvas_size} is too small: it must be at least {MIN_CANVAS_SIZE} pixels")
    for name, count in (("num_train", num_train), ("num_test", num_test)):
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
            raise ValueError(f"{name} must be a positive integer number of canvases, got {count!r}")
    digits = load_digits_dataset(8)  # the scans themselves: resizing 8x8 to 8x8 leaves them as they are
    splits = {}
    for split_number, (split, count) in enumerate((("train", num_train), ("test", num_test))):
        rng = np.random.default_rng([seed, split_number])
        scans, labels = list(digits[split]["image"]), list(digits[split]["label"])
        columns = {"image": [], "objects": [], "segmentation": [], "digit_index": []}
        for _ in range(count):
            placed = _draw_canvas(rng, scans, canvas_size)
            canvas, segmentation, boxes = _paint_canvas(placed, labels, canvas_size)
            columns["image"].append(PILImage.fromarray(np.stack([canvas] * 3, axis=-1), mode="RGB"))
            columns["objects"].append({"bbox": boxes, "category": [labels[index] for index, *_ in placed]})
            columns["segmentation"].append(PILImage.fromarray(segmentation, mode="L"))
            columns["digit_index"].append([index for index, *_ in placed])
        splits[split] = Dataset.from_dict(columns, features=_canvas_features())
    return DatasetDict(splits)


def _left_to_right(objects: dict) -> list[int]:
    return sorted(range(len(objects["bbox"])), key=lambda k: objects["bbox"][k][0] + objects["bbox"][k][2])


def _listing(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def canvas_captions(objects: dict, class_names: list[str]) -> list[str]:
    """The captions a canvas can be described with, its digits named left to right (by box centre), e.g. for two
    digits `["two digits: three and seven", "the digits three and seven", "a photo of the digits three and seven"]`.

    `objects` is a canvas's `{"bbox": [[x0, y0, x1, y1], ...], "category": [id, ...]}`, `class_names` the names of
    the ids. Contrastive training draws one of them per step.
    """
    if not objects["bbox"]:
        raise ValueError("objects holds no boxes: a canvas caption names at least one digit")
    names = _listing([class_names[objects["category"][k]] for k in _left_to_right(objects)])
    count = len(objects["bbox"])
    noun = "digit" if count == 1 else "digits"
    return [f"{_count_word(count)} {noun}: {names}", f"the {noun} {names}", f"a photo of the {noun} {names}"]


def _with_article(name: str) -> str:
    # "an eight", "an apple", but "a one": the vowel letter of "one" is said as a consonant
    return f"an {name}" if name[0] in "aeiou" and not name.startswith("one") else f"a {name}"


def object_captions(objects: dict, class_names: list[str]) -> list[str]:
    """Captions of any image with boxes, its objects named left to right with articles, e.g. `["a photo of a cat
    and a dog", "a cat and a dog"]`: what image-text training reads for detection data that has no captions."""
    if not objects["bbox"]:
        raise ValueError("objects holds no boxes: a caption names at least one object")
    names = _listing([_with_article(class_names[objects["category"][k]]) for k in _left_to_right(objects)])
    return [f"a photo of {names}", names]


def canvas_questions(objects: dict, class_names: list[str], seed: int | SequenceOf[int] = 0) -> list[tuple[str, str]]:
    r"""
    Questions about a canvas with their one-word answers, all read off its boxes:

    - `"how many digits are there?"` -> the count in words (`"two"`);
    - `"which digit is on the left?"` -> the class of the leftmost digit by box centre, asked when there are two or
      more digits and that centre lies left of every other digit's box (so the answer is plain to see);
      `"which digit is on the right?"` likewise;
    - `"is there a seven?"` -> `"yes"` for a class on the canvas, and `"is there a two?"` -> `"no"` for one that is
      not (when some class is missing), both classes drawn with `seed`.

    Args:
        objects (`dict`):
            `{"bbox": [[x0, y0, x1, y1], ...], "category": [id, ...]}` with at least one box.
        class_names (`list[str]`):
            Names of the class ids.
        seed (`int` or sequence of `int`, *optional*, defaults to 0):
            Seeds the choice of the classes asked about (anything `numpy.random.default_rng` takes).
    """
    boxes, categories = objects["bbox"], objects["category"]
    if not boxes:
        raise ValueError("objects holds no boxes: the questions are about at least one digit")
    questions = [("how many digits are there?", _count_word(len(boxes)))]
    order = _left_to_right(objects)
    if len(boxes) >= 2:
        leftmost, rightmost = order[0], order[-1]
        left_centre = (boxes[leftmost][0] + boxes[leftmost][2]) / 2
        right_centre = (boxes[rightmost][0] + boxes[rightmost][2]) / 2
        if all(left_centre < boxes[k][0] for k in order[1:]):
            questions.append(("which digit is on the left?", class_names[categories[leftmost]]))
        if all(right_centre > boxes[k][2] for k in order[:-1]):
            questions.append(("which digit is on the right?", class_names[categories[rightmost]]))
    rng = np.random.default_rng(seed)
    present = sorted(set(categories))
    absent = [k for k in range(len(class_names)) if k not in present]
    questions.append((f"is there {_with_article(class_names[rng.choice(present)])}?", "yes"))
    if absent:
        questions.append((f"is there {_with_article(class_names[rng.choice(absent)])}?", "no"))
    return questions


def load_canvas_vqa(
    canvas_size: int = 64, num_train: int = CANVAS_TRAIN_SIZE, num_test: int = CANVAS_TEST_SIZE, seed: int = 0
) -> DatasetDict:
    """Visual questions about the built-in canvases ([`load_digit_canvases`], same arguments): one row per question
    of [`canvas_questions`], with columns `image` (the canvas), `question`, `answer`, `canvas_index` (its row in the
    canvases' split) and `segmentation` (the canvas's pixel mask: 0 on background, 1 + class id on a digit's ink, for
    training aids that teach which digit is where). The `train` and `test` rows come from the `train` and `test`
    canvases, so no test canvas (nor test digit) is seen in training."""
    canvases = load_digit_canvases(canvas_size, num_train, num_test, seed)
    features = Features(
        {
            "image": Image(),
            "question": Value("string"),
            "answer": Value("string"),
            "canvas_index": Value("int64"),
            "segmentation": Image(),
        }
    )
    splits = {}
    for split_number, (split, rows) in enumerate(canvases.items()):
        class_names = rows.features["objects"]["category"].feature.names
        # the encoded canvases and masks, repeated as they are rather than decoded and encoded once per question
        encoded = rows.cast_column("image", Image(decode=False))["image"]
        masks = rows.cast_column("segmentation", Image(decode=False))["segmentation"]
        columns = {"image": [], "question": [], "answer": [], "canvas_index": [], "segmentation": []}
        for index, objects in enumerate(rows["objects"]):
            for question, answer in canvas_questions(objects, class_names, seed=[seed, split_number, index]):
                columns["image"].append(encoded[index])
                columns["question"].append(question)
                columns["answer"].append(answer)
                columns["canvas_index"].append(index)
                columns["segmentation"].append(masks[index])
        splits[split] = Dataset.from_dict(columns, features=features)
    return DatasetDict(splits)


def patch_labels(masks: SequenceOf, patch_size: int, num_classes: int = len(NUMBER_WORDS)) -> torch.Tensor:
    """`(images, patches)` labels of canvases' pixel masks (PIL images or arrays of one size, 0 on background and
    1 + class on a digit's ink, as [`load_digit_canvases`] draws them) cut into `patch_size` squares: in each patch,
    the label with the most ink pixels (the smaller class on a tie), or 0 where it holds no ink. Patches are numbered
    row by row, as a ViT numbers them; what the training-only patch losses of the vision-language scripts learn to
    predict."""
    masks = torch.from_numpy(np.stack([np.asarray(mask, dtype=np.uint8) for mask in masks]))
    images, height, width = masks.shape
    rows, columns = height // patch_size, width // patch_size
    patches = masks[:, : rows * patch_size, : columns * patch_size].reshape(images, rows, patch_size, columns, -1)
    ink = torch.stack([(patches == 1 + k).sum(dim=(2, 4)) for k in range(num_classes)], dim=-1).flatten(1, 2)
    return torch.where(ink.sum(dim=-1) > 0, ink.argmax(dim=-1) + 1, 0)


# --- user data: local folders and `datasets` names ---


def _metadata_rows(folder: str) -> list[tuple[str, dict]]:
    """`(where, row)` for each line of every `metadata.jsonl` in `folder` (or below it), `where` naming the file,
    line and `file_name` for error messages. Checks what the `imagefolder` loader would otherwise pass over or fail on
    with a message that names no file: a missing `metadata.jsonl`, lines that are not JSON objects with a
    `file_name`, listed files that do not exist, and images that no line lists (which it would silently drop)."""
    rows, listed = [], set()
    for root, _, names in sorted(os.walk(folder)):
        if "metadata.jsonl" not in names:
            continue
        path = os.path.join(root, "metadata.jsonl")
        with open(path, encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    raise ImageDataError(f"{path} line {number} is not valid JSON ({error})") from error
                if not isinstance(row, dict) or not isinstance(row.get("file_name"), str):
                    raise ImageDataError(f"{path} line {number} has no 'file_name' naming its image")
                where = f"{path} line {number} (file_name {row['file_name']!r})"
                image_path = os.path.normpath(os.path.join(root, row["file_name"]))
                if not os.path.isfile(image_path):
                    raise ImageDataError(f"{where}: there is no file {image_path!r}")
                listed.add(image_path)
                rows.append((where, row))
    if not rows:
        raise ImageDataError(f"image folder {folder!r} has no metadata.jsonl: write one line per image into it")
    for image_path in _image_files(folder):
        if os.path.normpath(image_path) not in listed:
            raise ImageDataError(f"image {image_path!r} is in no metadata.jsonl line: add a line for it or remove it")
    return rows


def _load_source(train_data_dir: str | None, dataset_name: str | None, check_metadata) -> tuple[DatasetDict, str]:
    """The raw `DatasetDict` of a folder or a `datasets` name, and what to call it in messages. A folder's images are
    each decoded once and its metadata lines passed to `check_metadata(rows)` (see [`_metadata_rows`]) before the
    `imagefolder` loader reads them."""
    if train_data_dir is None and dataset_name is None:
        raise ValueError("pass train_data_dir (a folder with a metadata.jsonl) or dataset_name (a `datasets` name)")
    source = train_data_dir if train_data_dir is not None else dataset_name
    if train_data_dir is not None or os.path.isdir(source):
        verify_image_files(source)
        check_metadata(_metadata_rows(source))
        dataset = load_dataset("imagefolder", data_dir=source)
    else:
        dataset = load_dataset(dataset_name)
    if "train" not in dataset:
        raise ImageDataError(f"dataset {source!r} has no 'train' split (splits: {list(dataset)})")
    return dataset, source


def _image_names(split: Dataset, split_name: str, image_column: str = "image") -> list[str]:
    """What to call each row's image in messages: its file, else its row and split."""
    values = split.cast_column(image_column, Image(decode=False))[image_column]
    return [
        f"image {value['path']!r}" if value["path"] else f"row {row} of split {split_name!r}"
        for row, value in enumerate(values)
    ]


def _check_caption(text, where: str, caption_column: str) -> None:
    if not isinstance(text, str) or not text.strip():
        raise ImageDataError(f"{where}: caption {caption_column!r} is {text!r}: give every image a non-empty caption")


def load_caption_dataset(
    train_data_dir: str | None = None,
    dataset_name: str | None = None,
    caption_column: str = "text",
    image_column: str = "image",
) -> DatasetDict:
    r"""
    Images with captions, for text-to-image and contrastive training.

    Args:
        train_data_dir (`str`, *optional*):
            A folder of images with a `metadata.jsonl` holding `{"file_name": "a.png", "text": "..."}` per image (in
            `imagefolder` layout: `train/` and `test/` subfolders with one each make splits). Takes precedence over
            `dataset_name`.
        dataset_name (`str`, *optional*):
            A local folder as above, or a name `datasets` can load.
        caption_column (`str`, *optional*, defaults to `"text"`), image_column (`str`, *optional*, defaults to
        `"image"`):
            The field holding each caption, and (for a `datasets` name) the image column.

    Returns:
        `datasets.DatasetDict` with a `train` split (and the source's other splits), with columns `image` and `text`
        only. Every caption is checked, and every image of a folder decoded once, so an empty caption or a broken
        file fails here with its name.
    """

    def check_metadata(rows: list[tuple[str, dict]]) -> None:
        for where, row in rows:
            if caption_column not in row:
                raise ImageDataError(
                    f"{where} has no caption field {caption_column!r} (its fields: {', '.join(row)}): pass "
                    "caption_column naming the field"
                )
            _check_caption(row[caption_column], where, caption_column)

    dataset, source = _load_source(train_data_dir, dataset_name, check_metadata)
    splits = {}
    for split_name, split in dataset.items():
        for column in (image_column, caption_column):
            if column not in split.column_names:
                raise ImageDataError(
                    f"dataset {source!r} has no column {column!r} (columns: {', '.join(split.column_names)}): pass "
                    "caption_column / image_column naming it"
                )
        for text, where in zip(split[caption_column], _image_names(split, split_name, image_column), strict=True):
            _check_caption(text, where, caption_column)
        split = split.select_columns([image_column, caption_column])
        renames = {old: new for old, new in ((image_column, "image"), (caption_column, "text")) if old != new}
        splits[split_name] = split.rename_columns(renames) if renames else split
    return DatasetDict(splits)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _category_kind(category) -> type | None:
    if isinstance(category, str):
        return str
    return int if isinstance(category, int) and not isinstance(category, bool) else None


def _check_coco_objects(objects, where: str) -> type | None:
    """Check one image's `objects` (COCO boxes `[x, y, width, height]` and as many categories) and return the type of
    its categories: `str` (names), `int` (ids), or None when the image has no objects."""
    if objects is None:
        raise ImageDataError(
            f"{where} has no 'objects': give it {{'bbox': [[x, y, width, height], ...], 'category': [...]}}"
        )
    if not isinstance(objects, dict):
        raise ImageDataError(
            f"{where}: objects is a {type(objects).__name__}, not {{'bbox': [[x, y, width, height], ...], "
            "'category': [...]}} (one list per field, as COCO-style datasets hold them)"
        )
    boxes, categories = objects.get("bbox"), objects.get("category")
    for field, values in (("bbox", boxes), ("category", categories)):
        if not isinstance(values, list):
            raise ImageDataError(f"{where}: objects.{field} is {values!r}, not a list (one entry per object)")
    for k, box in enumerate(boxes):
        if not (isinstance(box, list) and len(box) == 4 and all(_is_number(value) for value in box)):
            raise ImageDataError(f"{where}: objects.bbox[{k}] is {box!r}, not 4 numbers [x, y, width, height]")
        if not (box[2] > 0 and box[3] > 0):
            raise ImageDataError(f"{where}: objects.bbox[{k}] {box!r} has a width or height <= 0")
    if len(categories) != len(boxes):
        raise ImageDataError(
            f"{where}: objects.category has {len(categories)} entries for {len(boxes)} objects.bbox boxes"
        )
    kinds = {_category_kind(category) for category in categories}
    if None in kinds or len(kinds) > 1:
        raise ImageDataError(
            f"{where}: objects.category {categories!r} must be all class names (strings) or all integer ids"
        )
    return kinds.pop() if kinds else None


def _check_one_kind(first_of_kind: dict[type, str]) -> None:
    """`first_of_kind` maps each category type met (`str`, `int`) to the first image that has it."""
    if len(first_of_kind) > 1:
        raise ImageDataError(
            f"{first_of_kind[str]} names its categories but {first_of_kind[int]} gives integer ids: use one kind "
            "throughout"
        )


def _check_class_names(class_names) -> list[str]:
    if (
        not isinstance(class_names, (list, tuple))
        or not class_names
        or not all(isinstance(name, str) and name for name in class_names)
    ):
        raise ValueError(f"class_names must be a non-empty list of class name strings, got {class_names!r}")
    if len(set(class_names)) != len(class_names):
        raise ValueError(f"class_names {list(class_names)!r} names a class twice")
    return list(class_names)


def _category_label_names(objects_feature) -> list[str] | None:
    """The names of a `ClassLabel` category feature, if the `objects` feature has one. `objects` is a dict of
    sequences, or a `Sequence` of a dict (as `cppe-5` declares it) that datasets before 4.0 keep as such."""
    fields = objects_feature.feature if isinstance(objects_feature, Sequence) else objects_feature
    category = fields.get("category") if isinstance(fields, dict) else None
    category = getattr(category, "feature", category)
    return list(category.names) if isinstance(category, ClassLabel) else None


def _open_image(value: dict, where: str) -> PILImage.Image:
    """Decode an `Image(decode=False)` value fully, or raise `ImageDataError` naming it."""
    try:
        image = PILImage.open(BytesIO(value["bytes"]) if value["bytes"] is not None else value["path"])
        image.load()
    except Exception as error:  # PIL raises several unrelated types for broken files
        reason = " ".join(str(error).split()) or type(error).__name__
        raise ImageDataError(f"cannot read {where} ({reason}): remove or replace it") from error
    return image


def convert_coco_objects(dataset: DatasetDict, class_names: list[str] | None = None) -> DatasetDict:
    r"""
    Convert loaded detection data with COCO boxes into hfgen's representation (that of the built-in canvases).

    Args:
        dataset (`datasets.DatasetDict`):
            Splits with an `image` column and an `objects` column of `{"bbox": [[x, y, width, height], ...],
            "category": [...]}` in pixels, categories being class names (strings) or integer ids.
        class_names (`list[str]`, *optional*):
            Names of the classes, in id order: needed for integer ids without a `ClassLabel` feature, and used in
            place of a `ClassLabel`'s names when given. String categories must then be among them; without it, the
            class names are the distinct string categories of all splits, sorted.

    Returns:
        `datasets.DatasetDict` with the same splits and columns `image` (RGB) and `objects` (`{"bbox": [[x0, y0,
        x1, y1], ...], "category": [id, ...]}`, boxes as pixel edges, ids of a `ClassLabel` of the class names).
        Boxes are checked: 4 numbers, width and height > 0, inside the image up to 1 pixel (rounded annotations),
        as many categories as boxes; each failure is an error naming the image and the field.
    """
    for split_name, split in dataset.items():
        if "objects" not in split.column_names or "image" not in split.column_names:
            raise ImageDataError(
                f"split {split_name!r} needs an 'image' and an 'objects' column (columns: "
                f"{', '.join(split.column_names)})"
            )
    if class_names is not None:
        class_names = _check_class_names(class_names)
    else:
        class_names = _category_label_names(next(iter(dataset.values())).features["objects"])
    kinds, string_names, names_per_split = {}, set(), {}
    for split_name, split in dataset.items():
        names_per_split[split_name] = _image_names(split, split_name)
        for where, objects in zip(names_per_split[split_name], split["objects"], strict=True):
            kind = _check_coco_objects(objects, where)
            if kind is str:
                string_names.update(objects["category"])
            if kind is int and class_names is None:
                raise ImageDataError(
                    f"{where}: objects.category holds integer ids but the data has no class names: pass class_names"
                )
            if kind is not None:
                kinds.setdefault(kind, where)
    _check_one_kind(kinds)
    if str in kinds:
        class_names = class_names or sorted(string_names)
        unknown = sorted(string_names - set(class_names))
        if unknown:
            raise ImageDataError(f"categories {unknown!r} are not among class_names {class_names!r}")
    class_ids = {name: index for index, name in enumerate(class_names or [])}
    features = Features(
        {
            "image": Image(),
            "objects": {
                "bbox": Sequence(Sequence(Value("float32"), length=4)),
                "category": Sequence(ClassLabel(names=class_names or [])),
            },
        }
    )

    def convert(example: dict, index: int, names: list[str]) -> dict:
        where = names[index]
        image = _open_image(example["image"], where)
        width, height = image.size
        boxes = []
        for k, (x, y, box_width, box_height) in enumerate(example["objects"]["bbox"]):
            if x < -1 or y < -1 or x + box_width > width + 1 or y + box_height > height + 1:
                raise ImageDataError(
                    f"{where}: objects.bbox[{k}] {[x, y, box_width, box_height]!r} reaches outside the "
                    f"{width}x{height} image by more than 1 pixel (bbox is COCO's [x, y, width, height] in pixels)"
                )
            boxes.append([x, y, x + box_width, y + box_height])
        categories = [
            class_ids[category] if isinstance(category, str) else category
            for category in example["objects"]["category"]
        ]
        for category in categories:
            if not 0 <= category < len(class_ids):
                raise ImageDataError(
                    f"{where}: objects.category id {category} is not the id of one of the {len(class_ids)} classes"
                )
        return {"image": convert_image(image, "RGB"), "objects": {"bbox": boxes, "category": categories}}

    splits = {}
    for split_name, split in dataset.items():
        splits[split_name] = split.cast_column("image", Image(decode=False)).map(
            convert,
            with_indices=True,
            fn_kwargs={"names": names_per_split[split_name]},
            remove_columns=split.column_names,
            features=features,
        )
    return DatasetDict(splits)


def load_detection_dataset(
    train_data_dir: str | None = None, dataset_name: str | None = None, class_names: list[str] | None = None
) -> DatasetDict:
    r"""
    Detection data in hfgen's representation (see [`convert_coco_objects`]): columns `image` (RGB) and `objects`
    (`{"bbox": [[x0, y0, x1, y1], ...], "category": [id, ...]}`, pixel edges), the class names on the `ClassLabel`
    of `objects.category`.

    Args:
        train_data_dir (`str`, *optional*):
            A folder of images with a `metadata.jsonl` holding `{"file_name": "a.png", "objects": {"bbox": [[x, y,
            width, height], ...], "category": ["cat", ...] or [0, ...]}}` per image: COCO's boxes in pixels, as in the
            Hugging Face object-detection guide. Takes precedence over `dataset_name`.
        dataset_name (`str`, *optional*):
            `"hfgen/digit-canvases"` (the built-in canvases, at their defaults), a local folder as above, or a name
            `datasets` can load with an `objects` column in that format (e.g. `cppe-5`).
        class_names (`list[str]`, *optional*):
            Names of the classes in id order; required for integer categories unless the data has a `ClassLabel`.
    """
    if train_data_dir is None and dataset_name == BUILTIN_CANVASES:
        return load_digit_canvases()

    # The lines are checked before `imagefolder` reads them as well as after (in `convert_coco_objects`): its JSON
    # reader fails on a string among a bbox's numbers, or on names and ids mixed, with a message that names no file.
    def check_metadata(rows: list[tuple[str, dict]]) -> None:
        first_of_kind = {}
        for where, row in rows:
            kind = _check_coco_objects(row.get("objects"), where)
            if kind is not None:
                first_of_kind.setdefault(kind, where)
        _check_one_kind(first_of_kind)

    dataset, _ = _load_source(train_data_dir, dataset_name, check_metadata)
    return convert_coco_objects(dataset, class_names)


__all__ = [
    "BUILTIN_CANVASES",
    "canvas_captions",
    "canvas_questions",
    "convert_coco_objects",
    "load_canvas_vqa",
    "load_caption_dataset",
    "load_detection_dataset",
    "load_digit_canvases",
]
