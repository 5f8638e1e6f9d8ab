"""hfgen's head on transformers' BLIP captioning model: a caption scorer, and the decoder inputs BLIP trains on.

The scorer keeps `BlipForConditionalGeneration` as it is (so any BLIP captioning checkpoint loads into it, and PEFT
LoRA reaches its `qkv` / `projection` / `query` / `key` / `value` layers) and adds what transformers lacks: the
log-likelihood the captioning decoder gives each of several captions of an image, as one `(batch, num_captions)`
score matrix, the ranking that zero-shot classification by captioning likelihood and caption reranking read.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import BlipForConditionalGeneration
from transformers import initialization as init
from transformers.utils import ModelOutput

from ..modeling_utils import HfgenPreTrainedModel
from .configuration_blip_heads import BLIPCaptionScorerConfig

IGNORE_INDEX = -100
"""The label PyTorch's cross-entropy (and so BLIP's language-model loss) skips."""


def blip_decoder_inputs(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, bos_token_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""
    What BLIP's text decoder reads and predicts for tokenized texts (right-padded, as BERT's tokenizer pads):

    - the decoder input: the ids with the first token (the tokenizer's `[CLS]`) replaced by the decoder's start
      token `bos_token_id`, the token `BlipForConditionalGeneration.generate` starts from (a pretrained BLIP's
      `[DEC]`, which its tokenizer never writes);
    - the labels: the same ids with `-100` at padding (`attention_mask` 0), so padding adds nothing to the loss.
      transformers' BLIP masks nothing itself: its decoder loss is the cross-entropy of every next token whose label
      is not -100, the end token `[SEP]` included (the decoder learns to stop).

    Args:
        input_ids (`torch.LongTensor` of shape `(batch, length)`), attention_mask (same shape):
            What the tokenizer returns for the texts, padded on the right.
        bos_token_id (`int`):
            `config.text_config.bos_token_id` of the BLIP model.

    Returns:
        `(decoder_input_ids, labels)`, both `(batch, length)`.
    """
    if input_ids.shape != attention_mask.shape or input_ids.ndim != 2:
        raise ValueError(
            f"input_ids and attention_mask must both be (batch, length), got {tuple(input_ids.shape)} and "
            f"{tuple(attention_mask.shape)}"
        )
    decoder_input_ids = input_ids.clone()
    decoder_input_ids[:, 0] = bos_token_id
    labels = decoder_input_ids.masked_fill(attention_mask == 0, IGNORE_INDEX)
    return decoder_input_ids, labels


def caption_log_likelihoods(
    blip: BlipForConditionalGeneration,
    pixel_values: torch.Tensor,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    length_normalize: bool = True,
) -> torch.Tensor:
    r"""
    The log-likelihood `blip`'s captioning decoder gives each caption of each image: the sum (or, with
    `length_normalize`, the mean) over the caption's tokens after the start token, the end token included, of
    log p(token | image, previous tokens). Padding counts for nothing.

    Args:
        blip (`BlipForConditionalGeneration`):
            The captioning model (a PEFT-wrapped one works too).
        pixel_values (`torch.FloatTensor` of shape `(batch, 3, image_size, image_size)`):
            Images as the BLIP image processor prepares them.
        input_ids (`torch.LongTensor` of shape `(num_captions, length)` or `(batch, num_captions, length)`):
            Tokenized captions, padded on the right: the same captions for every image, or captions per image.
        attention_mask (`torch.LongTensor` of the shape of `input_ids`, *optional*):
            0 at padding; no padding when omitted.

    Returns:
        `torch.FloatTensor` of shape `(batch, num_captions)`.
    """
    batch_size = pixel_values.shape[0]
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    if input_ids.ndim == 2:
        input_ids, attention_mask = input_ids.expand(batch_size, -1, -1), attention_mask.expand(batch_size, -1, -1)
    if input_ids.ndim != 3 or input_ids.shape[0] != batch_size or attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"input_ids must be (num_captions, length) or ({batch_size}, num_captions, length) with an attention_mask "
            f"of the same shape, got {tuple(input_ids.shape)} and {tuple(attention_mask.shape)}"
        )
    num_captions = input_ids.shape[1]
    # 1. encode each image once, and pair it with each of its captions
    image_embeds = blip.vision_model(pixel_values=pixel_values).last_hidden_state
    image_embeds = image_embeds.repeat_interleave(num_captions, dim=0)
    input_ids, attention_mask = input_ids.flatten(0, 1), attention_mask.flatten(0, 1)
    decoder_input_ids, labels = blip_decoder_inputs(input_ids, attention_mask, blip.config.text_config.bos_token_id)
    # 2. the decoder's next-token distributions, and the log-probability of each caption token under them
    logits = blip.text_decoder(
        input_ids=decoder_input_ids, attention_mask=attention_mask, encoder_hidden_states=image_embeds, use_cache=False
    ).logits
    targets = labels[:, 1:]
    counted = targets != IGNORE_INDEX
    token_log_probs = logits[:, :-1].log_softmax(dim=-1).gather(-1, targets.clamp(min=0)[..., None]).squeeze(-1)
    totals = (token_log_probs * counted).sum(dim=1)
    if length_normalize:
        totals = totals / counted.sum(dim=1).clamp(min=1)
    return totals.view(batch_size, num_captions)


