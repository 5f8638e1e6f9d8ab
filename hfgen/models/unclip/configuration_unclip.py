"""Configuration of the regression prior of unCLIP (Ramesh et al. 2022): the baseline the paper's diffusion prior is
compared with, mapping a CLIP text embedding to the CLIP image embedding of the images it describes."""

from ..configuration_utils import HfgenConfig


class UnCLIPRegressionPriorConfig(HfgenConfig):
    r"""
    Configuration of an [`UnCLIPRegressionPrior`]: a residual MLP from a CLIP text embedding to a CLIP image embedding
    (unit norm). The text embedding passes through unchanged plus an MLP's correction, so an untrained prior starts as
    the "text embedding as image embedding" baseline; training moves it towards the image embeddings of the captioned
    images (a deterministic regression, where unCLIP's diffusion prior samples one of them).

    Args:
        embedding_dim (`int`, *optional*, defaults to 512):
            The CLIP model's `projection_dim`: the size of its text and image embeddings.
        hidden_size (`int`, *optional*, defaults to 1024):
            Width of the MLP's hidden layers.
        num_hidden_layers (`int`, *optional*, defaults to 2):
            Hidden layers of the MLP (each a linear layer, layer norm and GELU).
        dropout (`float`, *optional*, defaults to 0.0):
            Dropout after each hidden layer (active in training only).
    """

    model_type = "hfgen_unclip_regression_prior"

    embedding_dim: int = 512
    hidden_size: int = 1024
    num_hidden_layers: int = 2
    dropout: float = 0.0

    def __post_init__(self, **kwargs):
        for name in ("embedding_dim", "hidden_size", "num_hidden_layers"):
            self.check_int(name, minimum=1)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"UnCLIPRegressionPriorConfig.dropout must lie in [0, 1), got {self.dropout}")
        super().__post_init__(**kwargs)


__all__ = ["UnCLIPRegressionPriorConfig"]
