"""Published StyleGAN 2 weights to hfgen: a snapshot written here in NVIDIA's on-disk structure (persistent network
records named as NVIDIA names them, constructor arguments in `_init_kwargs`), and a checkpoint in rosinality's (a
`torch.save` of `g_ema` in its names and shapes), from an hfgen generator's weights, come back as the same generator
through `hfgen convert stylegan`. That the FIR generator computes what NVIDIA's code
computes is checked against NVIDIA's and rosinality's own networks by `benchmarks/verify_stylegan_conversion.py`,
which needs their code; the resampling it rests on has the reference's values in test_stylegan_resampling.py."""

import json
import os
import pickle
import subprocess
import sys

import pytest
import torch
from PIL import Image

from hfgen import StyleGANConfig, StyleGANDiscriminator, StyleGANGenerator, StyleGANPipeline
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


def nvidia_discriminator_state(discriminator: StyleGANDiscriminator) -> dict[str, torch.Tensor]:
    """The discriminator's weights under NVIDIA's names: blocks `b{resolution}` from the top down, the first with its
    `fromrgb`, the epilogue `b4` (`conv`, `fc`, `out`)."""
    config, state = discriminator.config, discriminator.state_dict()
    top = config.resolution
    named = {f"b{top}.fromrgb.weight": state["from_image.weight"], f"b{top}.fromrgb.bias": state["from_image.bias"]}
    for index, resolution in enumerate(config.resolutions[::-1][:-1]):
        for name in ("conv0.weight", "conv0.bias", "conv1.weight", "conv1.bias", "skip.weight"):
            named[f"b{resolution}.{name}"] = state[f"blocks.{index}.{name}"]
        named[f"b{resolution}.conv1.resample_filter"] = torch.ones(4, 4)  # a buffer NVIDIA saves; hfgen rebuilds it
    for theirs, ours in (("conv", "conv"), ("fc", "fc"), ("out", "output")):
        named[f"b4.{theirs}.weight"], named[f"b4.{theirs}.bias"] = state[f"{ours}.weight"], state[f"{ours}.bias"]
    return named


