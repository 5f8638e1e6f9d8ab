"""Published StyleGAN 2 weights to hfgen: a snapshot written here in NVIDIA's on-disk structure (persistent network
records named as NVIDIA names them, constructor arguments in `_init_kwargs`), and a checkpoint in rosinality's (a
`torch.save` of `g_ema` in its names and shapes), from an hfgen generator's weights, come back as the same generator
through `hfgen convert stylegan`. That the FIR generator computes what NVIDIA's code
computes is checked against NVIDIA's and rosinality's own networks by `benchmarks/verify_stylegan_conversion.py`,
which needs their code; the resampling it rests on has the reference's values in test_stylegan_resampling.py."""

import pickle
import sys

import pytest
import torch
from PIL import Image

from hfgen import StyleGANConfig, StyleGANGenerator, StyleGANPipeline
from hfgen.cli import main
from hfgen.models.stylegan.conversion import convert_nvidia_snapshot

from .nvidia_stand_ins import persistent

SOURCE = "raise RuntimeError('NVIDIA source must not run')\n"


def nvidia_state(generator: StyleGANGenerator) -> dict[str, torch.Tensor]:
    """The generator's weights under NVIDIA's names (the inverse of hfgen's mapping, written out here)."""
    config, state = generator.config, generator.state_dict()
    named = {"mapping.w_avg": state["mapping.w_avg"]}
    if config.num_classes:
        named["mapping.embed.weight"] = state["mapping.class_embedding.weight"]
        named["mapping.embed.bias"] = state["mapping.class_embedding.bias"]
    for index in range(config.mapping_layers):
        named[f"mapping.fc{index}.weight"] = state[f"mapping.layers.{index}.weight"]
        named[f"mapping.fc{index}.bias"] = state[f"mapping.layers.{index}.bias"]
    layer_index = 0
    for block, resolution in enumerate(config.resolutions):
        ours, theirs = f"synthesis.blocks.{block}", f"synthesis.b{resolution}"
        if resolution == 4:
            named[f"{theirs}.const"] = state[f"{ours}.constant"]
        for layer, conv in enumerate(["conv1"] if resolution == 4 else ["conv0", "conv1"]):
            source, target = f"{ours}.layers.{layer}", f"{theirs}.{conv}"
            named[f"{target}.weight"] = state[f"{source}.conv.weight"]
            named[f"{target}.affine.weight"] = state[f"{source}.conv.affine.weight"]
            named[f"{target}.affine.bias"] = state[f"{source}.conv.affine.bias"]
            named[f"{target}.bias"] = state[f"{source}.bias"]
            named[f"{target}.noise_strength"] = state[f"{source}.noise.strength"][0].clone()  # one scalar
            named[f"{target}.noise_const"] = state[f"synthesis.noise_const_{layer_index}"][0, 0]
            named[f"{target}.resample_filter"] = torch.ones(4, 4)  # a buffer NVIDIA saves; hfgen rebuilds it
            layer_index += 1
        named[f"{theirs}.torgb.weight"] = state[f"{ours}.to_image.conv.weight"]
        named[f"{theirs}.torgb.affine.weight"] = state[f"{ours}.to_image.conv.affine.weight"]
        named[f"{theirs}.torgb.affine.bias"] = state[f"{ours}.to_image.conv.affine.bias"]
        named[f"{theirs}.torgb.bias"] = state[f"{ours}.to_image.bias"]
    return named


# NVIDIA's class of each module, by the last part of its name.
CLASS_NAMES = {"mapping": "MappingNetwork", "synthesis": "SynthesisNetwork", "torgb": "ToRGBLayer"}


def class_name(path: str) -> str:
    last = path.rsplit(".", 1)[-1]
    if last in CLASS_NAMES:
        return CLASS_NAMES[last]
    if last.startswith("fc") or last in ("embed", "affine"):
        return "FullyConnectedLayer"
    return "SynthesisBlock" if last.startswith("b") else "SynthesisLayer"


