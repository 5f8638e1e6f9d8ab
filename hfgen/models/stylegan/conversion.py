"""Published StyleGAN 2 generators as hfgen's `StyleGANGenerator`: NVIDIA's StyleGAN2-ADA snapshots and rosinality's
stylegan2-pytorch checkpoints, the config from the network's constructor arguments (or its weights' shapes), the
weights renamed.

The network comes as a state dict in NVIDIA's names (`mapping.fc0.weight`, `synthesis.b8.conv0.affine.bias`, ...):
either the `state_dict()` of a live network, or [`record_state_dict`] of the inert record that
`checkpoint_reading.read_checkpoint` makes of a `network-snapshot.pkl` (no NVIDIA code runs). Both networks keep the
same stored conventions (N(0, 1) / lr-multiplier weights scaled at run time, biases multiplied by the lr-multiplier),
so a weight is copied as it is, with two reshapes: NVIDIA's noise strength is one scalar per layer where hfgen's is one
per channel (the scalar is repeated), and its constant noise maps are (height, width) where hfgen's are (1, 1, height,
width).

NVIDIA's StyleGAN3 snapshots (stylegan3-t and stylegan3-r) become an `"alias_free"` generator: the config from the
constructor arguments, checked against the attributes each synthesis layer recorded (sizes, sampling rates, cutoffs,
channels, padding); the weights and the buffers that carry state (Fourier frequencies and phases, the user
`transform`, the magnitude averages) renamed; the resampling filters, which hfgen designs again from the config,
compared with the recorded ones, and the file refused if they differ.

rosinality's checkpoints hold `g_ema` as a state dict (and its training flags, or, for weights converted from
TensorFlow, `latent_avg`). Its generator is NVIDIA's at config F with other names: the same equalised layers, FIR
filter, modulated convolutions and skip outputs, channels `min(16384 * channel_multiplier // r, 512)`, RGB only, and
no running average of w (its truncation takes a mean latent as an argument): the converted generator's `w_avg` is the
checkpoint's `latent_avg`, else the mean of 10,000 mapped z drawn with seed 0, as rosinality's `mean_latent` draws it.
"""

import os

import numpy
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


# NVIDIA StyleGAN3 `Generator` constructor arguments and the hfgen config fields they become (`None`: how the network
# is run, not what it computes).
STYLEGAN3_ARGUMENTS = {
    "channel_base": "channel_base",
    "channel_max": "channel_max",
    "num_layers": "num_synthesis_layers",
    "num_critical": "num_critical_layers",
    "first_cutoff": "first_cutoff",
    "first_stopband": "first_stopband",
    "last_stopband_rel": "last_stopband_ratio",
    "margin_size": "margin_size",
    "output_scale": "output_scale",
    "filter_size": "filter_size",
    "lrelu_upsampling": "lrelu_upsampling",
    "magnitude_ema_beta": "magnitude_ema_beta",
    "conv_clamp": "conv_clamp",
    "conv_kernel": None,  # with use_radial_filters: the equivariance
    "use_radial_filters": None,
    "num_fp16_res": None,  # precision on CUDA only
}
# (conv_kernel, use_radial_filters) of NVIDIA's two StyleGAN3 configs
EQUIVARIANCE_OF = {(3, False): "translation", (1, True): "rotation"}


