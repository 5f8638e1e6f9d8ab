"""Published StyleGAN 3 weights to hfgen: a stylegan3-t or stylegan3-r snapshot written here in NVIDIA's on-disk
structure (persistent network records named as NVIDIA names them, `L{index}_{size}_{channels}` synthesis layers that
record their sampling schedule, constructor arguments in `_init_kwargs`), from an hfgen generator's weights, comes
back as the same generator through `hfgen convert stylegan`; a snapshot whose recorded filters or schedule differ from
what hfgen designs is refused. That the alias-free generator computes what NVIDIA's code computes is checked against
NVIDIA's own networks by `benchmarks/verify_stylegan_conversion.py`, which needs their code."""

import pickle
import sys

import numpy as np
import pytest
import torch

from hfgen import StyleGANConfig, StyleGANGenerator, StyleGANPipeline
from hfgen.cli import main
from hfgen.models.stylegan.conversion import convert_nvidia_snapshot

from .nvidia_stand_ins import persistent

SOURCE = "raise RuntimeError('NVIDIA source must not run')\n"


def nvidia_stylegan3_modules(generator: StyleGANGenerator) -> dict[str, tuple[str, dict, dict]]:
    """NVIDIA's module tree of the generator: per dotted module path, its class name, its tensors under NVIDIA's
    names (the inverse of hfgen's mapping, written out here) and the attributes NVIDIA's layers record."""
    config, state = generator.config, generator.state_dict()
    modules = {"mapping": ("MappingNetwork", {"w_avg": state["mapping.w_avg"]}, {})}
    for index in range(config.mapping_layers):
        tensors = {kind: state[f"mapping.layers.{index}.{kind}"] for kind in ("weight", "bias")}
        modules[f"mapping.fc{index}"] = ("FullyConnectedLayer", tensors, {})
    if config.num_classes:
        tensors = {kind: state[f"mapping.class_embedding.{kind}"] for kind in ("weight", "bias")}
        modules["mapping.embed"] = ("FullyConnectedLayer", tensors, {})
    synthesis = generator.synthesis
    names = [f"L{index}_{layer.out_size}_{layer.out_channels}" for index, layer in enumerate(synthesis.layers)]
    modules["synthesis"] = ("SynthesisNetwork", {}, {"layer_names": names, "num_ws": config.num_ws})
    tensors = {name: state[f"synthesis.input.{name}"] for name in ("weight", "transform", "phases")}
    tensors["freqs"] = state["synthesis.input.frequencies"]
    fourier = synthesis.input
    recorded = {"size": np.array([fourier.size] * 2), "sampling_rate": fourier.sampling_rate}
    modules["synthesis.input"] = ("SynthesisInput", tensors, dict(recorded, bandwidth=fourier.bandwidth))
    modules["synthesis.input.affine"] = (
        "FullyConnectedLayer",
        {kind: state[f"synthesis.input.affine.{kind}"] for kind in ("weight", "bias")},
        {},
    )
    layout = synthesis.layout
    for index, (name, layer) in enumerate(zip(names, synthesis.layers, strict=True)):
        ours = f"synthesis.layers.{index}"
        tensors = {kind: state[f"{ours}.{kind}"] for kind in ("weight", "bias", "magnitude_ema")}
        for kind in ("up_filter", "down_filter"):  # buffers NVIDIA saves; hfgen designs them again
            if getattr(layer, kind) is not None:
                tensors[kind] = getattr(layer, kind).clone()
        previous = max(index - 1, 0)
        recorded = {
            "in_size": np.array([layer.in_size] * 2),
            "out_size": np.array([layer.out_size] * 2),
            "in_channels": layer.in_channels,
            "out_channels": layer.out_channels,
            "in_sampling_rate": int(layout["sampling_rate"][previous]),
            "out_sampling_rate": int(layout["sampling_rate"][index]),
            "in_cutoff": layout["cutoff"][previous],
            "out_cutoff": layout["cutoff"][index],
            "in_half_width": layout["half_width"][previous],
            "out_half_width": layout["half_width"][index],
            "conv_kernel": layer.kernel_size,
            "up_factor": layer.up_factor,
            "down_factor": layer.down_factor,
            "padding": list(layer.padding),
        }
        modules[f"synthesis.{name}"] = ("SynthesisLayer", tensors, recorded)
        modules[f"synthesis.{name}.affine"] = (
            "FullyConnectedLayer",
            {kind: state[f"{ours}.affine.{kind}"] for kind in ("weight", "bias")},
            {},
        )
    return modules


PARAMETERS = {"weight", "bias"}


def nvidia_network(modules: dict, init_kwargs: dict, persistence, util) -> torch.nn.Module:
    """The module tree, every module pickling as an NVIDIA persistent class."""
    root = torch.nn.Module()
    for path, (class_name, tensors, attributes) in modules.items():
        *parents, leaf = path.split(".")
        parent = root
        for part in parents:
            parent = getattr(parent, part)
        module = torch.nn.Module()
        for name, tensor in tensors.items():
            if name in PARAMETERS:
                module.register_parameter(name, torch.nn.Parameter(tensor.clone()))
            else:
                module.register_buffer(name, tensor.clone())
        for name, value in attributes.items():
            setattr(module, name, value)
        parent.add_module(leaf, module)
        module.nvidia_class_name = class_name
    for module in root.modules():
        if module is not root:
            persistent(module, module.nvidia_class_name, SOURCE, persistence)
    root._init_args, root._init_kwargs = (), util.EasyDict(init_kwargs)
    return persistent(root, "Generator", SOURCE, persistence)


