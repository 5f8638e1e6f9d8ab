"""Vision-language data: the built-in digit canvases (boxes, masks, captions, questions) and user caption and detection
folders with their one-line errors."""

import json
from itertools import combinations

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, Sequence, Value
from PIL import Image as PILImage

from hfgen.data import (
    BUILTIN_CANVASES,
    ImageDataError,
    canvas_captions,
    canvas_questions,
    convert_coco_objects,
    load_canvas_vqa,
    load_caption_dataset,
    load_detection_dataset,
    load_digit_canvases,
    load_digits_dataset,
    object_captions,
)
from hfgen.data.captions import NUMBER_WORDS
from hfgen.data.vision_language import INK_LEVEL, MAX_BOX_IOU, patch_labels

CANVAS = 64


@pytest.fixture(scope="module")
def canvases():
    return load_digit_canvases(CANVAS, num_train=20, num_test=10, seed=0)


@pytest.fixture(scope="module")
def scans():
    """The built-in digits as 8x8 scans, the images the canvases are cut from."""
    return load_digits_dataset(8)


def canvas_arrays(split):
    return [(np.asarray(row["image"]), np.asarray(row["segmentation"]), row["objects"]) for row in split]


def iou(box, other):
    width = min(box[2], other[2]) - max(box[0], other[0])
    height = min(box[3], other[3]) - max(box[1], other[1])
    inter = max(width, 0) * max(height, 0)
    return inter / ((box[2] - box[0]) * (box[3] - box[1]) + (other[2] - other[0]) * (other[3] - other[1]) - inter)


# --- the built-in canvases ---


def test_canvases_are_fixed_by_the_seed(canvases):
    again = load_digit_canvases(CANVAS, num_train=20, num_test=10, seed=0)
    other_seed = load_digit_canvases(CANVAS, num_train=20, num_test=10, seed=1)
    fewer_train = load_digit_canvases(CANVAS, num_train=3, num_test=10, seed=0)
    for split in ("train", "test"):
        assert len(canvases[split]) == {"train": 20, "test": 10}[split]
        for (image, mask, objects), (image_again, mask_again, objects_again) in zip(
            canvas_arrays(canvases[split]), canvas_arrays(again[split]), strict=True
        ):
            assert np.array_equal(image, image_again) and np.array_equal(mask, mask_again)
            assert objects == objects_again
        assert canvases[split]["objects"] != other_seed[split]["objects"]
    assert fewer_train["test"]["objects"] == canvases["test"]["objects"]  # the test canvases do not move
    assert fewer_train["train"]["objects"] == canvases["train"]["objects"][:3]
    # stored values: a change to the draws (or to the digits' split) changes the built-in data and shows here
    first = canvases["train"][0]
    assert first["objects"] == {
        "bbox": [[16.0, 13.0, 29.0, 34.0], [2.0, 8.0, 12.0, 23.0], [41.0, 21.0, 58.0, 44.0], [24.0, 20.0, 42.0, 48.0]],
        "category": [9, 9, 9, 5],
    }
    assert first["digit_index"] == [915, 58, 1168, 871]
    assert canvases["test"][0]["objects"]["category"] == [4, 0, 5] and canvases["test"][0]["digit_index"] == [
        320,
        288,
        21,
    ]


def test_boxes_are_tight_around_the_ink_inside_the_canvas_and_barely_overlap(canvases):
    counts = set()
    for split in ("train", "test"):
        assert canvases[split].features["objects"]["category"].feature.names == list(NUMBER_WORDS)
        for image, _, objects in canvas_arrays(canvases[split]):
            assert image.shape == (CANVAS, CANVAS, 3) and image.dtype == np.uint8
            assert np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 0], image[..., 2])
            grey = image[..., 0]
            boxes = objects["bbox"]
            counts.add(len(boxes))
            assert len(boxes) == len(objects["category"])
            outside = np.ones_like(grey, dtype=bool)
            for x0, y0, x1, y1 in boxes:
                assert 0 <= x0 < x1 <= CANVAS and 0 <= y0 < y1 <= CANVAS
                assert all(float(value).is_integer() for value in (x0, y0, x1, y1))  # edges of whole pixels
                x0, y0, x1, y1 = int(x0), int(y0), int(x1), int(y1)
                assert max(x1 - x0, y1 - y0) >= 7  # a digit of 14 px or more, not a speck
                crop = grey[y0:y1, x0:x1] >= INK_LEVEL
                # ink on every edge of the box: it can be shrunk on no side
                assert crop[0].any() and crop[-1].any() and crop[:, 0].any() and crop[:, -1].any()
                outside[y0:y1, x0:x1] = False
            assert not grey[outside].any()  # every lit pixel is in a box
            assert all(iou(box, other) <= MAX_BOX_IOU + 1e-9 for box, other in combinations(boxes, 2))
    assert counts == {1, 2, 3, 4}