def nvidia_network(state: dict[str, torch.Tensor], init_kwargs: dict, persistence, util) -> torch.nn.Module:
    """A module tree holding `state` under its dotted names, every module pickling as an NVIDIA persistent class."""
    root = torch.nn.Module()
    for name, tensor in state.items():
        *path, leaf = name.split(".")
        module = root
        for part in path:
            if not hasattr(module, part):
                module.add_module(part, torch.nn.Module())
            module = getattr(module, part)
        if leaf in ("w_avg", "noise_const", "resample_filter"):
            module.register_buffer(leaf, tensor.clone())
        else:
            module.register_parameter(leaf, torch.nn.Parameter(tensor.clone()))
    for path, module in root.named_modules():
        if path:
            persistent(module, class_name(path), SOURCE, persistence)
    root._init_args, root._init_kwargs = (), util.EasyDict(init_kwargs)
    return persistent(root, "Generator", SOURCE, persistence)


@pytest.mark.parametrize("num_classes, conv_clamp", [(0, None), (3, 256.0)])
def test_a_snapshot_in_nvidias_structure_converts_to_the_same_generator(
    nvidia_modules, tmp_path, capsys, num_classes, conv_clamp
):
    persistence, util = nvidia_modules
    config = StyleGANConfig(
        resolution=16,
        num_channels=3,
        latent_dim=8,
        w_dim=8,
        num_classes=num_classes,
        mapping_layers=2,
        channel_base=128,
        channel_max=16,
        resample_filter=[1, 3, 3, 1],
        conv_clamp=conv_clamp,
    )
    torch.manual_seed(0)
    original = StyleGANGenerator(config).eval()
    with torch.no_grad():  # trained-looking values where the init leaves zeros (noise strengths, biases, w_avg)
        for name, parameter in original.named_parameters():
            parameter.add_(0.3 * torch.randn_like(parameter) if "strength" not in name else 0.3)
        original.mapping.w_avg.normal_()
    init_kwargs = dict(
        z_dim=8,
        c_dim=num_classes,
        w_dim=8,
        img_resolution=16,
        img_channels=3,
        mapping_kwargs=util.EasyDict(num_layers=2),
        synthesis_kwargs=util.EasyDict(channel_base=128, channel_max=16, num_fp16_res=0, conv_clamp=conv_clamp),
    )
    network = nvidia_network(nvidia_state(original), init_kwargs, persistence, util)
    path = tmp_path / "network-snapshot.pkl"
    with open(path, "wb") as file:
        pickle.dump({"G": network, "G_ema": network, "training_set_kwargs": util.EasyDict(resolution=16)}, file)
    for name in ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util"):
        del sys.modules[name]

    converted = convert_nvidia_snapshot(str(path))
    assert converted.config.resample_filter == [1, 3, 3, 1] and converted.config.conv_clamp == conv_clamp
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 2, 1]) if num_classes else None
    with torch.no_grad():
        for psi in (1.0, 0.6):
            expected = original(z, labels=labels, truncation_psi=psi, noise_mode="const").sample
            assert torch.equal(converted(z, labels=labels, truncation_psi=psi, noise_mode="const").sample, expected)

    folder = tmp_path / "converted"
    assert main(["convert", "stylegan", str(path), str(folder)]) == 0
    assert "a 16px StyleGAN 2 converted from" in capsys.readouterr().out
    pipeline = StyleGANPipeline.from_pretrained(folder)
    with torch.no_grad():
        reloaded = pipeline.stylegan(z, labels=labels, noise_mode="const").sample
        assert torch.allclose(reloaded, original(z, labels=labels, noise_mode="const").sample, atol=1e-6)
    card = (folder / "README.md").read_text()
    assert "network-snapshot.pkl" in card and "SHA-256" in card and "converted" in card
    assert Image.open(folder / "samples.png").size == (64, 64)
    # nothing is overwritten, and a file without a generator is named
    assert main(["convert", "stylegan", str(path), str(folder)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    assert main(["convert", "stylegan", str(tmp_path / "other.pt"), str(tmp_path / "other")]) == 2
    assert "holds no NVIDIA generator under 'G_ema' (it holds ['weights'])" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()


def rosinality_state(generator: StyleGANGenerator) -> dict[str, torch.Tensor]:
    """The generator's weights under rosinality's names and shapes (its `Generator.state_dict()`)."""
    config, state = generator.config, generator.state_dict()
    named = {"input.input": state["synthesis.blocks.0.constant"][None]}
    for index in range(config.mapping_layers):
        named[f"style.{index + 1}.weight"] = state[f"mapping.layers.{index}.weight"]
        named[f"style.{index + 1}.bias"] = state[f"mapping.layers.{index}.bias"]
    layers = [("conv1", "synthesis.blocks.0.layers.0")]
    images = [("to_rgb1", "synthesis.blocks.0.to_image")]
    for block in range(1, len(config.resolutions)):
        layers += [(f"convs.{2 * block - 2}", f"synthesis.blocks.{block}.layers.0")]
        layers += [(f"convs.{2 * block - 1}", f"synthesis.blocks.{block}.layers.1")]
        images += [(f"to_rgbs.{block - 1}", f"synthesis.blocks.{block}.to_image")]
    for index, (theirs, ours) in enumerate(layers):
        named[f"{theirs}.conv.weight"] = state[f"{ours}.conv.weight"][None]
        named[f"{theirs}.conv.modulation.weight"] = state[f"{ours}.conv.affine.weight"]
        named[f"{theirs}.conv.modulation.bias"] = state[f"{ours}.conv.affine.bias"]
        named[f"{theirs}.conv.blur.kernel"] = torch.ones(4, 4)  # buffers rosinality saves; hfgen rebuilds them
        named[f"{theirs}.noise.weight"] = state[f"{ours}.noise.strength"][:1].clone()
        named[f"{theirs}.activate.bias"] = state[f"{ours}.bias"]
        named[f"noises.noise_{index}"] = state[f"synthesis.noise_const_{index}"]
    for theirs, ours in images:
        named[f"{theirs}.conv.weight"] = state[f"{ours}.conv.weight"][None]
        named[f"{theirs}.conv.modulation.weight"] = state[f"{ours}.conv.affine.weight"]
        named[f"{theirs}.conv.modulation.bias"] = state[f"{ours}.conv.affine.bias"]
        named[f"{theirs}.bias"] = state[f"{ours}.bias"].view(1, -1, 1, 1)
    return named


@pytest.mark.parametrize("with_latent_avg", [True, False])
def test_a_rosinality_checkpoint_converts_to_the_same_generator(tmp_path, capsys, with_latent_avg):
    import argparse

    config = StyleGANConfig(
        resolution=16,
        num_channels=3,
        latent_dim=8,
        w_dim=8,
        mapping_layers=3,
        channel_base=512,
        channel_max=16,
        resample_filter=[1, 3, 3, 1],
    )
    torch.manual_seed(0)
    original = StyleGANGenerator(config).eval()
    with torch.no_grad():
        for name, parameter in original.named_parameters():
            parameter.add_(0.3 * torch.randn_like(parameter) if "strength" not in name else 0.3)
        original.mapping.w_avg.normal_()
    checkpoint = {"g_ema": rosinality_state(original), "args": argparse.Namespace(size=16, latent=8, n_mlp=3)}
    if with_latent_avg:  # as rosinality's converted TensorFlow weights keep it
        checkpoint["latent_avg"] = original.mapping.w_avg.clone()
    path = tmp_path / "checkpoint.pt"
    torch.save(checkpoint, path)

    folder = tmp_path / "converted"
    assert main(["convert", "stylegan", str(path), str(folder)]) == 0
    converted = StyleGANPipeline.from_pretrained(folder).stylegan
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        same = converted(z, noise_mode="const").sample
        assert torch.allclose(same, original(z, noise_mode="const").sample, atol=1e-6)
        if with_latent_avg:
            truncated = converted(z, truncation_psi=0.5, noise_mode="const").sample
            assert torch.allclose(truncated, original(z, truncation_psi=0.5, noise_mode="const").sample, atol=1e-6)
    card = (folder / "README.md").read_text()
    assert "rosinality stylegan2-pytorch checkpoint" in card
    if not with_latent_avg:
        # rosinality keeps no w average: the mean of 10,000 mapped z drawn with seed 0, said on the card
        expected = original.mapping(torch.randn(10_000, 8, generator=torch.Generator().manual_seed(0))).mean(dim=0)
        assert torch.allclose(converted.mapping.w_avg, expected, atol=1e-5)
        assert "the mean of 10,000 mapped z drawn with seed 0" in card
    # a state dict that is not rosinality's generator
    torch.save({"g_ema": {"input.input": torch.zeros(1, 4, 4, 4)}}, tmp_path / "broken.pt")
    assert main(["convert", "stylegan", str(tmp_path / "broken.pt"), str(tmp_path / "other")]) == 2
    assert "is not a rosinality Generator hfgen can hold" in capsys.readouterr().err
