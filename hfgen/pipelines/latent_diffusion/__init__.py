from ...models.modeling_utils import DIFFUSERS_LORA
from .pipeline_latent_diffusion import LatentDiffusionPipeline, LatentDiffusionPipelineOutput
from .pipeline_latent_diffusion_controlnet import LatentDiffusionControlNetPipeline

# The model folders this family's tools serve (see hfgen.families): a ControlNet train_controlnet.py saved, and the
# LoRA weights of train_dreambooth_lora.py or train_ldm.py --use_lora, each used on the base pipeline its run names.
FOLDER_ARCHITECTURES = ("ControlNetModel", DIFFUSERS_LORA)

__all__ = ["LatentDiffusionControlNetPipeline", "LatentDiffusionPipeline", "LatentDiffusionPipelineOutput"]
