"""Configuration of hfgen's digits classifier, the offline feature extractor behind hfgen's FID / KID / IS."""

from ..configuration_utils import HfgenConfig


class DigitsClassifierConfig(HfgenConfig):
    r"""
    Configuration of a [`DigitsClassifier`]: a small VGG-style CNN that classifies `image_size` x `image_size` images
    in [-1, 1]. Each level stacks `layers_per_block` 3x3 convolutions with ReLU; every level but the last halves the
    resolution with 2x2 max pooling. The last level is averaged over space into the image features
    (`hidden_channels[-1]` numbers per image) that FID, KID and precision / recall compare, and a linear layer maps
    them to `num_labels` logits.

    Args:
        num_channels (`int`, *optional*, defaults to 1):
            Channels of the input images (1: the built-in digits are greyscale).
        image_size (`int`, *optional*, defaults to 32):
            Side of the square input images. The convolutions accept any size; this is the size the classifier is
            trained at and the size hfgen's feature extractor resizes every image to.
        hidden_channels (`list[int]`, *optional*, defaults to `[16, 32, 64]`):
            Feature channels of each resolution level. The last entry is the dimension of the image features.
        layers_per_block (`int`, *optional*, defaults to 2):
            3x3 convolutions per resolution level.
        classifier_dropout (`float`, *optional*, defaults to 0.1):
            Dropout on the image features before the classification layer (active in training only).
        num_labels (`int`, *optional*, defaults to 10):
            Number of classes. Without an `id2label` map, the labels are named `"0"` to `"<num_labels - 1>"`.
    """

    model_type = "hfgen_digits_classifier"

    num_channels: int = 1
    image_size: int = 32
    hidden_channels: list[int] | tuple[int, ...] = (16, 32, 64)
    layers_per_block: int = 2
    classifier_dropout: float = 0.1

    def __post_init__(self, **kwargs):
        self.hidden_channels = list(self.hidden_channels)
        for name in ("num_channels", "image_size", "layers_per_block"):
            self.check_int(name, minimum=1)
        self.check_int_list("hidden_channels", minimum=1)
        downsampling = 2 ** (len(self.hidden_channels) - 1)
        if self.image_size % downsampling != 0:
            raise ValueError(
                f"DigitsClassifierConfig.image_size={self.image_size} must be divisible by {downsampling}, the "
                f"downsampling of {len(self.hidden_channels)} levels"
            )
        if not 0.0 <= self.classifier_dropout < 1.0:
            raise ValueError(
                f"DigitsClassifierConfig.classifier_dropout must lie in [0, 1), got {self.classifier_dropout}"
            )
        # Ten digit classes named by the digit, unless the caller (or a saved config) says otherwise.
        if self.id2label is None:
            num_labels = kwargs.pop("num_labels", 10)
            if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 1:
                raise ValueError(f"DigitsClassifierConfig.num_labels must be an integer >= 1, got {num_labels!r}")
            self.id2label = {i: str(i) for i in range(num_labels)}
            self.label2id = {name: i for i, name in self.id2label.items()}
        elif not self.id2label:
            raise ValueError("DigitsClassifierConfig.id2label must name at least one class, got {}")
        super().__post_init__(**kwargs)


__all__ = ["DigitsClassifierConfig"]
