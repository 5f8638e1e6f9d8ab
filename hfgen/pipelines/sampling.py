"""Drawing images from a saved pipeline folder, shared by the `hfgen` command and the Gradio demos: loading the folder
with the class its `model_index.json` names, sampling with one generator per image, and laying images out as a grid.
"""

import inspect
import json
import math
import os

import torch


def load_pipeline(path: str):
    """The hfgen (or diffusers) pipeline a folder's `model_index.json` names, loaded with its own class."""
    pipeline = pipeline_class_of(path).from_pretrained(path)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def pipeline_class_of(path: str) -> type:
    """The hfgen (or diffusers) pipeline class a folder's (or Hub repo's) `model_index.json` names."""
    import diffusers

    from .pipeline_folder import hfgen_pipeline_classes

    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, "model_index.json")):
        held = "a single model (config.json)" if os.path.isfile(os.path.join(path, "config.json")) else "no model"
        raise ValueError(
            f"{path} holds {held} and no model_index.json: hfgen's commands take the pipeline folders the "
            "generator scripts save (train_gan.py, train_vae.py, train_ddpm.py, ...)"
        )
    if os.path.isdir(path):
        with open(os.path.join(path, "model_index.json"), encoding="utf-8") as file:
            class_name = json.load(file).get("_class_name")
    else:  # a Hub id: the snapshot holds the index
        from huggingface_hub import hf_hub_download

        with open(hf_hub_download(path, "model_index.json"), encoding="utf-8") as file:
            class_name = json.load(file).get("_class_name")
    class_name = class_name[1] if isinstance(class_name, list) else class_name
    classes = {cls.__name__: cls for cls in hfgen_pipeline_classes() if cls.__module__.startswith("hfgen.")}
    pipeline_class = classes.get(class_name) or getattr(diffusers, str(class_name), None)
    if pipeline_class is None:
        raise ValueError(f"{path}: model_index.json names {class_name!r}, which neither hfgen nor diffusers has")
    return pipeline_class


def sample_images(pipeline, num_images: int, seed: int, batch_size: int, kwargs: dict) -> list:
    """`num_images` PIL images, image `i` drawn with its own generator seeded `seed + i`."""
    parameters = inspect.signature(type(pipeline).__call__).parameters
    count_argument = "num_images_per_prompt" if "num_images_per_prompt" in parameters else "batch_size"
    images = []
    for start in range(0, num_images, batch_size):
        count = min(batch_size, num_images - start)
        generators = [torch.Generator().manual_seed(seed + start + index) for index in range(count)]
        call = {**kwargs, count_argument: count, "generator": generators, "output_type": "pil"}
        if "class_labels" in call:
            call["class_labels"] = call["class_labels"][:1] * count
        images.extend(pipeline(**call).images)
    return images


def image_grid(images: list, columns: int | None = None):
    """PIL `images` as one grid, `columns` wide (default: as square as it gets), blanks after the last image."""
    from diffusers.utils import make_image_grid

    columns = columns or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    blank = images[0].copy()
    blank.paste(0, (0, 0, *blank.size))
    return make_image_grid(list(images) + [blank] * (rows * columns - len(images)), rows=rows, cols=columns)
