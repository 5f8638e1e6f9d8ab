"""Running training scripts as users do: `accelerate launch` subprocesses, one or two CPU processes."""

import glob
import json
import os
import socket
import subprocess
import sys

import pytest
from PIL import Image, ImageDraw

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ACCELERATE = os.path.join(os.path.dirname(sys.executable), "accelerate")


def script_path(script: str) -> str:
    """The path of a training script named by its file name (`train_gan.py` is `training_scripts/gan/train_gan.py`):
    tests name scripts as users know them, whatever task folder holds them."""
    matches = glob.glob(os.path.join(REPO, "training_scripts", "*", script))
    if len(matches) != 1:
        raise FileNotFoundError(f"expected one training_scripts/<task>/{script}, found {matches}")
    return matches[0]


def free_port() -> int:
    """A localhost port nothing listens on: tests run in parallel workers, and two 2-process runs on accelerate's
    default port would meet in one rendezvous."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(script: str, *arguments, num_processes: int = 1, check: bool = True) -> subprocess.CompletedProcess:
    """Run the training script named `script` with `arguments` under `accelerate launch`; on failure (with `check`),
    the assertion shows the end of its output."""
    command = [ACCELERATE, "launch", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    if num_processes > 1:
        # Two CPU processes: accelerate needs --multi_gpu plus ACCELERATE_USE_CPU (--cpu alone starts one).
        command += ["--multi_gpu", "--num_processes", str(num_processes), "--main_process_port", str(free_port())]
        environment["ACCELERATE_USE_CPU"] = "1"
    else:
        command += ["--num_processes", "1"]
    command += [script_path(script), *map(str, arguments)]
    result = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=REPO, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{script} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
        )
    return result


@pytest.fixture(scope="session")
def launch_script():
    return launch


@pytest.fixture(scope="session")
def tiny_model_configs(tmp_path_factory):
    """Config folders of tiny models of every family, for runs of a few steps at 16 px on the built-in digits."""
    from diffusers import VQModel

    import hfgen

    folder = tmp_path_factory.mktemp("tiny_model_configs")
    hfgen.VAEConfig(
        in_channels=1, sample_size=16, block_out_channels=[8, 16], norm_num_groups=4, latent_channels=2
    ).save_pretrained(folder / "vae")
    hfgen.GANConfig(
        architecture="dcgan",
        image_size=16,
        latent_dim=8,
        generator_channels=4,
        discriminator_channels=4,
        max_channels=16,
        num_classes=10,
        class_embedding_dim=4,
    ).save_pretrained(folder / "gan")
    hfgen.GANConfig(
        architecture="mlp",
        image_size=16,
        latent_dim=8,
        generator_hidden_sizes=[32],
        discriminator_hidden_sizes=[32],
        discriminator_norm="none",
    ).save_pretrained(folder / "mlp")
    hfgen.StyleGANConfig(
        resolution=16, latent_dim=8, w_dim=8, mapping_layers=2, channel_base=64, channel_max=8, num_classes=10
    ).save_pretrained(folder / "stylegan")
    # the same without classes, for unlabelled folders
    hfgen.GANConfig.from_pretrained(folder / "gan", num_classes=0).save_pretrained(folder / "gan-unconditional")
    hfgen.StyleGANConfig.from_pretrained(folder / "stylegan", num_classes=0).save_pretrained(
        folder / "stylegan-unconditional"
    )
    # a diffusers VQModel: 16 px through 8 x 8 codes from a codebook of 16
    VQModel(
        in_channels=1,
        out_channels=1,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        block_out_channels=[8, 16],
        norm_num_groups=4,
        latent_channels=3,
        num_vq_embeddings=16,
        sample_size=16,
        mid_block_add_attention=False,
    ).save_config(folder / "vqgan")
    return folder


# What every tiny run passes: small batches and evaluations, at 16 px.
TINY_RUN = [
    "--resolution",
    "16",
    "--train_batch_size",
    "16",
    "--num_eval_samples",
    "40",
    "--num_validation_images",
    "4",
]
SCRIPTS = {"vae": "train_vae.py", "gan": "train_gan.py", "stylegan": "train_stylegan.py", "vqgan": "train_vqgan.py"}


@pytest.fixture(scope="session")
def launch_tiny(launch_script, tiny_model_configs):
    """`launch_tiny(family, output_dir, *extra)`: the family's script on its tiny config at 16 px (the unconditional
    one for GANs with `unconditional=True`)."""

    def run(family, output_dir, *extra, num_processes=1, check=True, unconditional=False):
        config = tiny_model_configs / (f"{family}-unconditional" if unconditional and family != "vae" else family)
        return launch_script(
            SCRIPTS[family],
            "--output_dir",
            output_dir,
            "--model_config_name_or_path",
            config,
            *TINY_RUN,
            *extra,
            num_processes=num_processes,
            check=check,
        )

    return run


@pytest.fixture(scope="session")
def tiny_ldm_folder(tmp_path_factory) -> str:
    """A tiny hfgen latent diffusion folder (16 px greyscale digits through a 4 x 8 x 8 latent, a text encoder over
    the digit captions), as train_ldm.py saves one: the base of ControlNet and DreamBooth runs."""
    from hfgen import LatentDiffusionPipeline

    from ..pipelines.test_pipeline_latent_diffusion import tiny_components

    folder = tmp_path_factory.mktemp("tiny-ldm") / "ldm"
    LatentDiffusionPipeline(**tiny_components()).save_pretrained(folder)
    return str(folder)


def import_script(script: str):
    """The training script named `script` as a module, for checks of its flags without starting a process."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(script.removesuffix(".py"), script_path(script))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_error(script, *arguments) -> str:
    """The one-line error `script.parse_args` (a module from `import_script`) exits with for `arguments`."""
    import contextlib
    import io

    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), pytest.raises(SystemExit) as exit_info:
        script.parse_args([str(argument) for argument in arguments])
    assert exit_info.value.code == 2
    lines = stderr.getvalue().strip().splitlines()
    assert "error:" in lines[-1]
    return lines[-1]


