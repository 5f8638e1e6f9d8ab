#!/usr/bin/env python
"""Does a converted StyleGAN draw what the original draws? Against the reference code itself, at small size.

    git clone https://github.com/NVlabs/stylegan2-ada-pytorch /tmp/sg2ada     # scratch checkouts, never dependencies
    git clone https://github.com/NVlabs/stylegan3 /tmp/sg3
    git clone https://github.com/rosinality/stylegan2-pytorch /tmp/rosinality
    python benchmarks/verify_stylegan_conversion.py --reference_dir /tmp/sg2ada --sg3_reference_dir /tmp/sg3 \
        --rosinality_dir /tmp/rosinality

For each configuration below, the script builds the reference `Generator` with every parameter random (the ones its
init sets to zero too) and saves it in the reference's own format: NVIDIA's `training/networks.py` (fp32, its
pure-PyTorch op fallbacks, which it picks itself on a CPU) pickled as NVIDIA's training loop pickles
(`network-snapshot.pkl` with G, D and G_ema); NVIDIA's StyleGAN3 `training/networks_stylegan3.py` the same way
(stylegan3-t and stylegan3-r, with random magnitude averages and a random user `transform` of the Fourier features, so
that both are exercised); rosinality's `model.py` (its native CPU ops; the CUDA extension its `op`
package compiles at import is not built) saved as its `train.py` saves (`g_ema` and the flags). It converts the file
with `hfgen convert stylegan` in a separate Python process that has never imported the reference code, and prints
the largest difference between the two generators' images for the same z, class, truncation and constant noise,
beside the images' standard deviation. The discriminators saved beside the unconditional StyleGAN2-ADA generators
(NVIDIA's "resnet", or "orig" beside an "orig" generator) and rosinality's `d` are converted too, and scored on the
same random images: their largest difference is the "discriminator" row of each. The reference code is only imported
here, from the directories given.
"""

import argparse
import copy
import json
import math
import os
import pickle
import subprocess
import sys
import tempfile

import torch

# (classes, image channels, resolution, conv_clamp, architecture): unconditional RGB, conditional greyscale with
# StyleGAN2-ADA's default clamp, a clamp small enough to act, and the "orig" generator (one RGB output).
CONFIGURATIONS = [
    (0, 3, 16, None, "skip"),
    (3, 1, 32, 256, "skip"),
    (0, 3, 32, 0.5, "skip"),
    (0, 3, 16, None, "orig"),
]
TRUNCATIONS = (1.0, 0.7)

# NVIDIA's StyleGAN3 generators: (config, classes, image channels, resolution, synthesis layers, conv_clamp); the
# first at the published layer count (14), a conditional greyscale one, and a clamp small enough to act.
SG3_CONFIGURATIONS = [
    ("stylegan3-t", 0, 3, 16, 14, 256),
    ("stylegan3-t", 3, 1, 32, 6, 256),
    ("stylegan3-r", 0, 3, 16, 14, 256),
    ("stylegan3-r", 3, 1, 32, 6, 0.5),
]

# rosinality's generators: (resolution, channel multiplier); 64 px reads the multiplier from the channels.
ROSINALITY_CONFIGURATIONS = [(32, 2), (64, 1)]

# Run in a fresh interpreter: converts the snapshot and draws the images of the saved latents.
CONVERT_AND_DRAW = """
import json, os, sys, torch
assert 'torch_utils' not in sys.modules and 'dnnlib' not in sys.modules
from hfgen.cli import main
snapshot, folder, inputs, outputs = sys.argv[1:5]
assert main(['convert', 'stylegan', snapshot, folder]) == 0
import hfgen
pipeline = hfgen.StyleGANPipeline.from_pretrained(folder)
data = torch.load(inputs, weights_only=True)
images = {}
with torch.no_grad():
    for psi in data['truncations']:
        output = pipeline.stylegan(data['z'], labels=data['labels'], truncation_psi=psi, noise_mode='const')
        images[str(psi)] = output.sample
w_avg = pipeline.stylegan.mapping.w_avg
logits = None
if os.path.isdir(os.path.join(folder, 'discriminator')):
    discriminator = hfgen.StyleGANDiscriminator.from_pretrained(os.path.join(folder, 'discriminator')).eval()
    with torch.no_grad():
        logits = discriminator(data['pixels']).logits
torch.save({'images': images, 'w_avg': w_avg, 'logits': logits}, outputs)
print(json.dumps({'reference_code_imported': 'torch_utils' in sys.modules or 'model' in sys.modules}))
"""