def test_segmentation_labels_each_digits_ink_with_its_class(canvases):
    for image, mask, objects in canvas_arrays(canvases["train"]) + canvas_arrays(canvases["test"]):
        assert np.array_equal(mask > 0, image[..., 0] >= INK_LEVEL)  # labelled exactly where there is ink
        for label in np.unique(mask[mask > 0]):
            in_a_box = np.zeros_like(mask, dtype=bool)
            for (x0, y0, x1, y1), category in zip(objects["bbox"], objects["category"], strict=True):
                if category == label - 1:
                    in_a_box[int(y0) : int(y1), int(x0) : int(x1)] = True
            assert in_a_box[mask == label].all()  # a class's ink lies in that class's boxes
        for (x0, y0, x1, y1), category in zip(objects["bbox"], objects["category"], strict=True):
            assert (mask[int(y0) : int(y1), int(x0) : int(x1)] == category + 1).sum() > 10


def test_canvases_are_cut_from_their_own_split_of_the_digits(canvases, scans):
    used = {}
    for split in ("train", "test"):
        labels = scans[split]["label"]
        used[split] = set()
        single_digit_canvases = 0
        for row in canvases[split]:
            assert row["objects"]["category"] == [labels[index] for index in row["digit_index"]]
            used[split].update(np.asarray(scans[split][index]["image"]).tobytes() for index in row["digit_index"])
            if len(row["digit_index"]) > 1:
                continue
            # a lone digit is its split's scan, resized to some side of the allowed range and cut at INK_LEVEL
            single_digit_canvases += 1
            x0, y0, x1, y1 = (int(value) for value in row["objects"]["bbox"][0])
            crop = np.asarray(row["image"])[y0:y1, x0:x1, 0]
            scan = scans[split][row["digit_index"][0]]["image"]
            matches = []
            for side in range(14, 29):
                strokes = np.asarray(scan.resize((side, side), PILImage.BICUBIC))
                strokes = np.where(strokes >= INK_LEVEL, strokes, 0)
                rows, columns = np.flatnonzero(strokes.any(axis=1)), np.flatnonzero(strokes.any(axis=0))
                inked = strokes[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]
                matches.append(inked.shape == crop.shape and np.array_equal(inked, crop))
            assert any(matches)
        assert single_digit_canvases >= 1
    assert used["train"] and used["test"] and not used["train"] & used["test"]


# --- captions and questions ---


def test_captions_name_the_digits_left_to_right(canvases):
    two = {"bbox": [[40.0, 5.0, 50.0, 20.0], [2.0, 3.0, 12.0, 20.0]], "category": [7, 3]}
    assert canvas_captions(two, list(NUMBER_WORDS)) == [
        "two digits: three and seven",
        "the digits three and seven",
        "a photo of the digits three and seven",
    ]
    three = {"bbox": [[30, 0, 40, 10], [50, 0, 60, 10], [0, 0, 10, 10]], "category": [4, 7, 1]}
    assert canvas_captions(three, list(NUMBER_WORDS))[0] == "three digits: one, four and seven"
    assert canvas_captions({"bbox": [[0, 0, 5, 5]], "category": [8]}, list(NUMBER_WORDS))[1] == "the digit eight"
    # the first training canvas (stored above): nines at x 2-12, 16-29 and 41-58, a five at 24-42
    assert (
        canvas_captions(canvases["train"][0]["objects"], list(NUMBER_WORDS))[0]
        == "four digits: nine, nine, five and nine"
    )