def trained_looking(model: torch.nn.Module) -> torch.nn.Module:
    """`model` with every parameter moved off its init (the init leaves noise strengths, biases at zero)."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            parameter.add_(0.3 * torch.randn_like(parameter) if "strength" not in name else 0.3)
    return model.eval()


# NVIDIA's class of each module, by the last part of its name.
CLASS_NAMES = {"mapping": "MappingNetwork", "synthesis": "SynthesisNetwork", "torgb": "ToRGBLayer"}


def class_name(path: str) -> str:
    last = path.rsplit(".", 1)[-1]
    if last in CLASS_NAMES:
        return CLASS_NAMES[last]
    if last.startswith("fc") or last in ("embed", "affine"):
        return "FullyConnectedLayer"
    return "SynthesisBlock" if last.startswith("b") else "SynthesisLayer"


def nvidia_network(
    state: dict[str, torch.Tensor], init_kwargs: dict, persistence, util, root_class: str = "Generator"
) -> torch.nn.Module:
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
    return persistent(root, root_class, SOURCE, persistence)


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
    # the discriminator beside it (NVIDIA's "resnet"); a conditional one maps labels through a network hfgen lacks
    torch.manual_seed(1)
    original_discriminator = trained_looking(StyleGANDiscriminator(config))
    discriminator_kwargs = dict(
        c_dim=num_classes, img_resolution=16, img_channels=3, channel_base=128, channel_max=16, conv_clamp=conv_clamp
    )
    discriminator = nvidia_network(
        nvidia_discriminator_state(original_discriminator), discriminator_kwargs, persistence, util, "Discriminator"
    )
    path = tmp_path / "network-snapshot.pkl"
    with open(path, "wb") as file:
        snapshot = {"G": network, "D": discriminator, "G_ema": network}
        pickle.dump({**snapshot, "training_set_kwargs": util.EasyDict(resolution=16)}, file)
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
    printed = capsys.readouterr().out
    assert "a 16px StyleGAN 2 converted from" in printed
    pixels = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
    if num_classes:
        assert "its discriminator was not converted (it is conditional" in printed
        assert not (folder / "discriminator").exists()
    else:
        assert "its discriminator is in discriminator/" in printed
        converted_discriminator = StyleGANDiscriminator.from_pretrained(folder / "discriminator").eval()
        with torch.no_grad():
            assert torch.equal(converted_discriminator(pixels).logits, original_discriminator(pixels).logits)
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


def rosinality_discriminator_state(discriminator: StyleGANDiscriminator) -> dict[str, torch.Tensor]:
    """The discriminator's weights under rosinality's names (its `Discriminator.state_dict()`): each convolution's
    bias in the activation after it, a blur before each downsampling convolution."""
    config, state = discriminator.config, discriminator.state_dict()
    named = {"convs.0.0.weight": state["from_image.weight"], "convs.0.1.bias": state["from_image.bias"]}
    for index in range(len(config.resolutions) - 1):
        theirs, ours = f"convs.{index + 1}", f"blocks.{index}"
        named[f"{theirs}.conv1.0.weight"] = state[f"{ours}.conv0.weight"]
        named[f"{theirs}.conv1.1.bias"] = state[f"{ours}.conv0.bias"]
        named[f"{theirs}.conv2.0.kernel"] = torch.ones(4, 4)  # the blur's filter, a buffer hfgen rebuilds
        named[f"{theirs}.conv2.1.weight"] = state[f"{ours}.conv1.weight"]
        named[f"{theirs}.conv2.2.bias"] = state[f"{ours}.conv1.bias"]
        named[f"{theirs}.skip.0.kernel"] = torch.ones(4, 4)
        named[f"{theirs}.skip.1.weight"] = state[f"{ours}.skip.weight"]
    named["final_conv.0.weight"], named["final_conv.1.bias"] = state["conv.weight"], state["conv.bias"]
    for theirs, ours in (("final_linear.0", "fc"), ("final_linear.1", "output")):
        named[f"{theirs}.weight"], named[f"{theirs}.bias"] = state[f"{ours}.weight"], state[f"{ours}.bias"]
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
    else:  # as its train.py saves, with the discriminator
        torch.manual_seed(1)
        original_discriminator = trained_looking(StyleGANDiscriminator(config))
        checkpoint["d"] = rosinality_discriminator_state(original_discriminator)
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
    if with_latent_avg:
        assert "not converted (the checkpoint holds no discriminator under 'd')" in card
    else:
        pixels = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
        converted_discriminator = StyleGANDiscriminator.from_pretrained(folder / "discriminator").eval()
        with torch.no_grad():
            assert torch.equal(converted_discriminator(pixels).logits, original_discriminator(pixels).logits)
        assert "The original's discriminator was converted too" in card
    if not with_latent_avg:
        # rosinality keeps no w average: the mean of 10,000 mapped z drawn with seed 0, said on the card
        expected = original.mapping(torch.randn(10_000, 8, generator=torch.Generator().manual_seed(0))).mean(dim=0)
        assert torch.allclose(converted.mapping.w_avg, expected, atol=1e-5)
        assert "the mean of 10,000 mapped z drawn with seed 0" in card
    # a state dict that is not rosinality's generator
    torch.save({"g_ema": {"input.input": torch.zeros(1, 4, 4, 4)}}, tmp_path / "broken.pt")
    assert main(["convert", "stylegan", str(tmp_path / "broken.pt"), str(tmp_path / "other")]) == 2
    assert "is not a rosinality Generator hfgen can hold" in capsys.readouterr().err


def test_a_converted_folder_fine_tunes_with_its_discriminator_on_a_users_folder(tmp_path):
    """The converted folder is laid out as train_stylegan.py's runs: `--pretrained_model_name_or_path` starts from the
    converted generator and discriminator, and the run ends with a folder of its own."""
    import argparse

    config = StyleGANConfig(
        resolution=16, num_channels=3, latent_dim=8, w_dim=8, mapping_layers=2, channel_base=512, channel_max=16
    )
    torch.manual_seed(0)
    generator, discriminator = (
        trained_looking(StyleGANGenerator(config)),
        trained_looking(StyleGANDiscriminator(config)),
    )
    checkpoint = {
        "g_ema": rosinality_state(generator),
        "d": rosinality_discriminator_state(discriminator),
        "args": argparse.Namespace(size=16, latent=8, n_mlp=2),
    }
    torch.save(checkpoint, tmp_path / "checkpoint.pt")
    assert main(["convert", "stylegan", str(tmp_path / "checkpoint.pt"), str(tmp_path / "converted")]) == 0
    images = tmp_path / "my_images"
    images.mkdir()
    colours = torch.rand(12, 3, generator=torch.Generator().manual_seed(3))
    for index, colour in enumerate(colours):
        Image.new("RGB", (20, 20), tuple(int(255 * c) for c in colour)).save(images / f"{index}.png")
    script = os.path.join(os.path.dirname(__file__), "..", "..", "training_scripts", "gan", "train_stylegan.py")
    # as a user types it: the flags the converted card suggests, and a few steps
    result = subprocess.run(
        [sys.executable, script, "--pretrained_model_name_or_path", str(tmp_path / "converted")]
        + ["--train_data_dir", str(images), "--resolution", "16", "--color_mode", "RGB", "--unconditional"]
        + ["--max_train_steps", "2", "--train_batch_size", "4", "--num_eval_samples", "8"]
        + ["--num_validation_images", "4", "--output_dir", str(tmp_path / "tuned"), "--report_to", "none"],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "starting a new discriminator" not in result.stderr + result.stdout
    record = json.loads((tmp_path / "tuned" / "training_args.json").read_text())
    assert record["pretrained_model_name_or_path"] == str(tmp_path / "converted")
    tuned = StyleGANDiscriminator.from_pretrained(tmp_path / "tuned" / "discriminator")
    # two steps moved the converted discriminator's weights, from where they started
    start, end = discriminator.state_dict(), tuned.state_dict()
    assert 0 < max((end[name] - start[name]).abs().max().item() for name in start) < 0.1