def nvidia_stylegan3_config(init_kwargs: dict) -> StyleGANConfig:
    """The hfgen config of an NVIDIA StyleGAN3 `Generator(**init_kwargs)` (its defaults where an argument is absent);
    what hfgen cannot represent is a `ValueError` naming it."""
    base = {"z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs"}
    unknown = sorted(set(init_kwargs) - base - set(STYLEGAN3_ARGUMENTS))
    if unknown:
        raise ValueError(f"the StyleGAN3 generator has arguments hfgen does not know: {unknown}")
    mapping = dict(init_kwargs.get("mapping_kwargs") or {})
    unknown = sorted(set(mapping) - {"num_layers", "lr_multiplier", "w_avg_beta"})
    if unknown:
        raise ValueError(f"the StyleGAN3 mapping network has arguments hfgen does not know: {unknown}")
    kernel_and_radial = (init_kwargs.get("conv_kernel", 3), bool(init_kwargs.get("use_radial_filters", False)))
    if kernel_and_radial not in EQUIVARIANCE_OF:
        raise ValueError(
            f"the StyleGAN3 generator has conv_kernel={kernel_and_radial[0]} with use_radial_filters="
            f"{kernel_and_radial[1]}: hfgen holds stylegan3-t (3, False) and stylegan3-r (1, True)"
        )
    synthesis = {
        field: init_kwargs[argument]
        for argument, field in STYLEGAN3_ARGUMENTS.items()
        if field is not None and argument in init_kwargs
    }
    return StyleGANConfig(
        resolution=init_kwargs["img_resolution"],
        num_channels=init_kwargs["img_channels"],
        latent_dim=init_kwargs["z_dim"],
        w_dim=init_kwargs["w_dim"],
        num_classes=init_kwargs.get("c_dim", 0),
        mapping_layers=mapping.get("num_layers", 2),
        mapping_lr_multiplier=mapping.get("lr_multiplier", 0.01),
        w_avg_beta=mapping.get("w_avg_beta", 0.998),
        generator_architecture="alias_free",
        use_noise=False,
        equivariance=EQUIVARIANCE_OF[kernel_and_radial],
        **{"channel_base": 32768, "channel_max": 512, "conv_clamp": 256, **synthesis},
    )


def stylegan3_layer_names(state: dict[str, torch.Tensor]) -> list[str]:
    """NVIDIA's synthesis layer names (`L{index}_{size}_{channels}`) in order of their index."""
    names = {name.split(".")[1] for name in state if name.startswith("synthesis.L")}
    return sorted(names, key=lambda name: int(name[1:].split("_")[0]))


def nvidia_stylegan3_state_dict(state: dict[str, torch.Tensor], config: StyleGANConfig) -> dict[str, torch.Tensor]:
    """NVIDIA's StyleGAN3 generator weights and state buffers under hfgen's names (its resampling filters left out:
    see [`check_stylegan3_record`])."""
    converted = {"mapping.w_avg": state["mapping.w_avg"]}
    if config.num_classes:
        converted["mapping.class_embedding.weight"] = state["mapping.embed.weight"]
        converted["mapping.class_embedding.bias"] = state["mapping.embed.bias"]
    for index in range(config.mapping_layers):
        for kind in ("weight", "bias"):
            converted[f"mapping.layers.{index}.{kind}"] = state[f"mapping.fc{index}.{kind}"]
    for ours, theirs in (
        ("weight", "weight"),
        ("affine.weight", "affine.weight"),
        ("affine.bias", "affine.bias"),
        ("transform", "transform"),
        ("frequencies", "freqs"),
        ("phases", "phases"),
    ):
        converted[f"synthesis.input.{ours}"] = state[f"synthesis.input.{theirs}"]
    for index, name in enumerate(stylegan3_layer_names(state)):
        for kind in ("weight", "bias", "magnitude_ema", "affine.weight", "affine.bias"):
            converted[f"synthesis.layers.{index}.{kind}"] = state[f"synthesis.{name}.{kind}"]
    return converted


