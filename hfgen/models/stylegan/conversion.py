"""NVIDIA StyleGAN2-ADA generators as hfgen's `StyleGANGenerator`: the config from the network's constructor
arguments, the weights renamed.

The network comes as a state dict in NVIDIA's names (`mapping.fc0.weight`, `synthesis.b8.conv0.affine.bias`, ...):
either the `state_dict()` of a live network, or [`record_state_dict`] of the inert record that
`checkpoint_reading.read_checkpoint` makes of a `network-snapshot.pkl` (no NVIDIA code runs). Both networks keep the
same stored conventions (N(0, 1) / lr-multiplier weights scaled at run time, biases multiplied by the lr-multiplier),
so a weight is copied as it is, with two reshapes: NVIDIA's noise strength is one scalar per layer where hfgen's is one
per channel (the scalar is repeated), and its constant noise maps are (height, width) where hfgen's are (1, 1, height,
width).
"""

import os

import torch

from .checkpoint_reading import PickledObject
from .configuration_stylegan import StyleGANConfig

# NVIDIA's generator architectures and hfgen's names for them: an RGB output at every resolution, summed ("skip"), or
# at the last one only ("orig").
ARCHITECTURES = {"skip": "skip", "orig": "plain"}


def record_state_dict(record: PickledObject, prefix: str = "") -> dict[str, torch.Tensor]:
    """The `state_dict()` a pickled `torch.nn.Module` record would give: its `_parameters` and persistent `_buffers`,
    then its `_modules`' recursively, under dotted names."""
    attributes = record.attributes
    state = {}
    non_persistent = set(attributes.get("_non_persistent_buffers_set") or ())
    for group in ("_parameters", "_buffers"):
        for name, tensor in (attributes.get(group) or {}).items():
            if tensor is not None and name not in non_persistent:
                state[prefix + name] = tensor.detach() if isinstance(tensor, torch.Tensor) else tensor
    for name, child in (attributes.get("_modules") or {}).items():
        if isinstance(child, PickledObject):
            state.update(record_state_dict(child, f"{prefix}{name}."))
    return state


def nvidia_generator_config(init_kwargs: dict) -> StyleGANConfig:
    """The hfgen config of an NVIDIA StyleGAN2-ADA `Generator(**init_kwargs)`; what hfgen cannot represent is a
    `ValueError` naming it."""
    mapping = dict(init_kwargs.get("mapping_kwargs") or {})
    synthesis = dict(init_kwargs.get("synthesis_kwargs") or {})
    architecture = synthesis.get("architecture", "skip")
    if architecture not in ARCHITECTURES:
        raise ValueError(f"the generator's architecture is {architecture!r}: hfgen converts 'skip' and 'orig' only")
    for name in ("embed_features", "layer_features"):
        if mapping.get(name) not in (None, init_kwargs["w_dim"]):
            raise ValueError(f"the mapping network's {name}={mapping[name]} differs from w_dim: hfgen cannot hold it")
    if mapping.get("activation", "lrelu") != "lrelu" or synthesis.get("activation", "lrelu") != "lrelu":
        raise ValueError("the generator uses another activation than lrelu: hfgen cannot hold it")
    return StyleGANConfig(
        resolution=init_kwargs["img_resolution"],
        num_channels=init_kwargs["img_channels"],
        latent_dim=init_kwargs["z_dim"],
        w_dim=init_kwargs["w_dim"],
        num_classes=init_kwargs.get("c_dim", 0),
        mapping_layers=mapping.get("num_layers", 8),
        mapping_lr_multiplier=mapping.get("lr_multiplier", 0.01),
        w_avg_beta=mapping.get("w_avg_beta", 0.995),
        style_block="modulated",
        generator_architecture=ARCHITECTURES[architecture],
        channel_base=synthesis.get("channel_base", 32768),
        channel_max=synthesis.get("channel_max", 512),
        use_noise=synthesis.get("use_noise", True),
        resample_filter=list(synthesis.get("resample_filter", [1, 3, 3, 1])),
        conv_clamp=synthesis.get("conv_clamp"),
    )


def nvidia_generator_state_dict(state: dict[str, torch.Tensor], config: StyleGANConfig) -> dict[str, torch.Tensor]:
    """NVIDIA's generator weights under hfgen's names, for a `StyleGANGenerator(config)`."""
    converted = {"mapping.w_avg": state["mapping.w_avg"]}
    if config.num_classes:
        converted["mapping.class_embedding.weight"] = state["mapping.embed.weight"]
        converted["mapping.class_embedding.bias"] = state["mapping.embed.bias"]
    for index in range(config.mapping_layers):
        for kind in ("weight", "bias"):
            converted[f"mapping.layers.{index}.{kind}"] = state[f"mapping.fc{index}.{kind}"]
    layer_index = 0
    for block_index, resolution in enumerate(config.resolutions):
        source, target = f"synthesis.b{resolution}", f"synthesis.blocks.{block_index}"
        if resolution == 4:
            converted[f"{target}.constant"] = state[f"{source}.const"]
        convs = ["conv1"] if resolution == 4 else ["conv0", "conv1"]
        for layer, conv in enumerate(convs):
            layer_source, layer_target = f"{source}.{conv}", f"{target}.layers.{layer}"
            converted[f"{layer_target}.conv.weight"] = state[f"{layer_source}.weight"]
            converted[f"{layer_target}.conv.affine.weight"] = state[f"{layer_source}.affine.weight"]
            converted[f"{layer_target}.conv.affine.bias"] = state[f"{layer_source}.affine.bias"]
            converted[f"{layer_target}.bias"] = state[f"{layer_source}.bias"]
            if config.use_noise:
                channels = config.channels_at(resolution)
                converted[f"{layer_target}.noise.strength"] = (
                    state[f"{layer_source}.noise_strength"].reshape(1).repeat(channels)
                )
                converted[f"synthesis.noise_const_{layer_index}"] = state[f"{layer_source}.noise_const"][None, None]
            layer_index += 1
        if f"{source}.torgb.weight" in state:
            converted[f"{target}.to_image.conv.weight"] = state[f"{source}.torgb.weight"]
            converted[f"{target}.to_image.conv.affine.weight"] = state[f"{source}.torgb.affine.weight"]
            converted[f"{target}.to_image.conv.affine.bias"] = state[f"{source}.torgb.affine.bias"]
            converted[f"{target}.to_image.bias"] = state[f"{source}.torgb.bias"]
    return converted


