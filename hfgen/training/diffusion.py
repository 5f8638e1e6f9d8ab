"""What diffusion scripts share (DDPM, score SDE, latent diffusion): the flags of the noise schedule and objective,
the noise and timesteps a training step draws, and the EMA of the denoiser.

The loss terms themselves are pure functions in `hfgen.losses.diffusion`; the schedulers and the EMA are diffusers'
own (`DDPMScheduler.add_noise`, `diffusers.training_utils.EMAModel`). Random draws come from torch's global RNG,
which `accelerate.utils.set_seed(..., device_specific=True)` seeds per process and checkpoints save, so a resumed run
draws what the uninterrupted one would have.
"""

import argparse
import contextlib
import os

import torch

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")

# The ranges of the diffusion flags (see `hfgen.training.cli.check_flag_ranges` for the notation).
DIFFUSION_FLAG_RANGES = {
    "num_train_timesteps": (2, None, "closed"),
    "snr_gamma": (0, None, "open"),
    "noise_offset": (0, None, "closed"),
    "ema_decay": (0, 1, "open"),
    "ema_power": (0, None, "open"),
    "num_inference_steps": (1, None, "closed"),
}


def add_diffusion_arguments(
    parser: argparse.ArgumentParser, num_inference_steps: int | None, new_schedule: bool = True
) -> None:
    """The noise schedule, objective, loss weighting, EMA and sampling flags of a diffusion script (a script that
    resolves the number of sampling steps itself passes None). A script that always trains on a base model's schedule
    and objective (ControlNet, DreamBooth) passes `new_schedule=False` and has no schedule or objective flags."""
    from ..losses.diffusion import PREDICTION_TYPES

    if new_schedule:
        add_schedule_arguments(parser, PREDICTION_TYPES)
    add_training_noise_arguments(parser, num_inference_steps)


def add_schedule_arguments(parser: argparse.ArgumentParser, prediction_types) -> None:
    parser.add_argument(
        "--prediction_type",
        type=str,
        default="epsilon",
        choices=prediction_types,
        help="What the network predicts: the noise (Ho et al. 2020), the velocity (Salimans & Ho 2022) or the clean "
        "image. A model loaded with --pretrained_model_name_or_path keeps its own unless this is given.",
    )
    parser.add_argument(
        "--beta_schedule",
        type=str,
        default="linear",
        choices=BETA_SCHEDULES,
        help="Noise schedule of a new model: linear (Ho et al.), squaredcos_cap_v2 (the cosine schedule of Nichol & "
        "Dhariwal 2021) or scaled_linear (Stable Diffusion's).",
    )
    parser.add_argument("--num_train_timesteps", type=int, default=1000, help="Timesteps of a new noise schedule.")


def add_training_noise_arguments(parser: argparse.ArgumentParser, num_inference_steps: int | None) -> None:
    parser.add_argument(
        "--snr_gamma",
        type=float,
        default=None,
        help="Min-SNR loss weighting (Hang et al. 2023) with this gamma; 5.0 is the paper's choice. Off by default.",
    )
    parser.add_argument(
        "--noise_offset",
        type=float,
        default=0.0,
        help="Add this much per-channel constant noise (offset noise), so the model learns to change overall "
        "brightness; 0.05-0.1 is common. Off by default.",
    )
    parser.add_argument(
        "--use_ema",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Keep an exponential moving average of the weights; validation, metrics and the saved model use it.",
    )
    parser.add_argument("--ema_decay", type=float, default=0.9999, help="The EMA's largest decay.")
    parser.add_argument(
        "--ema_power",
        type=float,
        default=0.75,
        help="The EMA's decay warms up as 1 - (1 + step)^-power, so a short run is not dominated by its start.",
    )
    parser.add_argument(
        "--num_inference_steps",
        type=int,
        default=num_inference_steps,
        help="Sampling steps for validation grids and the metrics"
        + ("." if num_inference_steps else "; by default the script's choice for its objective."),
    )


def training_noise(samples: torch.Tensor, noise_offset: float) -> torch.Tensor:
    """Standard normal noise shaped like `samples`, plus `noise_offset` times one normal draw per image and channel
    (Guttenberg's offset noise) when it is not 0."""
    noise = torch.randn_like(samples)
    if noise_offset:
        noise = noise + noise_offset * torch.randn(
            samples.shape[0], samples.shape[1], 1, 1, device=samples.device, dtype=samples.dtype
        )
    return noise


def sample_timesteps(batch_size: int, num_train_timesteps: int, device) -> torch.Tensor:
    """One integer timestep per image, uniform over the schedule (Algorithm 1 of Ho et al. 2020)."""
    return torch.randint(0, num_train_timesteps, (batch_size,), device=device, dtype=torch.long)