def check_stylegan3_record(record: PickledObject, state: dict[str, torch.Tensor], generator) -> None:
    """Refuse (`ValueError`) an NVIDIA StyleGAN3 generator whose synthesis layers, as they recorded themselves, differ
    from those hfgen builds from its config: layer count, sizes, sampling rates, cutoffs, channels, kernel, padding and
    the resampling filters (which NVIDIA saves and hfgen designs again)."""
    names = stylegan3_layer_names(state)
    layers = generator.synthesis.layers
    if len(names) != len(layers):
        raise ValueError(f"the snapshot has {len(names)} synthesis layers where its arguments give {len(layers)}")
    modules = record.attributes["_modules"]["synthesis"].attributes.get("_modules", {})
    layout = generator.synthesis.layout
    for index, (name, layer) in enumerate(zip(names, layers, strict=True)):
        recorded = modules[name].attributes if isinstance(modules.get(name), PickledObject) else {}
        previous = max(index - 1, 0)
        expected = {
            "in_size": layer.in_size,
            "out_size": layer.out_size,
            "in_channels": layer.in_channels,
            "out_channels": layer.out_channels,
            "in_sampling_rate": layout["sampling_rate"][previous],
            "out_sampling_rate": layout["sampling_rate"][index],
            "in_cutoff": layout["cutoff"][previous],
            "out_cutoff": layout["cutoff"][index],
            "in_half_width": layout["half_width"][previous],
            "out_half_width": layout["half_width"][index],
            "conv_kernel": layer.kernel_size,
            "up_factor": layer.up_factor,
            "down_factor": layer.down_factor,
            "padding": list(layer.padding),
        }
        for attribute, value in expected.items():
            if attribute not in recorded:
                continue
            actual = numpy.asarray(recorded[attribute], dtype=numpy.float64).reshape(-1)
            if not numpy.allclose(actual, numpy.asarray(value, dtype=numpy.float64).reshape(-1), rtol=1e-6):
                raise ValueError(
                    f"synthesis layer {name} recorded {attribute}={recorded[attribute]!r} where hfgen's layout from "
                    f"the snapshot's arguments gives {value!r}: not converted"
                )
        for buffer in ("up_filter", "down_filter"):
            ours, theirs = getattr(layer, buffer), state.get(f"synthesis.{name}.{buffer}")
            same = (ours is None and theirs is None) or (
                ours is not None
                and theirs is not None
                and ours.shape == theirs.shape
                and torch.allclose(ours, theirs.float(), rtol=1e-5, atol=1e-7)
            )
            if not same:
                shapes = [None if t is None else tuple(t.shape) for t in (theirs, ours)]
                raise ValueError(
                    f"synthesis layer {name}'s {buffer} (shape {shapes[0]}) differs from the one hfgen designs from "
                    f"the snapshot's arguments (shape {shapes[1]}): not converted"
                )


def plain_value(value):
    """A record's value with NVIDIA's `dnnlib.EasyDict` records (dicts) turned into dicts, recursively."""
    if isinstance(value, PickledObject) and value.class_name == "EasyDict":
        return {key: plain_value(item) for key, item in value.items.items()}
    if isinstance(value, dict):
        return {key: plain_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain_value(item) for item in value)
    return value


def convert_nvidia_snapshot(path: str, network: str = "G_ema", snapshot=None):
    """The `StyleGANGenerator` of an NVIDIA StyleGAN2-ADA or StyleGAN3 `network-snapshot.pkl` (its `network`, the
    moving average of the generator's weights by default), read without running any code from the file (or given,
    already read)."""
    from .checkpoint_reading import read_checkpoint
    from .modeling_stylegan import StyleGANGenerator

    snapshot = read_checkpoint(path) if snapshot is None else snapshot
    record = snapshot.get(network) if isinstance(snapshot, dict) else None
    if not isinstance(record, PickledObject) or record.class_name != "Generator":
        held = sorted(snapshot) if isinstance(snapshot, dict) else type(snapshot).__name__
        raise ValueError(f"{path} holds no NVIDIA generator under {network!r} (it holds {held})")
    init_kwargs = plain_value(record.attributes.get("_init_kwargs"))
    if not isinstance(init_kwargs, dict) or "img_resolution" not in init_kwargs:
        raise ValueError(
            f"{path}: the {network} record has no constructor arguments (_init_kwargs) to rebuild it from"
        )
    state = record_state_dict(record)
    if any(name.startswith("synthesis.input.") for name in state):  # StyleGAN3: Fourier-feature input
        config = nvidia_stylegan3_config(init_kwargs)
        generator = StyleGANGenerator(config)
        try:
            check_stylegan3_record(record, state, generator)
            converted = nvidia_stylegan3_state_dict(state, config)
        except (KeyError, ValueError) as error:
            raise ValueError(f"{path}: the {network} StyleGAN3 generator cannot be converted ({error})") from None
    else:
        config = nvidia_generator_config(init_kwargs)
        generator = StyleGANGenerator(config)
        converted = nvidia_generator_state_dict(state, config)
    missing, unexpected = generator.load_state_dict(converted, strict=False)
    # without noise inputs, NVIDIA saves no constant noise; hfgen's buffers stay unused
    missing = [name for name in missing if not (name.startswith("synthesis.noise_const_") and not config.use_noise)]
    if missing or unexpected:
        raise ValueError(f"{path}: the {network} weights do not fit the converted config (missing {missing[:3]})")
    return generator.eval()