def trained_looking_generator(config: StyleGANConfig) -> StyleGANGenerator:
    torch.manual_seed(0)
    generator = StyleGANGenerator(config).eval()
    with torch.no_grad():  # values where the init leaves zeros or ones: biases, w_avg, magnitudes, the transform
        for parameter in generator.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
        generator.mapping.w_avg.normal_()
        for layer in generator.synthesis.layers:
            layer.magnitude_ema.fill_(0.5 + torch.rand(()).item())
        generator.synthesis.input.transform[:2, 2] = torch.tensor([0.1, -0.2])
    return generator


def write_snapshot(path, generator: StyleGANGenerator, init_kwargs: dict, nvidia_modules, change=None) -> None:
    persistence, util = nvidia_modules
    modules = nvidia_stylegan3_modules(generator)
    if change is not None:
        change(modules)
    network = nvidia_network(modules, init_kwargs, persistence, util)
    with open(path, "wb") as file:
        pickle.dump({"G": network, "D": None, "G_ema": network, "training_set_kwargs": None}, file)
    for name in ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util"):
        del sys.modules[name]


def stylegan3_init_kwargs(equivariance: str, num_classes: int, channels: int) -> dict:
    """NVIDIA's train.py arguments of the tiny network (the mapping's as a plain dict: EasyDicts are checked in
    test_stylegan_conversion.py)."""
    kwargs = dict(
        z_dim=8,
        c_dim=num_classes,
        w_dim=8,
        img_resolution=16,
        img_channels=channels,
        mapping_kwargs=dict(num_layers=2),
        channel_base=128,
        channel_max=16,
        num_layers=4,
        margin_size=4,
        num_fp16_res=0,
        conv_clamp=256,
        magnitude_ema_beta=0.5 ** (32 / 20000),
    )
    if equivariance == "rotation":
        kwargs.update(conv_kernel=1, use_radial_filters=True)
    return kwargs


def tiny_stylegan3_config(equivariance: str, num_classes: int, channels: int) -> StyleGANConfig:
    return StyleGANConfig(
        resolution=16,
        num_channels=channels,
        latent_dim=8,
        w_dim=8,
        num_classes=num_classes,
        mapping_layers=2,
        w_avg_beta=0.998,
        channel_base=128,
        channel_max=16,
        generator_architecture="alias_free",
        use_noise=False,
        equivariance=equivariance,
        num_synthesis_layers=4,
        margin_size=4,
        conv_clamp=256,
        magnitude_ema_beta=0.5 ** (32 / 20000),
    )


@pytest.mark.parametrize("equivariance, num_classes, channels", [("translation", 3, 1), ("rotation", 0, 3)])
def test_a_stylegan3_snapshot_in_nvidias_structure_converts_to_the_same_generator(
    nvidia_modules, tmp_path, capsys, equivariance, num_classes, channels
):
    original = trained_looking_generator(tiny_stylegan3_config(equivariance, num_classes, channels))
    path = tmp_path / "network-snapshot.pkl"
    write_snapshot(path, original, stylegan3_init_kwargs(equivariance, num_classes, channels), nvidia_modules)

    converted = convert_nvidia_snapshot(str(path))
    assert converted.config.to_diff_dict() == original.config.to_diff_dict()
    state = converted.state_dict()
    assert all(torch.equal(state[name], tensor) for name, tensor in original.state_dict().items())
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 2, 1]) if num_classes else None
    with torch.no_grad():
        for psi in (1.0, 0.6):
            expected = original(z, labels=labels, truncation_psi=psi).sample
            assert torch.equal(converted(z, labels=labels, truncation_psi=psi).sample, expected)

    folder = tmp_path / "converted"
    assert main(["convert", "stylegan", str(path), str(folder)]) == 0
    assert "a 16px StyleGAN 3 converted from" in capsys.readouterr().out
    pipeline = StyleGANPipeline.from_pretrained(folder)
    with torch.no_grad():
        assert torch.allclose(pipeline.stylegan(z, labels=labels).sample, original(z, labels=labels).sample, atol=1e-6)
    card = (folder / "README.md").read_text()
    assert "NVIDIA StyleGAN3 snapshot" in card and f"{equivariance}-equivariant" in card and "stylegan3" in card


def change_filter(modules):
    name = next(path for path, (kind, _, _) in modules.items() if kind == "SynthesisLayer")
    modules[name][1]["down_filter"] = modules[name][1]["down_filter"] * 1.01


def change_padding(modules):
    name = next(path for path, (kind, _, _) in modules.items() if kind == "SynthesisLayer")
    modules[name][2]["padding"] = [0, 0, 0, 0]


@pytest.mark.parametrize(
    "change, init_changes, message",
    [
        (change_filter, {}, "down_filter .* differs from the one hfgen designs"),
        (change_padding, {}, r"recorded padding=\[0, 0, 0, 0\]"),
        (None, {"use_radial_filters": True}, "hfgen holds stylegan3-t .* and stylegan3-r"),
        (None, {"fused_modconv": True}, r"arguments hfgen does not know: \['fused_modconv'\]"),
    ],
)
def test_a_stylegan3_snapshot_hfgen_would_not_reproduce_is_refused(
    nvidia_modules, tmp_path, change, init_changes, message
):
    original = trained_looking_generator(tiny_stylegan3_config("translation", 0, 3))
    path = tmp_path / "network-snapshot.pkl"
    init_kwargs = dict(stylegan3_init_kwargs("translation", 0, 3), **init_changes)
    write_snapshot(path, original, init_kwargs, nvidia_modules, change)
    with pytest.raises(ValueError, match=message):
        convert_nvidia_snapshot(str(path))