def reference_generator(reference_dir: str, classes: int, channels: int, resolution: int, clamp, architecture: str):
    sys.path.insert(0, reference_dir)
    from training.networks import Generator  # NVIDIA's code, from the scratch checkout

    torch.manual_seed(0)
    generator = Generator(
        z_dim=32,
        c_dim=classes,
        w_dim=32,
        img_resolution=resolution,
        img_channels=channels,
        mapping_kwargs=dict(num_layers=3),
        synthesis_kwargs=dict(
            channel_base=512, channel_max=64, num_fp16_res=0, conv_clamp=clamp, architecture=architecture
        ),
    ).eval()
    with torch.no_grad():
        for parameter in generator.parameters():
            parameter.add_(0.5 * torch.randn_like(parameter))
        generator.mapping.w_avg.normal_()
    return generator


def reference_discriminator(reference_dir: str, classes: int, channels: int, resolution: int, clamp, architecture):
    """NVIDIA's `Discriminator` beside the generator of the same configuration ("resnet", or "orig" beside an "orig"
    generator), every parameter random."""
    sys.path.insert(0, reference_dir)
    from training.networks import Discriminator  # NVIDIA's code, from the scratch checkout

    torch.manual_seed(1)
    discriminator = Discriminator(
        c_dim=classes,
        img_resolution=resolution,
        img_channels=channels,
        architecture="orig" if architecture == "orig" else "resnet",
        channel_base=512,
        channel_max=64,
        conv_clamp=clamp,
    ).eval()
    with torch.no_grad():
        for parameter in discriminator.parameters():
            parameter.add_(0.5 * torch.randn_like(parameter))
    return discriminator


def discriminator_row(config: str, expected: torch.Tensor, converted: dict) -> dict:
    """The converted discriminator's largest difference from the reference's scores, when it was converted."""
    if converted["logits"] is None:
        return dict(config=f"{config}, discriminator", truncation="-", max_difference=math.nan, image_std=math.nan)
    difference = (converted["logits"] - expected.flatten()).abs().max().item()
    return dict(
        config=f"{config}, discriminator", truncation="-", max_difference=difference, image_std=expected.std().item()
    )