# NVIDIA's discriminator architectures and hfgen's names for them ("skip", images fed in at every resolution, has no
# hfgen counterpart).
DISCRIMINATOR_ARCHITECTURES = {"resnet": "resnet", "orig": "plain"}


def nvidia_discriminator_mismatch(init_kwargs: dict, config: StyleGANConfig) -> str | None:
    """Why an NVIDIA `Discriminator(**init_kwargs)` cannot sit beside a generator of `config` (hfgen's two networks
    share one config), or None when it can."""
    block = dict(init_kwargs.get("block_kwargs") or {})
    epilogue = dict(init_kwargs.get("epilogue_kwargs") or {})
    if init_kwargs.get("c_dim", 0):
        return "it is conditional, and NVIDIA maps labels through a network where hfgen projects onto an embedding"
    if init_kwargs.get("architecture", "resnet") not in DISCRIMINATOR_ARCHITECTURES:
        return f"its architecture is {init_kwargs['architecture']!r}: hfgen has 'resnet' and 'orig' (plain)"
    expected = {
        "img_resolution": config.resolution,
        "img_channels": config.num_channels,
        "channel_base": config.channel_base,
        "channel_max": config.channel_max,
        "conv_clamp": config.conv_clamp,
    }
    found = {name: init_kwargs.get(name, {"channel_base": 32768, "channel_max": 512}.get(name)) for name in expected}
    found["resample_filter"] = list(block.get("resample_filter", [1, 3, 3, 1]))
    expected["resample_filter"] = config.resample_filter
    for name, value in expected.items():
        if found[name] != value:
            return f"its {name} is {found[name]} where the generator's is {value}"
    if block.get("activation", "lrelu") != "lrelu" or epilogue.get("activation", "lrelu") != "lrelu":
        return "it uses another activation than lrelu"
    if epilogue.get("mbstd_group_size", 4) is None or epilogue.get("mbstd_num_channels", 1) < 1:
        return "its minibatch standard deviation layer is off or spans the whole batch"
    return None


def nvidia_discriminator_state_dict(state: dict[str, torch.Tensor], config: StyleGANConfig) -> dict:
    """NVIDIA's discriminator weights under hfgen's names, for a `StyleGANDiscriminator(config)`."""
    resolutions = config.resolutions[::-1]  # top resolution down to 4, as hfgen's blocks run
    converted = {
        "from_image.weight": state[f"b{resolutions[0]}.fromrgb.weight"],
        "from_image.bias": state[f"b{resolutions[0]}.fromrgb.bias"],
    }
    for index, resolution in enumerate(resolutions[:-1]):
        for name in ("conv0.weight", "conv0.bias", "conv1.weight", "conv1.bias", "skip.weight"):
            if f"b{resolution}.{name}" in state:
                converted[f"blocks.{index}.{name}"] = state[f"b{resolution}.{name}"]
    for source, target in (("conv", "conv"), ("fc", "fc"), ("out", "output")):
        for kind in ("weight", "bias"):
            converted[f"{target}.{kind}"] = state[f"b4.{source}.{kind}"]
    return converted