def dry_run(script: str, *arguments) -> str:
    """What `script --dry_run *arguments` prints, run in this process (no interpreter or import to start: the flags,
    data and models are checked as in a launched run)."""
    import contextlib
    import io

    from accelerate.state import AcceleratorState

    module = import_script(script)
    stdout = io.StringIO()
    try:
        with contextlib.redirect_stdout(stdout):
            module.main(module.parse_args([str(argument) for argument in (*arguments, "--dry_run")]))
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    return stdout.getvalue()


def shapes_folder(folder, count: int = 16) -> None:
    """A user's detection folder: drawings of squares and circles of mixed sizes, formats and image sizes, their boxes
    in metadata.jsonl as COCO's [x, y, width, height] with class names."""
    folder.mkdir()
    lines = []
    for index in range(count):
        image = Image.new("RGB", (30 + index, 26 + index % 5), "white")
        draw = ImageDraw.Draw(image)
        boxes, categories = [], []
        for k, shape in enumerate(["square", "circle"][: 1 + index % 2]):
            x, y, side = 2 + 14 * k, 3 + index % 4, 9 + index % 3
            (draw.rectangle if shape == "square" else draw.ellipse)((x, y, x + side - 1, y + side - 1), fill="red")
            boxes.append([x, y, side, side])
            categories.append(shape)
        name = f"shapes_{index}.{'png' if index % 3 else 'jpg'}"
        image.save(folder / name)
        lines.append(json.dumps({"file_name": name, "objects": {"bbox": boxes, "category": categories}}))
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")


def hfgen_evaluate(capsys, *arguments) -> dict:
    """`hfgen evaluate *arguments` run in this process: it succeeds, and what it printed as JSON (without the line
    saying the card was updated)."""
    from hfgen.cli import main

    capsys.readouterr()
    assert main(["evaluate", *map(str, arguments)]) == 0
    return json.loads(capsys.readouterr().out.split("\nmodel-index")[0])


def evaluate_saved_copy(output_dir, folder, capsys, *flags) -> tuple[dict, dict]:
    """`hfgen evaluate --update_card` on a copy of a run's folder at `folder`: what it printed, and the run's own
    metrics.json (when the run wrote one)."""
    import shutil

    shutil.copytree(output_dir, folder)
    printed = hfgen_evaluate(capsys, folder, "--update_card", *flags)
    metrics = os.path.join(output_dir, "metrics.json")
    if not os.path.isfile(metrics):
        return printed, None
    with open(metrics) as file:
        return printed, json.load(file)
