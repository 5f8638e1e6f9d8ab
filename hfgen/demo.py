"""Gradio demos of saved folders: `hfgen demo <folder>`, or `hfgen.demo.build_demo(folder).launch()` in a Space.

A pipeline folder's demo is built from the pipeline class that its `model_index.json` names: each family's pipeline
package holds a `demo.py` whose `build_demo(pipeline)` returns its `gradio.Blocks`. A model folder saved with
transformers (CLIP, BLIP, OWL-ViT: a `config.json`, or a LoRA adapter on one) has the demo of the hfgen heads package
that lists its architecture (`FOLDER_ARCHITECTURES`, see `hfgen.families`); there `build_demo(folder, architecture)`
loads it. So a new family adds its interface next to its pipeline or heads, and nothing here lists the families.
What several families share (drawing a grid of images from noise with a seed) is below.

Gradio is an optional extra (`pip install hfgen[demo]`): it is imported only when a demo is built.
"""

from .families import folder_family, load_folder_pipeline, pipeline_family_module
from .pipelines.sampling import image_grid, sample_images

# The most images one click draws; the grid is at most 4 x 4.
MAX_IMAGES = 16
# Small images are shown enlarged by a whole factor (nearest neighbour: the pixels stay exact) to at least this side.
DISPLAY_SIDE = 128


def import_gradio():
    try:
        import gradio
    except ImportError:
        raise ValueError("the demos need Gradio: pip install 'hfgen[demo]'") from None
    return gradio


def demo_module(pipeline_class: type):
    """The `demo` module of the family package that holds `pipeline_class`; a `ValueError` when it has none."""
    module = pipeline_family_module(pipeline_class, "demo")
    if module is None:
        raise ValueError(f"{pipeline_class.__name__} folders have no demo yet (no {pipeline_class.__module__} demo)")
    return module


def folder_demo_module(folder: str):
    """`(what the folder holds, the demo module of its family)`; loads no weights. A folder whose family has no demo
    is a `ValueError` naming what it holds."""
    held, module = folder_family(folder, "demo")
    if module is None:
        name = held if isinstance(held, str) else held.__name__
        raise ValueError(f"{name} folders have no demo yet")
    return held, module


def build_demo(folder_or_pipeline):
    """The Gradio app of a folder (or Hub id, or a loaded pipeline): the interface its family defines. A model folder
    that works inside a pipeline (a ControlNet, LoRA weights) gets the demo of that pipeline."""
    if isinstance(folder_or_pipeline, str):
        held, module = folder_demo_module(folder_or_pipeline)  # a folder without a demo fails before loading weights
        pipeline = load_folder_pipeline(folder_or_pipeline)
        if pipeline is None:  # a transformers model folder, served by its architecture
            return module.build_demo(folder_or_pipeline, held)
        folder_or_pipeline = pipeline
    return demo_module(type(folder_or_pipeline)).build_demo(folder_or_pipeline)


def class_names(config) -> list[str]:
    """The class names of a conditional generator's config (`id2label` when it has its own, else the ids), or []."""
    count = getattr(config, "num_classes", 0) or 0
    labels = getattr(config, "id2label", None) or {}
    return [str(labels.get(index, labels.get(str(index), index))) for index in range(count)]


def enlarged(grid, image_side: int):
    """`grid` of images `image_side` pixels wide, enlarged by the whole factor that shows each at `DISPLAY_SIDE`."""
    from PIL import Image

    factor = max(1, DISPLAY_SIDE // image_side)
    return grid.resize((grid.width * factor, grid.height * factor), Image.NEAREST)


def generator_demo(pipeline, title: str, description: str, classes: list[str] = (), **options):
    """A demo that draws a grid of images from noise (see [`sampling_controls`])."""
    gr = import_gradio()
    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        gr.Markdown(f"# {title}\n\n{description}")
        sampling_controls(pipeline, classes, **options)
    return demo


def sampling_controls(pipeline, classes: list[str] = (), **options) -> None:
    """Inside the current Gradio Blocks: a seed (image i from seed + i, so a seed always gives the same grid), how
    many images, the class when `classes` are given, and `options`: `truncation_psi=(low, high, default)` or
    `num_inference_steps=(low, high, default)` for the pipelines that take them; a button and the grid."""
    gr = import_gradio()
    with gr.Row():
        seed = gr.Number(value=0, precision=0, label="seed (image i uses seed + i)", elem_id="seed")
        count = gr.Slider(1, MAX_IMAGES, value=4, step=1, label="images", elem_id="count")
        inputs = [seed, count]
        if classes:
            inputs.append(gr.Dropdown(["random", *classes], value="random", label="class", elem_id="class"))
        for name, (low, high, default) in options.items():
            step = 1 if isinstance(default, int) else 0.05
            inputs.append(gr.Slider(low, high, value=default, step=step, label=name, elem_id=name))
    button = gr.Button("Generate", variant="primary", elem_id="generate")
    # PNG: lossless, so the same seed shows the same pixels
    output = gr.Image(type="pil", format="png", label="samples", elem_id="samples", interactive=False)

    def generate(seed, count, *values):
        values = list(values)
        kwargs = {}
        if classes:
            chosen = values.pop(0)
            if chosen != "random":
                kwargs["class_labels"] = [classes.index(chosen)]
        for name, value in zip(options, values, strict=True):
            kwargs[name] = int(value) if isinstance(options[name][2], int) else float(value)
        images = sample_images(pipeline, int(count), int(seed), MAX_IMAGES, kwargs)
        return enlarged(image_grid(images), images[0].width)

    button.click(generate, inputs, output)


def seed_latent(seed: int, latent_dim: int):
    """The z of one seed: `torch.randn(latent_dim)` from a generator seeded `seed`."""
    import torch

    return torch.randn(latent_dim, generator=torch.Generator().manual_seed(int(seed)))


def interpolation_controls(pipeline, latent_dim: int, classes: list[str] = (), **path_options) -> None:
    """Inside the current Gradio Blocks: two seeds, a number of steps and a class (for conditional models), and the
    row of images the pipeline's `interpolate` draws between the seeds' latents; `path_options` are extra radio
    choices passed to it (e.g. `space=["w", "z"]`)."""
    gr = import_gradio()
    with gr.Row():
        start = gr.Number(value=0, precision=0, label="from seed", elem_id="start_seed")
        end = gr.Number(value=1, precision=0, label="to seed", elem_id="end_seed")
        steps = gr.Slider(2, MAX_IMAGES, value=8, step=1, label="steps", elem_id="steps")
        inputs = [start, end, steps]
        if classes:
            inputs.append(gr.Dropdown(classes, value=classes[0], label="class", elem_id="path_class"))
        for name, choices in path_options.items():
            inputs.append(gr.Radio(choices, value=choices[0], label=name, elem_id=name))
    path = gr.Image(type="pil", format="png", label="path", elem_id="path", interactive=False)

    def interpolate(start, end, steps, *values):
        values = list(values)
        kwargs = {"class_labels": classes.index(values.pop(0))} if classes else {}
        kwargs.update(zip(path_options, values, strict=True))
        ends = [seed_latent(seed, latent_dim) for seed in (start, end)]
        images = pipeline.interpolate(*ends, num_steps=int(steps), **kwargs).images
        return enlarged(image_grid(images, columns=len(images)), images[0].width)

    gr.Button("Interpolate", variant="primary", elem_id="interpolate").click(interpolate, inputs, path)