def convert_nvidia_discriminator(snapshot, config: StyleGANConfig, network: str = "D"):
    """`(discriminator, None)` from an NVIDIA snapshot's `network` beside a generator of `config`, or `(None, why)`
    when the snapshot has none hfgen can hold (read as [`convert_nvidia_snapshot`] reads the generator)."""
    from .modeling_stylegan import StyleGANDiscriminator

    record = snapshot.get(network) if isinstance(snapshot, dict) else None
    if not isinstance(record, PickledObject) or record.class_name != "Discriminator":
        return None, f"the snapshot holds no discriminator under {network!r}"
    init_kwargs = plain_value(record.attributes.get("_init_kwargs"))
    if not isinstance(init_kwargs, dict):
        return None, "the discriminator record has no constructor arguments (_init_kwargs)"
    mismatch = nvidia_discriminator_mismatch(init_kwargs, config)
    if mismatch is not None:
        return None, mismatch
    config = StyleGANConfig.from_dict(
        {
            **config.to_dict(),
            "discriminator_architecture": DISCRIMINATOR_ARCHITECTURES[init_kwargs.get("architecture", "resnet")],
            "mbstd_group_size": (init_kwargs.get("epilogue_kwargs") or {}).get("mbstd_group_size", 4),
            "mbstd_num_channels": (init_kwargs.get("epilogue_kwargs") or {}).get("mbstd_num_channels", 1),
        }
    )
    discriminator = StyleGANDiscriminator(config)
    try:
        converted = nvidia_discriminator_state_dict(record_state_dict(record), config)
    except KeyError as error:
        return None, f"its weights lack {error}"
    missing, unexpected = discriminator.load_state_dict(converted, strict=False)
    if missing or unexpected:
        return None, f"its weights do not fit (missing {missing[:3]}, unexpected {unexpected[:3]})"
    return discriminator.eval(), None


def save_converted_folder(checkpoint: str, folder: str, network: str | None = None):
    """Convert `checkpoint` (see [`convert_checkpoint`]) into a new folder laid out as `train_stylegan.py` leaves
    its runs: the pipeline, the generator at the top, the discriminator in `discriminator/` when it converts, a grid
    of samples and a model card naming the source file and its SHA-256; returns `(pipeline, source)`. An existing
    non-empty `folder` is refused: nothing is overwritten."""
    import hashlib

    from ...model_card import render_model_card
    from ...pipelines.sampling import image_grid, sample_images
    from ...pipelines.stylegan import StyleGANPipeline
    from ...training.adversarial import save_adversarial_weights

    if os.path.isdir(folder) and os.listdir(folder):
        raise ValueError(f"{folder} exists and is not empty: give a new folder (nothing is overwritten)")
    generator, source = convert_checkpoint(checkpoint, network)
    pipeline = StyleGANPipeline(stylegan=generator)
    pipeline.set_progress_bar_config(disable=True)
    # the layout of train_stylegan.py's folders, so that `--pretrained_model_name_or_path <folder>` fine-tunes it
    save_adversarial_weights(folder, pipeline, generator, source["discriminator"])
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
        tags=["stylegan", "stylegan3" if generator.config.generator_architecture == "alias_free" else "stylegan2"]
        + ["converted"],
        template_values=dict(
            repo_id_or_path=folder,
            source_name=os.path.basename(checkpoint),
            source_sha256=digest.hexdigest(),
            source_format=source["format"],
            network=source["network"],
            w_avg=source["w_avg"],
            discriminator_note=source["discriminator_note"],
            config=generator.config.to_dict(),
            samples_image="samples.png",
        ),
    )
    card.save(os.path.join(folder, "README.md"))
    return pipeline, source


def rosinality_generator_config(state: dict[str, torch.Tensor]) -> StyleGANConfig:
    """The hfgen config of a rosinality `Generator`, read from the shapes of its `g_ema` state dict."""
    mapping_layers = sum(1 for name in state if name.startswith("style.") and name.endswith(".weight"))
    style_dim = state["style.1.weight"].shape[0]
    rgb_outputs = {name.split(".")[1] for name in state if name.startswith("to_rgbs.")}  # one per block above 4 px
    resolution = 2 ** (len(rgb_outputs) + 2)
    # channels are min(16384 * channel_multiplier // r, 512): the most at 4 px, and the base read at 64 px when the
    # generator is that large (below, any base that keeps the most channels up to 32 px holds it)
    channel_max = state["input.input"].shape[1]
    channel_base = channel_max * 32
    if resolution >= 64:
        channel_base = state["convs.6.conv.weight"].shape[1] * 64  # the first layer at 64 px
    return StyleGANConfig(
        resolution=resolution,
        num_channels=3,
        latent_dim=style_dim,
        w_dim=style_dim,
        mapping_layers=mapping_layers,
        mapping_lr_multiplier=0.01,
        style_block="modulated",
        generator_architecture="skip",
        channel_base=channel_base,
        channel_max=channel_max,
        resample_filter=[1, 3, 3, 1],
    )


