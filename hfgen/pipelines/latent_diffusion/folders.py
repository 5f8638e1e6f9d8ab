"""How this family's model folders become pipelines: a ControlNet (train_controlnet.py) and LoRA weights
(train_ldm.py --use_lora, train_dreambooth_lora.py) do not hold the base pipeline they work on; the run's
`training_args.json` names it (`pretrained_model_name_or_path`). `hfgen sample`, `hfgen demo` and `hfgen evaluate`
load them through `load_folder_pipeline` (see `hfgen.families`)."""

import argparse
import json

import diffusers
from diffusers import ControlNetModel, DDIMScheduler, DDPMScheduler

from ...families import recorded_arguments
from ...models.modeling_utils import folder_file
from ...training.diffusion import local_folder
from .pipeline_latent_diffusion import LatentDiffusionPipeline
from .pipeline_latent_diffusion_controlnet import LatentDiffusionControlNetPipeline


def sampling_pipeline(vae, text_encoder, tokenizer, unet, noise_scheduler):
    """The pipeline of the run's current weights, sampling with DDIM on the training schedule (train_ldm.py's
    samples)."""
    scheduler = DDIMScheduler.from_config(noise_scheduler.config, clip_sample=False, set_alpha_to_one=False)
    pipeline = LatentDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def lora_pipeline(folder: str, base: str) -> LatentDiffusionPipeline:
    """What train_ldm.py --use_lora samples with: the base's components, DDIM on the base's training schedule (whose
    prediction type the adapters keep), and the folder's LoRA weights. Weights that sample with a scheduler of their
    own keep it in the folder's `scheduler/` (LCM-LoRA adapters of train_lcm_distill.py: an LCMScheduler)."""
    components = LatentDiffusionPipeline.from_pretrained(base).components
    noise_scheduler = DDPMScheduler.from_pretrained(base, subfolder="scheduler")
    pipeline = sampling_pipeline(
        components["vae"], components["text_encoder"], components["tokenizer"], components["unet"], noise_scheduler
    )
    pipeline.load_lora_weights(folder)
    scheduler_config = folder_file(folder, "scheduler/scheduler_config.json")
    if scheduler_config is not None:
        with open(scheduler_config, encoding="utf-8") as file:
            scheduler_class = getattr(diffusers, json.load(file)["_class_name"])
        pipeline.scheduler = scheduler_class.from_pretrained(folder, subfolder="scheduler")
    return pipeline


def controlnet_pipeline(folder: str, base: str) -> LatentDiffusionControlNetPipeline:
    """The base pipeline's components with the folder's ControlNet."""
    components = LatentDiffusionPipeline.from_pretrained(base).components
    pipeline = LatentDiffusionControlNetPipeline(**components, controlnet=ControlNetModel.from_pretrained(folder))
    pipeline.check_controlnets()
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def recorded_base(folder: str, run: argparse.Namespace, held: str) -> str:
    """The local folder of the base pipeline that the run's record names (`pretrained_model_name_or_path`); one-line
    errors when there is no record, or the base is not there any more."""
    base = getattr(run, "pretrained_model_name_or_path", None)
    if base is None:
        raise ValueError(
            f"{folder} holds {held} but not the base pipeline they work on, and no training_args.json naming it "
            "(pretrained_model_name_or_path): use the folder with the training_args.json its script wrote"
        )
    try:
        return local_folder(base)
    except (OSError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"the base pipeline {base!r} that {folder}'s training_args.json names cannot be loaded ({reason})"
        ) from None


def load_folder_pipeline(folder: str, architecture: str):
    """The pipeline a ControlNet or LoRA folder works in: its run's base pipeline with the ControlNet, or with the
    LoRA weights loaded (sampling with DDIM on the base's training schedule)."""
    run = argparse.Namespace(**recorded_arguments(folder))
    if architecture == "ControlNetModel":
        return controlnet_pipeline(folder, recorded_base(folder, run, "a ControlNet"))
    return lora_pipeline(folder, recorded_base(folder, run, "LoRA weights"))