def verify(reference_dir: str, work_dir: str, configuration) -> list[dict]:
    classes, channels, resolution, clamp, architecture = configuration
    generator = reference_generator(reference_dir, *configuration)
    discriminator = reference_discriminator(reference_dir, *configuration)
    snapshot = os.path.join(work_dir, "network-snapshot.pkl")
    with open(snapshot, "wb") as file:
        pickle.dump(dict(G=copy.deepcopy(generator), D=discriminator, G_ema=copy.deepcopy(generator)), file)
    z = torch.randn(8, 32, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(8) % classes if classes else None
    one_hot = torch.nn.functional.one_hot(labels, classes).float() if classes else torch.zeros(8, 0)
    pixels = torch.randn(8, channels, resolution, resolution, generator=torch.Generator().manual_seed(2))
    inputs, outputs = os.path.join(work_dir, "inputs.pt"), os.path.join(work_dir, "outputs.pt")
    torch.save({"z": z, "labels": labels, "truncations": TRUNCATIONS, "pixels": pixels}, inputs)
    folder = os.path.join(work_dir, "converted")
    converted = convert_and_draw(snapshot, folder, inputs, outputs)
    rows = []
    for psi in TRUNCATIONS:
        with torch.no_grad():
            expected = generator(z, one_hot, truncation_psi=psi, noise_mode="const", force_fp32=True)
        difference = (converted["images"][str(psi)] - expected).abs().max().item()
        rows.append(
            dict(
                config=f"NVIDIA, {architecture}, {resolution}px, {channels} ch, {classes} classes, conv_clamp {clamp}",
                truncation=psi,
                max_difference=difference,
                image_std=expected.std().item(),
            )
        )
    if not classes:  # a conditional discriminator maps labels through a network hfgen does not have: not converted
        with torch.no_grad():
            scores = discriminator(pixels, one_hot)
        rows.append(discriminator_row(rows[0]["config"], scores, converted))
    return rows


def import_stylegan3(reference_dir: str):
    """NVIDIA's StyleGAN3 `Generator` from the checkout. Its `training` and `torch_utils` packages share their names
    with StyleGAN2-ADA's, so those imported before are forgotten first; its `conv2d_gradfix` imports `pkg_resources`
    (gone from recent setuptools) for `parse_version` alone, which `packaging` provides."""
    import types

    from packaging.version import parse

    for name in list(sys.modules):
        if name.split(".")[0] in ("training", "torch_utils", "dnnlib"):
            del sys.modules[name]
    if "pkg_resources" not in sys.modules:
        sys.modules["pkg_resources"] = types.SimpleNamespace(parse_version=parse)
    sys.path.insert(0, reference_dir)
    from training.networks_stylegan3 import Generator  # NVIDIA's code, from the scratch checkout

    sys.path.remove(reference_dir)
    return Generator


def verify_stylegan3(reference_dir: str, work_dir: str, configuration) -> list[dict]:
    name, classes, channels, resolution, layers, clamp = configuration
    Generator = import_stylegan3(reference_dir)
    # stylegan3-r: 1x1 convolutions and radial filters (train.py also doubles the channels, kept small here)
    rotation = dict(conv_kernel=1, use_radial_filters=True) if name == "stylegan3-r" else {}
    torch.manual_seed(0)
    generator = Generator(
        z_dim=32,
        c_dim=classes,
        w_dim=32,
        img_resolution=resolution,
        img_channels=channels,
        mapping_kwargs=dict(num_layers=2),
        channel_base=1024,
        channel_max=32,
        num_layers=layers,
        num_fp16_res=0,
        conv_clamp=clamp,
        magnitude_ema_beta=0.5 ** (32 / 20000),
        **rotation,
    ).eval()
    with torch.no_grad():
        for parameter in generator.parameters():
            parameter.add_(0.5 * torch.randn_like(parameter))
        generator.mapping.w_avg.normal_()
        for buffer_name, buffer in generator.named_buffers():
            if buffer_name.endswith("magnitude_ema"):
                buffer.copy_(0.5 + torch.rand(()))
        angle = 0.3
        transform = torch.tensor(
            [[math.cos(angle), -math.sin(angle), 0.12], [math.sin(angle), math.cos(angle), -0.07], [0.0, 0.0, 1.0]]
        )
        generator.synthesis.input.transform.copy_(transform)
    snapshot = os.path.join(work_dir, "network-snapshot.pkl")
    with open(snapshot, "wb") as file:
        data = dict(G=copy.deepcopy(generator), D=None, G_ema=copy.deepcopy(generator), augment_pipe=None)
        pickle.dump(dict(data, training_set_kwargs=None), file)
    z = torch.randn(8, 32, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(8) % classes if classes else None
    one_hot = torch.nn.functional.one_hot(labels, classes).float() if classes else torch.zeros(8, 0)
    inputs, outputs = os.path.join(work_dir, "inputs.pt"), os.path.join(work_dir, "outputs.pt")
    torch.save({"z": z, "labels": labels, "truncations": TRUNCATIONS}, inputs)
    converted = convert_and_draw(snapshot, os.path.join(work_dir, "converted"), inputs, outputs)
    rows = []
    for psi in TRUNCATIONS:
        with torch.no_grad():
            expected = generator(z, one_hot, truncation_psi=psi, force_fp32=True)
        rows.append(
            dict(
                config=f"NVIDIA {name}, {resolution}px, {channels} ch, {classes} classes, {layers} layers, "
                f"conv_clamp {clamp}",
                truncation=psi,
                max_difference=(converted["images"][str(psi)] - expected).abs().max().item(),
                image_std=expected.std().item(),
            )
        )
    return rows


def convert_and_draw(checkpoint: str, folder: str, inputs: str, outputs: str) -> dict:
    """`hfgen convert stylegan` and the converted generator's images, in a process without the reference code."""
    result = subprocess.run(
        [sys.executable, "-c", CONVERT_AND_DRAW, checkpoint, folder, inputs, outputs],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    if result.returncode:
        raise RuntimeError(result.stderr)
    assert not json.loads(result.stdout.strip().splitlines()[-1])["reference_code_imported"]
    return torch.load(outputs, weights_only=True)


def verify_rosinality(rosinality_dir: str, work_dir: str, configuration) -> list[dict]:
    import torch.utils.cpp_extension

    resolution, channel_multiplier = configuration
    # its `op` package compiles a CUDA extension when imported; on the CPU its native paths run, so none is built
    torch.utils.cpp_extension.load = lambda *args, **kwargs: None
    sys.path.insert(0, rosinality_dir)
    from model import Discriminator, Generator  # rosinality's code, from the scratch checkout

    torch.manual_seed(0)
    generator = Generator(size=resolution, style_dim=32, n_mlp=3, channel_multiplier=channel_multiplier).eval()
    discriminator = Discriminator(size=resolution, channel_multiplier=channel_multiplier).eval()
    with torch.no_grad():
        for parameter in [*generator.parameters(), *discriminator.parameters()]:
            parameter.add_(0.5 * torch.randn_like(parameter))
    checkpoint = os.path.join(work_dir, "checkpoint.pt")
    flags = argparse.Namespace(size=resolution, latent=32, n_mlp=3, channel_multiplier=channel_multiplier)
    torch.save({"g_ema": generator.state_dict(), "d": discriminator.state_dict(), "args": flags}, checkpoint)
    z = torch.randn(4, 32, generator=torch.Generator().manual_seed(1))
    pixels = torch.randn(4, 3, resolution, resolution, generator=torch.Generator().manual_seed(2))
    inputs, outputs = os.path.join(work_dir, "inputs.pt"), os.path.join(work_dir, "outputs.pt")
    torch.save({"z": z, "labels": None, "truncations": TRUNCATIONS, "pixels": pixels}, inputs)
    converted = convert_and_draw(checkpoint, os.path.join(work_dir, "converted"), inputs, outputs)
    rows = []
    for psi in TRUNCATIONS:
        with torch.no_grad():
            # the same truncation centre: rosinality takes it as an argument, hfgen keeps it as w_avg
            expected, _ = generator(
                [z], randomize_noise=False, truncation=psi, truncation_latent=converted["w_avg"][None]
            )
        rows.append(
            dict(
                config=f"rosinality, {resolution}px, channel multiplier {channel_multiplier}",
                truncation=psi,
                max_difference=(converted["images"][str(psi)] - expected).abs().max().item(),
                image_std=expected.std().item(),
            )
        )
    with torch.no_grad():
        rows.append(discriminator_row(rows[0]["config"], discriminator(pixels), converted))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference_dir", default=None, help="A checkout of NVlabs/stylegan2-ada-pytorch.")
    parser.add_argument("--sg3_reference_dir", default=None, help="A checkout of NVlabs/stylegan3.")
    parser.add_argument("--rosinality_dir", default=None, help="A checkout of rosinality/stylegan2-pytorch.")
    args = parser.parse_args()
    if args.reference_dir is None and args.rosinality_dir is None and args.sg3_reference_dir is None:
        parser.error("give --reference_dir (NVIDIA), --sg3_reference_dir and / or --rosinality_dir")
    stylegan3_code = os.path.join(args.sg3_reference_dir or "", "training", "networks_stylegan3.py")
    if args.sg3_reference_dir and not os.path.isfile(stylegan3_code):
        parser.error(f"--sg3_reference_dir {args.sg3_reference_dir} holds no training/networks_stylegan3.py")
    if args.reference_dir and not os.path.isfile(os.path.join(args.reference_dir, "training", "networks.py")):
        parser.error(f"--reference_dir {args.reference_dir} holds no training/networks.py (stylegan2-ada-pytorch)")
    if args.rosinality_dir and not os.path.isfile(os.path.join(args.rosinality_dir, "model.py")):
        parser.error(f"--rosinality_dir {args.rosinality_dir} holds no model.py (stylegan2-pytorch)")
    runs = []
    if args.reference_dir:
        runs += [(verify, os.path.abspath(args.reference_dir), configuration) for configuration in CONFIGURATIONS]
    if args.sg3_reference_dir:  # after StyleGAN2-ADA's: its packages of the same names are then forgotten
        directory = os.path.abspath(args.sg3_reference_dir)
        runs += [(verify_stylegan3, directory, configuration) for configuration in SG3_CONFIGURATIONS]
    if args.rosinality_dir:
        directory = os.path.abspath(args.rosinality_dir)
        runs += [(verify_rosinality, directory, configuration) for configuration in ROSINALITY_CONFIGURATIONS]
    print("| generator | truncation | max abs difference | image std |")
    print("|---|---|---|---|")
    worst, missing_discriminators = 0.0, []
    for function, directory, configuration in runs:
        with tempfile.TemporaryDirectory() as work_dir:
            for row in function(directory, work_dir, configuration):
                if math.isnan(row["max_difference"]):  # a discriminator that should have been converted was not
                    missing_discriminators.append(row["config"])
                    continue
                worst = max(worst, row["max_difference"])
                print(
                    f"| {row['config']} | {row['truncation']} | {row['max_difference']:.2e} | {row['image_std']:.2f} |"
                )
    print(f"\nlargest difference: {worst:.2e} (target: below 1e-4, fp32 on the CPU)")
    if missing_discriminators:
        print(f"discriminators not converted: {missing_discriminators}")
    return 0 if worst < 1e-4 and not missing_discriminators else 1


if __name__ == "__main__":
    sys.exit(main())