def rosinality_generator_state_dict(state: dict[str, torch.Tensor], config: StyleGANConfig) -> dict:
    """rosinality's generator weights under hfgen's names (all but `mapping.w_avg`, which it does not keep)."""
    converted = {}
    for index in range(config.mapping_layers):
        for kind in ("weight", "bias"):
            converted[f"mapping.layers.{index}.{kind}"] = state[f"style.{index + 1}.{kind}"]
    converted["synthesis.blocks.0.constant"] = state["input.input"][0]
    layers = [("conv1", "synthesis.blocks.0.layers.0")]
    images = [("to_rgb1", "synthesis.blocks.0.to_image")]
    for block in range(1, len(config.resolutions)):
        layers += [(f"convs.{2 * block - 2}", f"synthesis.blocks.{block}.layers.0")]
        layers += [(f"convs.{2 * block - 1}", f"synthesis.blocks.{block}.layers.1")]
        images += [(f"to_rgbs.{block - 1}", f"synthesis.blocks.{block}.to_image")]
    for index, (source, target) in enumerate(layers):
        weight = state[f"{source}.conv.weight"][0]
        converted[f"{target}.conv.weight"] = weight
        converted[f"{target}.conv.affine.weight"] = state[f"{source}.conv.modulation.weight"]
        converted[f"{target}.conv.affine.bias"] = state[f"{source}.conv.modulation.bias"]
        converted[f"{target}.bias"] = state[f"{source}.activate.bias"]
        converted[f"{target}.noise.strength"] = state[f"{source}.noise.weight"].reshape(1).repeat(weight.shape[0])
        converted[f"synthesis.noise_const_{index}"] = state[f"noises.noise_{index}"]
    for source, target in images:
        converted[f"{target}.conv.weight"] = state[f"{source}.conv.weight"][0]
        converted[f"{target}.conv.affine.weight"] = state[f"{source}.conv.modulation.weight"]
        converted[f"{target}.conv.affine.bias"] = state[f"{source}.conv.modulation.bias"]
        converted[f"{target}.bias"] = state[f"{source}.bias"].reshape(-1)
    return converted


def rosinality_discriminator_state_dict(state: dict[str, torch.Tensor], config: StyleGANConfig) -> dict:
    """rosinality's discriminator weights (`d`) under hfgen's names. Its layers keep their bias in the activation
    that follows (`FusedLeakyReLU`), and a downsampling convolution has its blur first, hence the module indices."""
    converted = {"from_image.weight": state["convs.0.0.weight"], "from_image.bias": state["convs.0.1.bias"]}
    for index in range(len(config.resolutions) - 1):
        source, target = f"convs.{index + 1}", f"blocks.{index}"
        converted[f"{target}.conv0.weight"] = state[f"{source}.conv1.0.weight"]
        converted[f"{target}.conv0.bias"] = state[f"{source}.conv1.1.bias"]
        converted[f"{target}.conv1.weight"] = state[f"{source}.conv2.1.weight"]
        converted[f"{target}.conv1.bias"] = state[f"{source}.conv2.2.bias"]
        converted[f"{target}.skip.weight"] = state[f"{source}.skip.1.weight"]
    converted["conv.weight"], converted["conv.bias"] = state["final_conv.0.weight"], state["final_conv.1.bias"]
    for source, target in (("final_linear.0", "fc"), ("final_linear.1", "output")):
        converted[f"{target}.weight"], converted[f"{target}.bias"] = state[f"{source}.weight"], state[f"{source}.bias"]
    return converted