@dataclass
class BLIPCaptionScorerOutput(ModelOutput):
    r"""
    loss (`torch.FloatTensor` of shape `()`, *optional*):
        Cross-entropy of the scores against `labels`, when they are given.
    logits (`torch.FloatTensor` of shape `(batch, num_captions)`):
        Each caption's log-likelihood given each image (see [`caption_log_likelihoods`]); the softmax over captions is
        the posterior of the captions under a uniform prior.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None


class BLIPCaptionScorer(HfgenPreTrainedModel):
    """
    Scores how well each caption describes an image by the log-likelihood BLIP's captioning decoder (Li et al. 2022)
    gives it: `forward(pixel_values, input_ids)` returns `(batch, num_captions)` scores. With class prompts as the
    captions ("a photo of a cat", "a photo of a dog"), the highest score classifies the image zero-shot; with
    candidate captions per image, it reranks them.

    Build one from a trained `BlipForConditionalGeneration` with [`BLIPCaptionScorer.from_blip`], or load one with
    `from_pretrained` or `transformers.AutoModel` (after `import hfgen`); tokenize captions with the BLIP model's own
    processor. LoRA: `target_modules=["qkv", "projection", "query", "key", "value"]` (the attention of both towers).
    """

    config: BLIPCaptionScorerConfig
    config_class = BLIPCaptionScorerConfig
    base_model_prefix = "blip_caption_scorer"
    main_input_name = "pixel_values"
    input_modalities = ("image", "text")

    def __init__(self, config: BLIPCaptionScorerConfig):
        super().__init__(config)
        self.blip = BlipForConditionalGeneration(config.blip_config)
        self.post_init()
        # from_pretrained records the weights' dtype in sub-configs; a new model records it here, so both agree
        config.blip_config.dtype = self.dtype

    def initialize_weights(self):
        super().initialize_weights()
        # BLIP initialises its own modules, all but the output bias of its language-model head: a bare parameter, zero
        # when built, that BLIP's initialisation skips (a model built on the meta device would keep an empty one).
        # `init.zeros_` leaves a loaded bias as it is.
        init.zeros_(self.blip.text_decoder.cls.predictions.bias)

    @classmethod
    def from_blip(cls, blip: BlipForConditionalGeneration, length_normalize: bool = True) -> "BLIPCaptionScorer":
        """A scorer on a copy of `blip`'s weights."""
        config = BLIPCaptionScorerConfig(blip_config=blip.config.to_dict(), length_normalize=length_normalize)
        scorer = cls(config)
        scorer.blip.load_state_dict(blip.state_dict())
        return scorer.to(blip.device)

    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ):
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch, 3, image_size, image_size)`):
            Images as the BLIP image processor prepares them.
        input_ids (`torch.LongTensor` of shape `(num_captions, length)` or `(batch, num_captions, length)`):
            Captions as the BLIP processor's tokenizer returns them (padded on the right): shared by all images, or
            per image.
        attention_mask (`torch.LongTensor` of the shape of `input_ids`, *optional*):
            0 at padding.
        labels (`torch.LongTensor` of shape `(batch,)`, *optional*):
            The index of each image's right caption; with them the output holds the cross-entropy loss.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        logits = caption_log_likelihoods(
            self.blip, pixel_values, input_ids, attention_mask, length_normalize=self.config.length_normalize
        )
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        if not return_dict:
            return (logits,) if loss is None else (loss, logits)
        return BLIPCaptionScorerOutput(loss=loss, logits=logits)


__all__ = [
    "IGNORE_INDEX",
    "BLIPCaptionScorer",
    "BLIPCaptionScorerOutput",
    "blip_decoder_inputs",
    "caption_log_likelihoods",
]