def test_questions_are_answered_from_the_boxes():
    names = list(NUMBER_WORDS)
    row_of_three = {"bbox": [[24, 10, 36, 30], [50, 12, 62, 32], [2, 8, 14, 28]], "category": [8, 7, 3]}
    questions = dict(canvas_questions(row_of_three, names, seed=0))
    assert questions.pop("how many digits are there?") == "three"
    assert questions.pop("which digit is on the left?") == "three"
    assert questions.pop("which digit is on the right?") == "seven"
    (present, yes), (absent, no) = questions.items()
    assert yes == "yes" and present.rstrip("?").split()[-1] in {"eight", "seven", "three"}
    assert no == "no" and absent.rstrip("?").split()[-1] not in {"eight", "seven", "three"}
    assert canvas_questions(row_of_three, names, seed=0) == canvas_questions(row_of_three, names, seed=0)
    asked = {question for seed in range(40) for question, _ in canvas_questions(row_of_three, names, seed=seed)}
    assert {"is there an eight?", "is there a one?"} <= asked and "is there an one?" not in asked

    # one above the other: neither is plainly on the left, so the question is not asked
    stacked = {"bbox": [[10, 2, 24, 20], [14, 30, 28, 50]], "category": [1, 2]}
    assert [question for question, _ in canvas_questions(stacked, names)][:1] == ["how many digits are there?"]
    assert not any("left" in question or "right" in question for question, _ in canvas_questions(stacked, names))
    alone = canvas_questions({"bbox": [[0, 0, 9, 9]], "category": [5]}, names)
    assert alone[0] == ("how many digits are there?", "one") and ("is there a five?", "yes") in alone


def test_visual_questions_keep_the_canvas_split(canvases):
    vqa = load_canvas_vqa(CANVAS, num_train=20, num_test=10, seed=0)
    fingerprints = {}
    for split_number, split in enumerate(("train", "test")):
        rows = vqa[split]
        assert rows.column_names == ["image", "question", "answer", "canvas_index", "segmentation"]
        assert sorted(set(rows["canvas_index"])) == list(range(len(canvases[split])))
        for index in (0, len(canvases[split]) - 1):
            canvas = canvases[split][index]
            picked = [k for k, canvas_index in enumerate(rows["canvas_index"]) if canvas_index == index]
            pairs = [(rows[k]["question"], rows[k]["answer"]) for k in picked]
            assert pairs == canvas_questions(canvas["objects"], list(NUMBER_WORDS), seed=[0, split_number, index])
            assert np.array_equal(np.asarray(rows[picked[0]]["image"]), np.asarray(canvas["image"]))
            assert np.array_equal(np.asarray(rows[picked[-1]]["segmentation"]), np.asarray(canvas["segmentation"]))
        fingerprints[split] = {np.asarray(image).tobytes() for image in rows["image"]}
    assert not fingerprints["train"] & fingerprints["test"]


def test_patch_labels_name_the_digit_with_the_most_ink():
    """8 px patches of a 16 px mask: a patch takes the label with the most ink pixels (1 + class), background only
    where it holds no ink at all; patches are numbered row by row, as a ViT numbers them."""
    mask = np.zeros((16, 16), dtype=np.uint8)
    mask[0:2, 0:3] = 4  # top left: 6 pixels of a three, 3 of an eight
    mask[5, 0:3] = 9
    mask[2, 12] = 8  # top right: a single pixel of a seven
    mask[12:16, 4:8] = 1  # bottom left: 16 of a zero; bottom right: nothing
    labels = patch_labels([PILImage.fromarray(mask), np.zeros_like(mask)], patch_size=8)
    assert labels.tolist() == [[4, 8, 1, 0], [0, 0, 0, 0]]


# --- user folders ---


def write_image(path, size=(40, 30), mode="RGB"):
    pixels = np.random.default_rng(0).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(pixels).convert(mode).save(path)