def convert_rosinality_discriminator(checkpoint: dict, config: StyleGANConfig, network: str = "d"):
    """`(discriminator, None)` from a rosinality checkpoint's `network` beside a generator of `config`, or `(None,
    why)` when it has none hfgen can hold."""
    from .modeling_stylegan import StyleGANDiscriminator

    state = checkpoint.get(network)
    if not isinstance(state, dict) or "final_conv.0.weight" not in state:
        return None, f"the checkpoint holds no discriminator under {network!r}"
    discriminator = StyleGANDiscriminator(config)
    try:
        missing, unexpected = discriminator.load_state_dict(
            rosinality_discriminator_state_dict(state, config), strict=False
        )
    except (KeyError, RuntimeError) as error:
        return None, f"its weights do not fit the generator's config ({str(error).strip().splitlines()[0]})"
    if missing or unexpected:
        return None, f"its weights do not fit (missing {missing[:3]}, unexpected {unexpected[:3]})"
    return discriminator.eval(), None


# Mapped z whose mean stands for rosinality's missing w average, and their seed (see the module docstring).
MEAN_LATENT_SAMPLES = 10_000


def convert_rosinality_checkpoint(path: str, checkpoint: dict, network: str = "g_ema"):
    """The `StyleGANGenerator` of a rosinality stylegan2-pytorch checkpoint's `network` (read already)."""
    from .modeling_stylegan import StyleGANGenerator

    state = checkpoint.get(network)
    if not isinstance(state, dict) or "input.input" not in state:
        raise ValueError(f"{path} holds no rosinality generator under {network!r} (it holds {sorted(checkpoint)})")
    try:
        config = rosinality_generator_config(state)
        generator = StyleGANGenerator(config)
        missing, unexpected = generator.load_state_dict(rosinality_generator_state_dict(state, config), strict=False)
    except (KeyError, RuntimeError) as error:  # a name or a shape rosinality's Generator does not have
        reason = str(error).strip().splitlines()[0]
        raise ValueError(f"{path}: {network} is not a rosinality Generator hfgen can hold ({reason})") from None
    if missing != ["mapping.w_avg"] or unexpected:
        raise ValueError(f"{path}: the {network} weights do not fit the converted config (missing {missing[:3]})")
    generator.eval()
    with torch.no_grad():
        if checkpoint.get("latent_avg") is not None:
            generator.mapping.w_avg.copy_(checkpoint["latent_avg"].reshape(-1))
        else:
            z = torch.randn(MEAN_LATENT_SAMPLES, config.latent_dim, generator=torch.Generator().manual_seed(0))
            generator.mapping.w_avg.copy_(generator.mapping(z).mean(dim=0))
    return generator


def convert_checkpoint(path: str, network: str | None = None) -> tuple:
    """`(generator, source)`: the `StyleGANGenerator` of an NVIDIA StyleGAN2-ADA or StyleGAN3 snapshot (`G_ema` by
    default) or a rosinality checkpoint (`g_ema` by default), read without running any code from the file, and what
    it came from: `format`, `network`, how its w average was obtained, and its `discriminator` (`D` / `d`, for
    fine-tuning) or None with `discriminator_note` saying why."""
    from .checkpoint_reading import read_checkpoint

    checkpoint = read_checkpoint(path)
    if (
        isinstance(checkpoint, dict)
        and "g_ema" in checkpoint
        and not isinstance(checkpoint.get("G_ema"), PickledObject)
    ):
        network = network or "g_ema"
        generator = convert_rosinality_checkpoint(path, checkpoint, network)
        if checkpoint.get("latent_avg") is not None:
            w_avg = "the checkpoint's latent_avg"
        else:
            w_avg = f"the mean of {MEAN_LATENT_SAMPLES:,} mapped z drawn with seed 0 (the checkpoint keeps none)"
        discriminator, note = convert_rosinality_discriminator(checkpoint, generator.config)
        source = {"format": "rosinality stylegan2-pytorch checkpoint", "network": network, "w_avg": w_avg}
        return generator, {**source, "discriminator": discriminator, "discriminator_note": note}
    network = network or "G_ema"
    generator = convert_nvidia_snapshot(path, network, checkpoint)
    kind = "StyleGAN3" if generator.config.generator_architecture == "alias_free" else "StyleGAN2-ADA"
    discriminator, note = convert_nvidia_discriminator(checkpoint, generator.config)
    source = {"format": f"NVIDIA {kind} snapshot", "network": network, "w_avg": "the snapshot's w_avg"}
    return generator, {**source, "discriminator": discriminator, "discriminator_note": note}