def sample_noise_levels(batch_size: int, sigma_min: float, sigma_max: float, device) -> torch.Tensor:
    """One noise level per image, log-uniform in [sigma_min, sigma_max]: the continuous form of the geometric ladder of
    NCSN (Song & Ermon 2019) used by the VE SDE (Song et al. 2021)."""
    fraction = torch.rand(batch_size, device=device)
    return sigma_min * (sigma_max / sigma_min) ** fraction


def create_ema(parameters: list[torch.nn.Parameter], args: argparse.Namespace):
    """diffusers' `EMAModel` of `parameters` (those of one model, or of several trained together) with the run's
    decay and warm-up (`--ema_decay`, `--ema_power`), for `accelerator.register_for_checkpointing`."""
    from diffusers.training_utils import EMAModel

    return EMAModel(
        parameters, decay=args.ema_decay, use_ema_warmup=True, inv_gamma=1.0, power=args.ema_power, foreach=True
    )


@contextlib.contextmanager
def averaged_weights(ema, parameters: list[torch.nn.Parameter]):
    """Within the block, `parameters` hold the EMA's values (when there is an EMA); their own are put back after."""
    if ema is None:
        yield
        return
    ema.store(parameters)
    ema.copy_to(parameters)
    try:
        yield
    finally:
        ema.restore(parameters)


# The UNet's attention projections: where LoRA adapters go (diffusers' text-to-image LoRA example and the
# Stable Diffusion LoRA files people share target the same ones).
UNET_LORA_TARGET_MODULES = ["to_q", "to_k", "to_v", "to_out.0"]


def add_unet_lora(
    unet: torch.nn.Module, rank: int, alpha: float | None = None, target_modules: list[str] | None = None
) -> None:
    """Freeze the UNet and add trainable LoRA adapters (peft, Gaussian A, zero B: the output is unchanged at first)
    of `rank` and scaling `alpha / rank` (alpha defaults to the rank) to `target_modules` (by default its attention
    projections, `UNET_LORA_TARGET_MODULES`)."""
    from peft import LoraConfig

    unet.requires_grad_(False)
    unet.add_adapter(
        LoraConfig(
            r=rank,
            lora_alpha=alpha or rank,
            init_lora_weights="gaussian",
            target_modules=target_modules or UNET_LORA_TARGET_MODULES,
        )
    )


# The CLIP text encoder's attention projections (diffusers' DreamBooth LoRA example targets the same).
TEXT_ENCODER_LORA_TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "out_proj"]


def add_text_encoder_lora(text_encoder: torch.nn.Module, rank: int, alpha: float | None = None) -> None:
    """Freeze the text encoder and add trainable LoRA adapters to its attention projections.

    The adapters are injected with peft itself: transformers 5's own `add_adapter` demands peft >= 0.22, which is
    not released yet. The config is kept in `peft_config["default"]`, where `save_lora` and peft look for it."""
    from peft import LoraConfig, inject_adapter_in_model

    text_encoder.requires_grad_(False)
    config = LoraConfig(
        r=rank, lora_alpha=alpha or rank, init_lora_weights="gaussian", target_modules=TEXT_ENCODER_LORA_TARGET_MODULES
    )
    inject_adapter_in_model(config, text_encoder, adapter_name="default")
    text_encoder.peft_config = {"default": config}


def save_lora(output_dir: str, unet: torch.nn.Module, text_encoder: torch.nn.Module | None = None) -> str:
    """Write the LoRA adapters of the UNet (and of the text encoder, when given) as
    `pytorch_lora_weights.safetensors` in diffusers' format (the keys `pipeline.load_lora_weights` reads), with each
    adapter's config as metadata: without it the loader takes alpha = rank and silently changes the scale. Returns
    the file's path."""
    from diffusers.loaders import StableDiffusionLoraLoaderMixin
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    text_encoder_parts = {}
    if text_encoder is not None:
        text_encoder_parts = {
            "text_encoder_lora_layers": convert_state_dict_to_diffusers(get_peft_model_state_dict(text_encoder)),
            "text_encoder_lora_adapter_metadata": text_encoder.peft_config["default"].to_dict(),
        }
    StableDiffusionLoraLoaderMixin.save_lora_weights(
        output_dir,
        unet_lora_layers=convert_state_dict_to_diffusers(get_peft_model_state_dict(unet)),
        unet_lora_adapter_metadata=unet.peft_config["default"].to_dict(),
        **text_encoder_parts,
    )
    return os.path.join(output_dir, "pytorch_lora_weights.safetensors")