def write_folder(root, lines, images=(("a.png", "RGB"), ("b.jpg", "L"))):
    for name, mode in images:
        write_image(root / name, mode=mode)
    (root / "metadata.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return root


def test_detection_folder_boxes_become_pixel_corners(tmp_path):
    root = write_folder(
        tmp_path / "boxes",
        [
            {"file_name": "a.png", "objects": {"bbox": [[1.5, 2, 10, 5.25]], "category": ["dog"]}},
            {"file_name": "b.jpg", "objects": {"bbox": [[0, 0, 40, 30], [3, 4, 5, 6]], "category": ["cat", "dog"]}},
        ],
    )
    dataset = load_detection_dataset(train_data_dir=str(root))
    assert list(dataset) == ["train"] and dataset["train"].column_names == ["image", "objects"]
    assert dataset["train"].features["objects"]["category"].feature.names == ["cat", "dog"]
    rows = {row["image"].size + (len(row["objects"]["bbox"]),): row for row in dataset["train"]}
    first, second = rows[(40, 30, 1)], rows[(40, 30, 2)]
    assert first["image"].mode == "RGB" and second["image"].mode == "RGB"  # the greyscale JPEG too
    np.testing.assert_allclose(first["objects"]["bbox"], [[1.5, 2.0, 11.5, 7.25]])
    np.testing.assert_allclose(second["objects"]["bbox"], [[0, 0, 40, 30], [3, 4, 8, 10]])
    assert first["objects"]["category"] == [1] and second["objects"]["category"] == [0, 1]


def test_integer_categories_take_the_given_class_names(tmp_path):
    root = write_folder(
        tmp_path / "ids",
        [
            {"file_name": "a.png", "objects": {"bbox": [[1, 1, 2, 2]], "category": [1]}},
            {"file_name": "b.jpg", "objects": {"bbox": [], "category": []}},
        ],
    )
    dataset = load_detection_dataset(dataset_name=str(root), class_names=["person", "bicycle"])
    assert dataset["train"].features["objects"]["category"].feature.names == ["person", "bicycle"]
    assert sorted(len(objects["category"]) for objects in dataset["train"]["objects"]) == [0, 1]
    with pytest.raises(ImageDataError, match=r"a\.png'.*objects\.category.*class_names"):
        load_detection_dataset(train_data_dir=str(root))
    with pytest.raises(ImageDataError, match=r"objects\.category id 1 .* 1 classes"):
        load_detection_dataset(train_data_dir=str(root), class_names=["person"])


def test_a_classlabel_feature_names_the_classes():
    # as `cppe-5` declares its objects: a sequence of dicts whose category is a ClassLabel
    features = Features(
        {
            "image": Image(),
            "objects": Sequence(
                {
                    "id": Value("int64"),
                    "bbox": Sequence(Value("float32"), length=4),
                    "category": ClassLabel(names=["coverall", "mask"]),
                }
            ),
        }
    )
    image = PILImage.new("L", (20, 10))
    data = Dataset.from_dict(
        {"image": [image], "objects": [{"id": [7], "bbox": [[2, 1, 4, 3]], "category": [1]}]}, features=features
    )
    converted = convert_coco_objects(DatasetDict({"train": data}))
    assert converted["train"].features["objects"]["category"].feature.names == ["coverall", "mask"]
    row = converted["train"][0]
    assert row["image"].mode == "RGB" and row["objects"] == {"bbox": [[2.0, 1.0, 6.0, 4.0]], "category": [1]}


GOOD = {"file_name": "a.png", "objects": {"bbox": [[1, 1, 5, 5]], "category": ["cat"]}}


@pytest.mark.parametrize(
    "broken_line, expected",
    [
        ({"file_name": "b.jpg"}, r"'b\.jpg'.* has no 'objects'"),
        (
            {"file_name": "b.jpg", "objects": {"bbox": [[1, 2, 3]], "category": ["cat"]}},
            r"'b\.jpg'.*objects\.bbox\[0\]",
        ),
        ({"file_name": "b.jpg", "objects": {"bbox": [[1, 2, 3, "x"]], "category": ["cat"]}}, r"'b\.jpg'.*bbox\[0\]"),
        (
            {"file_name": "b.jpg", "objects": {"bbox": [[1, 2, 0, 3]], "category": ["cat"]}},
            r"'b\.jpg'.*width or height",
        ),
        ({"file_name": "b.jpg", "objects": {"bbox": [[1, 1, 2, 2]], "category": []}}, r"'b\.jpg'.*objects\.category"),
        ({"file_name": "b.jpg", "objects": {"bbox": [[1, 1, 2, 2]], "category": [0]}}, r"a\.png.*names.*b\.jpg.*ids"),
        ({"file_name": "b.jpg", "objects": {"bbox": [[30, 2, 12, 3]], "category": ["cat"]}}, r"b\.jpg.*outside"),
        ({"file_name": "c.png", "objects": {"bbox": [], "category": []}}, r"'c\.png'.*no file"),
    ],
)
def test_each_mistake_in_a_detection_folder_is_one_line_naming_file_and_field(tmp_path, broken_line, expected):
    root = write_folder(tmp_path / "broken", [GOOD, broken_line])
    with pytest.raises(ImageDataError, match=expected) as error:
        load_detection_dataset(train_data_dir=str(root))
    assert "\n" not in str(error.value)


def test_an_image_no_metadata_line_lists_is_an_error(tmp_path):
    root = write_folder(tmp_path / "unlisted", [GOOD])
    with pytest.raises(ImageDataError, match=r"b\.jpg' is in no metadata\.jsonl line"):
        load_detection_dataset(train_data_dir=str(root))


# --- captions ---


def test_caption_folder_loads_with_its_captions(tmp_path):
    root = write_folder(
        tmp_path / "captioned",
        [{"file_name": "a.png", "caption": "a red square"}, {"file_name": "b.jpg", "caption": "grey noise"}],
    )
    dataset = load_caption_dataset(train_data_dir=str(root), caption_column="caption")
    assert dataset["train"].column_names == ["image", "text"]
    assert sorted(dataset["train"]["text"]) == ["a red square", "grey noise"]
    with pytest.raises(ImageDataError, match=r"'a\.png'.*no caption field 'text' \(its fields: file_name, caption\)"):
        load_caption_dataset(train_data_dir=str(root))


def test_an_empty_caption_names_its_file(tmp_path):
    root = write_folder(
        tmp_path / "empty", [{"file_name": "a.png", "text": "fine"}, {"file_name": "b.jpg", "text": " "}]
    )
    with pytest.raises(ImageDataError, match=r"line 2 \(file_name 'b\.jpg'\): caption 'text' is ' '") as error:
        load_caption_dataset(dataset_name=str(root))
    assert "\n" not in str(error.value)
    write_image(tmp_path / "bare" / "a.png")
    with pytest.raises(ImageDataError, match="has no metadata.jsonl"):
        load_caption_dataset(train_data_dir=str(tmp_path / "bare"))
    with pytest.raises(ValueError, match="pass train_data_dir"):
        load_caption_dataset()


def test_the_builtin_canvases_load_by_name_at_their_default_sizes(canvases):
    dataset = load_detection_dataset(dataset_name=BUILTIN_CANVASES)
    assert {split: len(rows) for split, rows in dataset.items()} == {"train": 1000, "test": 200}
    assert dataset["train"][0]["objects"] == canvases["train"][0]["objects"]  # the same seed, the same canvases


def test_object_captions_name_the_objects_left_to_right_with_articles():
    objects = {"bbox": [[30, 0, 40, 10], [0, 0, 10, 10], [12, 5, 20, 9]], "category": [0, 1, 2]}
    names = ["owl", "cat", "one-legged stool"]
    assert object_captions(objects, names) == [
        "a photo of a cat, a one-legged stool and an owl",
        "a cat, a one-legged stool and an owl",
    ]
    assert object_captions({"bbox": [[0, 0, 1, 1]], "category": [0]}, names) == ["a photo of an owl", "an owl"]
    with pytest.raises(ValueError, match="objects holds no boxes"):
        object_captions({"bbox": [], "category": []}, names)