def plain_value(value):
    """A record's value with NVIDIA's `dnnlib.EasyDict` records (dicts) turned into dicts, recursively."""
    if isinstance(value, PickledObject) and value.class_name == "EasyDict":
        return {key: plain_value(item) for key, item in value.items.items()}
    if isinstance(value, dict):
        return {key: plain_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain_value(item) for item in value)
    return value


def convert_nvidia_snapshot(path: str, network: str = "G_ema"):
    """The `StyleGANGenerator` of an NVIDIA StyleGAN2-ADA `network-snapshot.pkl` (its `network`, the moving average
    of the generator's weights by default), read without running any code from the file."""
    from .checkpoint_reading import read_checkpoint
    from .modeling_stylegan import StyleGANGenerator

    snapshot = read_checkpoint(path)
    record = snapshot.get(network) if isinstance(snapshot, dict) else None
    if isinstance(snapshot, dict) and "g_ema" in snapshot and record is None:
        raise ValueError(f"{path} is a rosinality stylegan2-pytorch checkpoint: hfgen converts NVIDIA pickles so far")
    if not isinstance(record, PickledObject) or record.class_name != "Generator":
        held = sorted(snapshot) if isinstance(snapshot, dict) else type(snapshot).__name__
        raise ValueError(f"{path} holds no NVIDIA generator under {network!r} (it holds {held})")
    init_kwargs = plain_value(record.attributes.get("_init_kwargs"))
    if not isinstance(init_kwargs, dict) or "img_resolution" not in init_kwargs:
        raise ValueError(
            f"{path}: the {network} record has no constructor arguments (_init_kwargs) to rebuild it from"
        )
    state = record_state_dict(record)
    if any(name.startswith("synthesis.input.") for name in state):
        raise ValueError(f"{path} holds a StyleGAN 3 generator (Fourier-feature input): not converted yet")
    config = nvidia_generator_config(init_kwargs)
    generator = StyleGANGenerator(config)
    converted = nvidia_generator_state_dict(state, config)
    missing, unexpected = generator.load_state_dict(converted, strict=False)
    # without noise inputs, NVIDIA saves no constant noise; hfgen's buffers stay unused
    missing = [name for name in missing if not (name.startswith("synthesis.noise_const_") and not config.use_noise)]
    if missing or unexpected:
        raise ValueError(f"{path}: the {network} weights do not fit the converted config (missing {missing[:3]})")
    return generator.eval()


def save_converted_folder(checkpoint: str, folder: str, network: str = "G_ema"):
    """Convert `checkpoint` (see [`convert_nvidia_snapshot`]) into a new pipeline folder: the pipeline, a grid of
    samples and a model card naming the source file and its SHA-256. An existing non-empty `folder` is refused:
    nothing is overwritten."""
    import hashlib

    from ...model_card import render_model_card
    from ...pipelines.sampling import image_grid, sample_images
    from ...pipelines.stylegan import StyleGANPipeline

    if os.path.isdir(folder) and os.listdir(folder):
        raise ValueError(f"{folder} exists and is not empty: give a new folder (nothing is overwritten)")
    generator = convert_nvidia_snapshot(checkpoint, network)
    pipeline = StyleGANPipeline(stylegan=generator)
    pipeline.set_progress_bar_config(disable=True)
    pipeline.save_pretrained(folder)
    samples = sample_images(pipeline, 16, 0, 16, {"truncation_psi": 0.7, "noise_mode": "const"})
    image_grid(samples, columns=4).save(os.path.join(folder, "samples.png"))
    digest = hashlib.sha256()
    with open(checkpoint, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    card = render_model_card(
        "stylegan_converted",
        os.path.basename(os.path.abspath(folder)),
        [],
        pipeline_tag="unconditional-image-generation",
        tags=["stylegan", "stylegan2", "converted"],
        template_values=dict(
            repo_id_or_path=folder,
            source_name=os.path.basename(checkpoint),
            source_sha256=digest.hexdigest(),
            network=network,
            config=generator.config.to_dict(),
            samples_image="samples.png",
        ),
    )
    card.save(os.path.join(folder, "README.md"))
    return pipeline
