#!/usr/bin/env python
"""Does a converted StyleGAN draw what the original draws? Against NVIDIA's own code, at small size.

    git clone https://github.com/NVlabs/stylegan2-ada-pytorch /tmp/sg2ada     # a scratch checkout, never a dependency
    python benchmarks/verify_stylegan_conversion.py --reference_dir /tmp/sg2ada

For each configuration below, the script builds NVIDIA's `Generator` (from `training/networks.py` of the checkout,
fp32, NVIDIA's pure-PyTorch op fallbacks, which it picks itself on a CPU) with every parameter random (the ones its
init sets to zero too), pickles it as NVIDIA's training loop does (`network-snapshot.pkl` with G, D and G_ema), then
converts the file with `hfgen convert stylegan` in a separate Python process that has never imported NVIDIA's code,
and prints the largest difference between the two generators' images for the same z, class, truncation and constant
noise, beside the images' standard deviation. The reference code is only imported here, from `--reference_dir`.
"""

import argparse
import copy
import json
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

# Run in a fresh interpreter: converts the snapshot and draws the images of the saved latents.
CONVERT_AND_DRAW = """
import json, sys, torch
assert 'torch_utils' not in sys.modules and 'dnnlib' not in sys.modules
from hfgen.cli import main
snapshot, folder, inputs, outputs = sys.argv[1:5]
assert main(['convert', 'stylegan', snapshot, folder]) == 0
import hfgen
pipeline = hfgen.StyleGANPipeline.from_pretrained(folder)
data = torch.load(inputs)
images = {}
with torch.no_grad():
    for psi in data['truncations']:
        output = pipeline.stylegan(data['z'], labels=data['labels'], truncation_psi=psi, noise_mode='const')
        images[str(psi)] = output.sample
torch.save(images, outputs)
print(json.dumps({'nvidia_code_imported': 'torch_utils' in sys.modules}))
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


def verify(reference_dir: str, work_dir: str, configuration) -> list[dict]:
    classes, channels, resolution, clamp, architecture = configuration
    generator = reference_generator(reference_dir, *configuration)
    snapshot = os.path.join(work_dir, "network-snapshot.pkl")
    with open(snapshot, "wb") as file:
        pickle.dump(dict(G=copy.deepcopy(generator), D=None, G_ema=copy.deepcopy(generator)), file)
    z = torch.randn(8, 32, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(8) % classes if classes else None
    one_hot = torch.nn.functional.one_hot(labels, classes).float() if classes else torch.zeros(8, 0)
    inputs, outputs = os.path.join(work_dir, "inputs.pt"), os.path.join(work_dir, "outputs.pt")
    torch.save({"z": z, "labels": labels, "truncations": TRUNCATIONS}, inputs)
    folder = os.path.join(work_dir, "converted")
    result = subprocess.run(
        [sys.executable, "-c", CONVERT_AND_DRAW, snapshot, folder, inputs, outputs],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    if result.returncode:
        raise RuntimeError(result.stderr)
    assert not json.loads(result.stdout.strip().splitlines()[-1])["nvidia_code_imported"]
    converted = torch.load(outputs)
    rows = []
    for psi in TRUNCATIONS:
        with torch.no_grad():
            expected = generator(z, one_hot, truncation_psi=psi, noise_mode="const", force_fp32=True)
        difference = (converted[str(psi)] - expected).abs().max().item()
        rows.append(
            dict(
                config=f"{architecture}, {resolution}px, {channels} ch, {classes} classes, conv_clamp {clamp}",
                truncation=psi,
                max_difference=difference,
                image_std=expected.std().item(),
            )
        )
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference_dir", required=True, help="A checkout of NVlabs/stylegan2-ada-pytorch.")
    args = parser.parse_args()
    if not os.path.isfile(os.path.join(args.reference_dir, "training", "networks.py")):
        parser.error(f"--reference_dir {args.reference_dir} holds no training/networks.py (stylegan2-ada-pytorch)")
    print("| NVIDIA StyleGAN2-ADA generator | truncation | max abs difference | image std |")
    print("|---|---|---|---|")
    worst = 0.0
    for configuration in CONFIGURATIONS:
        with tempfile.TemporaryDirectory() as work_dir:
            for row in verify(os.path.abspath(args.reference_dir), work_dir, configuration):
                worst = max(worst, row["max_difference"])
                print(
                    f"| {row['config']} | {row['truncation']} | {row['max_difference']:.2e} | {row['image_std']:.2f} |"
                )
    print(f"\nlargest difference: {worst:.2e} (target: below 1e-4, fp32 on the CPU)")
    return 0 if worst < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
