"""Zero-shot semantic segmentation with GroupViT (Xu et al. 2022): `GroupViTSegmentationPipeline`.

GroupViT's image tower merges its patches into a few group tokens, stage by stage, with hard assignments; each group
ends as one embedding in the space its text tower shares. transformers' `GroupViTModel` returns each stage's
assignment attention (soft, before the hard choice). The pipeline turns them into label maps for any class names:

1. each class is one text embedding, the normalised mean over prompt templates ("the digit {}" for "seven");
2. each final group's embedding is compared with every class (cosine similarity);
3. every patch follows its hard assignment (the most attended group) through the stages to one final group, as the
   model's own forward assigns it; the one-hot maps are upsampled to the image's size (bilinear, so borders blend),
   and each pixel takes its groups' similarities and the class that scores highest;
4. a pixel whose best similarity stays under `background_threshold` is background (label 0): groups of plain
   background resemble no class text.

The output also holds `group_maps`, the final group of each pixel's patch: what the grouping alone made of the image,
before any class is named (GroupViT's group visualisation, and the way to tell a grouping that misses the objects from
one whose groups are misnamed).

`background_threshold` is a cosine similarity; hfgen's training script calibrates it on training images and saves
it in the folder's `model_index.json`, and a call may override it.
"""

import colorsys
from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from diffusers.image_processor import VaeImageProcessor
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.utils import BaseOutput
from transformers import CLIPTokenizer, GroupViTModel
from transformers.image_processing_utils import BaseImageProcessor

from ...models.clip_heads import prompt_ensemble_embeddings
from ..pipeline_checks import check_output_type
from ..pipeline_folder import PipelineFolderMixin


@dataclass
class GroupViTSegmentationPipelineOutput(BaseOutput):
    """
    Args:
        images (`list[PIL.Image.Image]`, `np.ndarray` or `torch.Tensor`):
            The label maps in colour (background black, class `c` the colour `label_colours` gives `c + 1`), as
            `output_type` asks: RGB PIL images, a `(batch, height, width, 3)` array in [0, 1], or a
            `(batch, 3, height, width)` tensor in [0, 1].
        label_maps (`np.ndarray` or `torch.Tensor`):
            `(batch, height, width)` int64 labels at the input images' size: 0 background, `1 + c` for
            `class_names[c]` (a tensor for `output_type="pt"`, an array otherwise).
        scores (`np.ndarray` or `torch.Tensor`):
            `(batch, num_classes, height, width)` cosine similarities of each pixel's groups to each class.
        group_maps (`np.ndarray` or `torch.Tensor`):
            `(batch, height, width)` int64: the final group (0 to the model's number of output groups - 1) that each
            pixel's patch is assigned to, at the input images' size (a tensor for `output_type="pt"`, an array
            otherwise).
    """

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    label_maps: np.ndarray | torch.Tensor
    scores: np.ndarray | torch.Tensor
    group_maps: np.ndarray | torch.Tensor


def label_colours(num_labels: int) -> torch.Tensor:
    """`(num_labels, 3)` RGB colours in [0, 1] for label ids: 0 (background) black, the others saturated hues spread
    evenly around the colour wheel, so neighbouring class ids stay apart."""
    hues = [(index * 0.61803398875) % 1.0 for index in range(num_labels - 1)]  # golden-ratio steps
    return torch.tensor([(0.0, 0.0, 0.0)] + [colorsys.hsv_to_rgb(hue, 0.85, 0.95) for hue in hues])


def _prepare_images(images) -> torch.Tensor:
    """PIL images, arrays `(height, width[, channels])` / `(batch, height, width, channels)` or tensors `(channels,
    height, width)` / `(batch, channels, height, width)` in [0, 1], all of one size, as a `(batch, 3, height, width)`
    tensor in [0, 1]."""
    if isinstance(images, (PIL.Image.Image, np.ndarray, torch.Tensor)):
        images = [images] if not (isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4) else images
    if (isinstance(images, list) and not images) or not isinstance(images, (list, np.ndarray, torch.Tensor)):
        raise ValueError(
            "images must be a PIL image, a numpy array or torch tensor in [0, 1], or a non-empty list of them, got "
            f"{type(images).__name__}"
        )
    if isinstance(images, list):
        if isinstance(images[0], np.ndarray) and images[0].ndim == 2:
            images = [image[..., None] for image in images]
        if isinstance(images[0], torch.Tensor) and images[0].ndim == 2:
            images = [image[None] for image in images]
        sizes = sorted({_size(image) for image in images})
        if len(sizes) > 1:
            listed = ", ".join(f"{width}x{height}" for width, height in sizes)
            raise ValueError(f"images have different sizes ({listed}): call the pipeline once per size")
    pixels = VaeImageProcessor(vae_scale_factor=1, do_normalize=False, do_convert_rgb=True).preprocess(images)
    if pixels.shape[1] == 1:
        pixels = pixels.expand(-1, 3, -1, -1)
    if pixels.shape[1] != 3:
        raise ValueError(f"images have {pixels.shape[1]} channels; give greyscale (1) or RGB (3) images")
    return pixels