def check_space_base(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """A folder that holds no base pipeline (a ControlNet, LoRA weights) runs as a Space only when the Space can load
    the base: from the Hub, not from a folder on this machine."""
    if args.space and os.path.isdir(args.pretrained_model_name_or_path):
        parser.error(
            f"--space: the Space would load the base pipeline from {args.pretrained_model_name_or_path}, a folder on "
            "this machine (the saved folder does not hold it): give its Hub id as --pretrained_model_name_or_path"
        )


def local_folder(path: str) -> str:
    """`path` itself when it is a folder, else the local snapshot of the Hub repo it names (downloaded once)."""
    if os.path.isdir(path):
        return path
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError

    try:
        return snapshot_download(path)
    except HFValidationError:
        raise ValueError(f"{path!r} is neither a local folder nor a Hub repo id: check the path") from None


def encode_text(text_encoder: torch.nn.Module, tokenizer, texts: list[str], device) -> torch.Tensor:
    """The text encoder's last hidden states of `texts`, padded to the tokenizer's `model_max_length` (what the
    latent diffusion pipelines give the UNet)."""
    input_ids = tokenizer(
        texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids
    return text_encoder(input_ids.to(device))[0]


def first_stage_latents(vae: torch.nn.Module, pixel_values: torch.Tensor, generator=None) -> torch.Tensor:
    """The first stage's unscaled latents of `pixel_values`: a sample of the posterior (drawn from `generator`) for a
    VAE (`encode(x).latent_dist`), the encoder's output before quantisation for a VQ model (`encode(x).latents`,
    which the VQ model's `decode` quantises, as in Rombach et al.'s VQ-regularised first stages)."""
    encoded = vae.encode(pixel_values.to(vae.dtype))
    if hasattr(encoded, "latent_dist"):
        return encoded.latent_dist.sample(generator=generator)
    return encoded.latents


@torch.no_grad()
def encode_latents(vae: torch.nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
    """The frozen first stage's latents of `pixel_values` ([`first_stage_latents`]), scaled by its
    `scaling_factor`."""
    return first_stage_latents(vae, pixel_values) * vae.config.scaling_factor


def noised_latents(latents: torch.Tensor, noise_scheduler, noise_offset: float):
    """Algorithm 1 of Ho et al. on `latents`: the noise, one uniform timestep per latent, and the noised latents."""
    noise = training_noise(latents, noise_offset)
    timesteps = sample_timesteps(latents.shape[0], noise_scheduler.config.num_train_timesteps, latents.device)
    return noise, timesteps, noise_scheduler.add_noise(latents, noise, timesteps)


def denoising_loss(prediction, latents, noise, timesteps, noise_scheduler, args: argparse.Namespace) -> torch.Tensor:
    """The mean squared error of `prediction` against the target of `--prediction_type`, min-SNR weighted when
    `--snr_gamma` is given."""
    from ..losses.diffusion import diffusion_loss, diffusion_target, min_snr_loss_weights

    alphas_cumprod = noise_scheduler.alphas_cumprod
    target = diffusion_target(args.prediction_type, latents, noise, timesteps, alphas_cumprod)
    weights = None
    if args.snr_gamma is not None:
        weights = min_snr_loss_weights(timesteps, alphas_cumprod, args.snr_gamma, args.prediction_type)
    return diffusion_loss(prediction, target, weights)


def fit_data_to_base(args: argparse.Namespace, image_size: tuple[int, int], image_channels: int) -> None:
    """Set `--resolution` and `--color_mode` to those of a base model that makes `image_size` images of
    `image_channels` channels when they were not given; one-line errors for values the base cannot take."""
    height, width = image_size
    if height != width:
        raise ValueError(f"the base model makes {width}x{height} images; hfgen trains on square ones only")
    if args.resolution is None:
        args.resolution = height
    elif args.resolution != height:
        raise ValueError(
            f"--resolution {args.resolution} but the base model makes {height}px images: leave --resolution out, or "
            f"pass --resolution {height}"
        )
    base_mode = "L" if image_channels == 1 else "RGB"
    if args.color_mode is None:
        args.color_mode = base_mode
    elif args.color_mode != base_mode:
        raise ValueError(
            f"--color_mode {args.color_mode} but the base model's first stage takes {image_channels}-channel images: "
            f"leave --color_mode out, or pass --color_mode {base_mode}"
        )


def base_training_schedule(scheduler_config, args: argparse.Namespace):
    """The training noise schedule of a base model (a DDPM scheduler with its betas and prediction type, whatever
    scheduler it samples with); sets `args.prediction_type` to the base's, which the loss targets."""
    from diffusers import DDPMScheduler

    noise_scheduler = DDPMScheduler.from_config(scheduler_config)
    args.prediction_type = noise_scheduler.config.prediction_type
    return noise_scheduler
