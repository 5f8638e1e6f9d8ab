"""Pipeline around hfgen's ProGAN generator, unconditional or class-conditional, at any stage of growing."""

import torch

from ...models.progan.modeling_progan import ProGANGenerator, growing_level
from ..gan.pipeline_gan import GANPipeline
from ..pipeline_checks import check_output_type


class ProGANPipeline(GANPipeline):
    r"""
    Pipeline for a [`ProGANGenerator`]: one forward pass from Gaussian noise to images, by default from the fully
    grown generator; `resolution` and `alpha` sample a stage of its growing, as training saw it. Interpolation
    (`interpolate`) and the outputs ([`GANPipelineOutput`]) are those of [`GANPipeline`].

    Parameters:
        gan ([`ProGANGenerator`]):
            The generator. (Named `gan`, not `generator`, which is the argument that takes a `torch.Generator`.)

    Example:

    ```python
    >>> import torch, hfgen
    >>> config = hfgen.ProGANConfig(resolution=16, latent_dim=32, channel_max=32, num_classes=10)
    >>> pipe = hfgen.ProGANPipeline(gan=hfgen.ProGANGenerator(config))
    >>> pipe(batch_size=4, class_labels=7, generator=torch.Generator().manual_seed(0)).images[0].size
    (16, 16)
    ```
    """

    def __init__(self, gan: ProGANGenerator):
        super().__init__(gan=gan)

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int | None = None,
        class_labels: int | list[int] | torch.Tensor | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        resolution: int | None = None,
        alpha: float = 1.0,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        r"""
        Generate images.

        Args:
            batch_size (`int`, *optional*):
                Number of images. When not given: one per label of `class_labels` or per row of `latents`, else 1;
                when given, it must agree with them.
            class_labels (`int`, `list[int]` or `torch.Tensor`, *optional*):
                For a conditional generator: one label in `[0, num_classes)` for all images, or one per image;
                drawn at random from `generator` when not given. An unconditional generator takes none.
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*):
                Makes generation deterministic; a list gives one generator per image, image `i` drawing its z (and
                label) from `generator[i]`.
            latents (`torch.Tensor` of shape `(batch, latent_dim)`, *optional*):
                z to use instead of drawing it.
            resolution (`int`, *optional*):
                A growing stage to sample, one of `gan.config.resolutions`: images at that resolution, from the
                blocks up to it. Defaults to the full resolution.
            alpha (`float`, defaults to 1.0):
                The fade-in of that stage's block (see [`ProGANGenerator`]).
            output_type (`str`, defaults to `"pil"`):
                `"pil"`, `"np"` or `"pt"`.
            return_dict (`bool`, defaults to `True`):
                Return a [`GANPipelineOutput`] instead of a tuple `(images, latents, class_labels)`.
        """
        check_output_type(output_type)
        growing_level(self.gan.config, resolution, alpha)  # the growing state is checked before anything is drawn
        latents, labels = self.prepare_inputs(batch_size, class_labels, generator, latents)
        return self._generate(latents, labels, output_type, return_dict, resolution=resolution, alpha=alpha)


__all__ = ["ProGANPipeline"]