def _size(image) -> tuple[int, int]:
    if isinstance(image, PIL.Image.Image):
        return image.size
    if isinstance(image, np.ndarray):
        return image.shape[1], image.shape[0]
    return image.shape[-1], image.shape[-2]


class GroupViTSegmentationPipeline(PipelineFolderMixin, DiffusionPipeline):
    r"""
    Zero-shot semantic segmentation: label every pixel of `images` with one of `class_names`, or background, from a
    GroupViT's grouping (see the module docstring for how).

    Parameters:
        model ([`~transformers.GroupViTModel`]): the dual encoder, trained contrastively on image-text pairs.
        tokenizer ([`~transformers.CLIPTokenizer`]): its text tokenizer.
        image_processor ([`~transformers.CLIPImageProcessor`] or another image processor): its image normalisation
            (`image_mean`, `image_std`); images are resized to the model's `image_size` whole (not cropped), and the
            label maps back to theirs.
        background_threshold (`float`, *optional*):
            The cosine similarity under which a pixel is background; None labels every pixel with a class.
        templates (`list[str]`, *optional*):
            Default prompt templates, each with one `{}` for the class name; default `["a photo of a {}."]`.

    Example, with a folder written by `training_scripts/vision_language/train_groupvit.py`:

    ```py
    >>> import hfgen
    >>> pipe = hfgen.GroupViTSegmentationPipeline.from_pretrained("groupvit-digit-canvases")
    >>> out = pipe(image, class_names=["zero", "one", "seven"])
    >>> out.label_maps.shape, out.images[0].size  # labels at the image's size; 0 is background
    ```

    A pretrained GroupViT folder (`nvidia/groupvit-gcc-yfcc` saved locally) makes a pipeline from its parts:
    `GroupViTSegmentationPipeline(GroupViTModel.from_pretrained(d), CLIPTokenizer.from_pretrained(d),
    AutoImageProcessor.from_pretrained(d), background_threshold=...)`.
    """

    model_cpu_offload_seq = "model"

    def __init__(
        self,
        model: GroupViTModel,
        tokenizer: CLIPTokenizer,
        image_processor: BaseImageProcessor,
        background_threshold: float | None = None,
        templates: list[str] | None = None,
    ):
        super().__init__()
        self.register_modules(model=model, tokenizer=tokenizer, image_processor=image_processor)
        _check_templates(templates)
        self.register_to_config(background_threshold=background_threshold, templates=templates)

    @torch.no_grad()
    def class_embeddings(self, class_names: list[str], templates: list[str] | None = None) -> torch.Tensor:
        """`(num_classes, projection_dim)` normalised text embeddings, each the mean over `templates`."""
        templates = templates or self.config.templates or ["a photo of a {}."]
        return prompt_ensemble_embeddings(self.model, self.tokenizer, list(class_names), list(templates))

    @torch.no_grad()
    def __call__(
        self,
        images,
        class_names: list[str],
        templates: list[str] | None = None,
        background_threshold: float | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        r"""
        Segment `images` into `class_names` and background.

        Args:
            images (PIL image, `np.ndarray`, `torch.Tensor` in [0, 1], or a list of them, all of one size):
                Greyscale or RGB images.
            class_names (`list[str]`):
                The classes, in the order of their labels (`class_names[c]` is label `c + 1`).
            templates (`list[str]`, *optional*):
                Prompt templates with one `{}` each; default the pipeline's `templates`.
            background_threshold (`float`, *optional*):
                Overrides the pipeline's (-1 labels every pixel with a class).
            output_type (`str`, defaults to `"pil"`):
                `"pil"`, `"np"` or `"pt"` (see [`GroupViTSegmentationPipelineOutput`]).
            return_dict (`bool`, defaults to `True`):
                Return a [`GroupViTSegmentationPipelineOutput`] instead of a tuple `(images, label_maps, scores,
                group_maps)`.
        """
        # 1. check inputs
        check_output_type(output_type)
        if isinstance(class_names, str) or not class_names or not all(isinstance(n, str) for n in class_names):
            raise ValueError(f"class_names must be a non-empty list of strings, got {class_names!r}")
        _check_templates(templates)
        if background_threshold is None:
            background_threshold = self.config.background_threshold
        if background_threshold is not None and not -1 <= background_threshold <= 1:
            raise ValueError(f"background_threshold is a cosine similarity in [-1, 1], got {background_threshold}")
        pixels = _prepare_images(images)
        height, width = pixels.shape[-2:]

        # 2. class embeddings, and the images as the model takes them: at its size, normalised
        device, dtype = self._execution_device, self.model.dtype
        classes = self.class_embeddings(class_names, templates).to(dtype)
        size = self.model.config.vision_config.image_size
        size = (size, size) if isinstance(size, int) else tuple(size)
        model_pixels = F.interpolate(pixels, size=size, mode="bicubic", align_corners=False).clamp(0, 1)
        mean = torch.tensor(self.image_processor.image_mean).view(1, 3, 1, 1)
        std = torch.tensor(self.image_processor.image_std).view(1, 3, 1, 1)
        model_pixels = ((model_pixels - mean) / std).to(device=device, dtype=dtype)

        # 3. the groups: their embeddings, their similarity to each class, and which pixels each one holds
        vision = self.model.vision_model(pixel_values=model_pixels, output_attentions=True, return_dict=True)
        groups = vision.last_hidden_state  # (batch, num_groups, hidden_size)
        group_embeddings = self.model.visual_projection(groups.reshape(-1, groups.shape[-1]))
        group_embeddings = F.normalize(group_embeddings, dim=-1).view(groups.shape[0], groups.shape[1], -1)
        similarity = group_embeddings @ classes.t()  # (batch, num_groups, num_classes)
        # each stage assigns every token to its most attended group, as the model's forward does (hard assignment):
        # the stages' soft attention can be nearly uniform even when the assignment is clear
        patch_groups = _patch_groups(vision.attentions, size, self.model.config.vision_config.patch_size)
        num_groups = vision.attentions[-1].shape[1]
        grouping = F.one_hot(patch_groups, num_groups).permute(0, 3, 1, 2).to(dtype)  # (batch, groups, rows, cols)
        grouping = F.interpolate(grouping, size=size, mode="bilinear", align_corners=False)
        group_maps = F.interpolate(patch_groups[:, None].float(), size=(height, width), mode="nearest")[:, 0].long()

        # 4. per pixel: the assignment-weighted similarity to each class, at the input's size; the best class, or
        # background under the threshold
        scores = torch.einsum("bghw,bgc->bchw", grouping, similarity)
        scores = F.interpolate(scores.float(), size=(height, width), mode="bilinear", align_corners=False)
        best, best_class = scores.max(dim=1)
        label_maps = best_class + 1
        if background_threshold is not None:
            label_maps = torch.where(best < background_threshold, torch.zeros_like(label_maps), label_maps)
        scores = scores.to(dtype)
        coloured = label_colours(len(class_names) + 1).to(dtype)[label_maps.cpu()].permute(0, 3, 1, 2)

        # 5. outputs
        if output_type == "pt":
            output = (coloured, label_maps.cpu(), scores.cpu(), group_maps.cpu())
        else:
            array = coloured.permute(0, 2, 3, 1).float().numpy()
            colours = [PIL.Image.fromarray((image * 255).round().astype(np.uint8)) for image in array]
            output = (
                colours if output_type == "pil" else array,
                label_maps.cpu().numpy(),
                scores.cpu().numpy(),
                group_maps.cpu().numpy(),
            )
        self.maybe_free_model_hooks()
        if not return_dict:
            return output
        return GroupViTSegmentationPipelineOutput(*output)


def _patch_groups(attentions, size: tuple[int, int], patch_size) -> torch.Tensor:
    """`(batch, rows, columns)` int64: the final group of every patch, each stage assigning every token to its most
    attended group (`attentions` holds one `(batch, groups, tokens)` map per grouping stage)."""
    groups = None
    for attention in attentions:
        step = attention.argmax(dim=1)  # (batch, tokens): each token's group at this stage
        groups = step if groups is None else step.gather(1, groups)
    patch = tuple(patch_size) if isinstance(patch_size, (list, tuple)) else (patch_size, patch_size)
    return groups.view(groups.shape[0], size[0] // patch[0], size[1] // patch[1])


def _check_templates(templates) -> None:
    if templates is None:
        return
    if (
        isinstance(templates, str)
        or not templates
        or any(not isinstance(template, str) or template.count("{}") != 1 for template in templates)
    ):
        raise ValueError(f"templates must be a non-empty list of strings with one {{}} each, got {templates!r}")
