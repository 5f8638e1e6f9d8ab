"""The Gradio demos in a real browser: `hfgen demo` serves a tiny saved folder on a free localhost port, headless
Chromium (Debian's, driven by playwright) fills the seed and clicks, and the test reads the image that appears: the
right size, the same pixels for the same seed, others for another. `hfgen space` and `--space` write a runnable Space.

Screenshots go to `test-artifacts/` (or $HFGEN_TEST_ARTIFACTS). The server is stopped after each test, failed or not.
"""

import contextlib
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

from hfgen import (
    GANConfig,
    GANGenerator,
    GANPipeline,
    StyleGANConfig,
    StyleGANGenerator,
    StyleGANPipeline,
    VAEConfig,
    VAEModel,
    VAEPipeline,
)
from hfgen.cli import main

CHROMIUM = "/usr/bin/chromium"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARTIFACTS = os.environ.get("HFGEN_TEST_ARTIFACTS", os.path.join(REPO, "test-artifacts"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def widen(model) -> None:
    """Wider random weights than the init, so that an untrained tiny generator's images differ visibly by seed."""
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.ndim > 1:
                parameter.normal_(0.0, 0.2)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Tiny saved folders of three families: a conditional GAN, an unconditional StyleGAN and a VAE, 16 px."""
    root = tmp_path_factory.mktemp("demo")
    torch.manual_seed(0)
    gan = GANGenerator(GANConfig(latent_dim=8, image_size=16, generator_channels=4, max_channels=16, num_classes=10))
    widen(gan)
    GANPipeline(gan=gan.eval()).save_pretrained(root / "gan")
    config = StyleGANConfig(resolution=16, latent_dim=16, w_dim=16, mapping_layers=2, channel_base=128, channel_max=16)
    stylegan = StyleGANGenerator(config)  # its own init already draws varied images
    StyleGANPipeline(stylegan=stylegan.eval()).save_pretrained(root / "stylegan")
    vae = VAEModel(VAEConfig(in_channels=1, sample_size=16, block_out_channels=[8, 16], norm_num_groups=4))
    widen(vae)
    VAEPipeline(vae=vae.eval()).save_pretrained(root / "vae")
    return root


def serve(folder, port: int) -> subprocess.Popen:
    """`hfgen demo folder --port port` as a user starts it; returns once the page answers (or fails with the log)."""
    command = os.path.join(os.path.dirname(sys.executable), "hfgen")
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    server = subprocess.Popen(
        [command, "demo", str(folder), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"hfgen demo exited with {server.returncode}: {server.stdout.read()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise AssertionError(f"hfgen demo did not answer on port {port} within 120 s")


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@contextlib.contextmanager
def demo_page(folder):
    """`hfgen demo folder` on a free port and a headless Chromium page on it, ready (the app's components and their
    events in place); browser and server are stopped at the end, failed or not."""
    from playwright.sync_api import sync_playwright

    assert os.path.isfile(CHROMIUM), f"the browser tests need {CHROMIUM}: apt-get install -y chromium (see .ci/run)"
    os.makedirs(ARTIFACTS, exist_ok=True)
    port = free_port()
    server = serve(folder, port)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1100, "height": 900})
                page.goto(f"http://127.0.0.1:{port}/")
                page.wait_for_load_state("networkidle")
                yield page
            finally:
                browser.close()
    finally:
        stop(server)


def upload_image(page, element: str, path) -> None:
    """Give the image input `element` (its elem_id) the file at `path`, and wait until the page shows it."""
    page.locator(f"#{element} input[type=file]").set_input_files(str(path))
    page.locator(f"#{element} img").first.wait_for(state="visible", timeout=60_000)


def shown_image(page, output: str = "samples") -> Image.Image:
    """The image in the demo's output `output` (its elem_id), fetched as the browser got it."""
    image = page.locator(f"#{output} img").first
    image.wait_for(state="visible", timeout=60_000)
    source = image.get_attribute("src")
    return Image.open(io.BytesIO(page.request.get(source).body()))


def generate(page, seed: int, previous_source: str | None = None) -> Image.Image:
    page.locator("#seed input").fill(str(seed))
    page.locator("#generate").click()
    # wait until a new image replaces the previous one
    page.wait_for_function(
        "previous => { const img = document.querySelector('#samples img'); return img && img.src !== previous; }",
        arg=previous_source or "",
        timeout=60_000,
    )
    return shown_image(page)


def draw_by_seed(page) -> list[Image.Image]:
    """Generate with seeds 5, 6 and 5 again (each click changes the image, so each is awaited); returns the three
    images."""
    images, source = [], None
    for seed in (5, 6, 5):
        images.append(generate(page, seed, source))
        source = page.locator("#samples img").first.get_attribute("src")
    return images


@pytest.mark.parametrize("family", ["gan", "stylegan", "vae"])
def test_the_demo_draws_by_seed_in_a_real_browser(folders, family):
    with demo_page(folders / family) as page:
        first, other, again = draw_by_seed(page)
        page.screenshot(path=os.path.join(ARTIFACTS, f"demo-{family}.png"), full_page=True)
    # four 16 px images by default, in a 2 x 2 grid, shown 8 times larger
    assert first.size == (256, 256)
    assert np.array_equal(np.asarray(first), np.asarray(again)), "the same seed showed other pixels"
    assert not np.array_equal(np.asarray(first), np.asarray(other)), "another seed showed the same pixels"
    # the pixels are those the pipeline draws for seed 5 (the first image; the others from seeds 6 to 8)
    pipeline_class = {"gan": GANPipeline, "stylegan": StyleGANPipeline, "vae": VAEPipeline}[family]
    pipeline = pipeline_class.from_pretrained(folders / family)
    expected = pipeline(batch_size=1, generator=[torch.Generator().manual_seed(5)], output_type="pil").images[0]
    shown = np.asarray(first.convert(expected.mode))[:128:8, :128:8].astype(int)
    assert np.abs(shown - np.asarray(expected).astype(int)).max() <= 1


def test_the_vae_demo_reconstructs_an_upload_and_interpolates(folders, tmp_path):
    upload = tmp_path / "upload.png"
    Image.fromarray((np.random.default_rng(0).random((40, 30)) * 255).astype(np.uint8)).save(upload)
    with demo_page(folders / "vae") as page:
        page.get_by_role("tab", name="Reconstruct").click()
        upload_image(page, "reconstruct_input", upload)
        page.locator("#reconstruct").click()
        reconstruction = shown_image(page, "reconstruction")
        page.get_by_role("tab", name="Interpolate").click()
        page.locator("#steps input[type=number]").fill("5")
        page.locator("#steps input[type=number]").press("Enter")
        page.locator("#interpolate").click()
        path = shown_image(page, "path")
        page.screenshot(path=os.path.join(ARTIFACTS, "demo-vae-interpolate.png"), full_page=True)
    pipeline = VAEPipeline.from_pretrained(folders / "vae")
    # the reconstruction of the uploaded image, resized to 16 px, shown 8 times larger
    expected = np.asarray(pipeline.reconstruct(Image.open(upload)).images[0]).astype(int)
    assert reconstruction.size == (128, 128)
    assert np.abs(np.asarray(reconstruction.convert("L"))[::8, ::8].astype(int) - expected).max() <= 1
    # five steps from the sample of seed 0 to that of seed 1, in a row
    assert path.size == (5 * 128, 128)
    ends = [pipeline(generator=[torch.Generator().manual_seed(seed)]).images[0] for seed in (0, 1)]
    first = np.asarray(pipeline.interpolate(*ends, num_steps=5, method="spherical").images[0]).astype(int)
    assert np.abs(np.asarray(path.convert("L"))[:128:8, :128:8].astype(int) - first).max() <= 1


def test_the_vae_demo_edits_along_an_attribute_of_two_uploaded_sets(folders, tmp_path):
    paths = {}
    for name, brightness in (("with", 200), ("without", 40), ("edit", 120)):
        paths[name] = []
        for index in range(2 if name != "edit" else 1):
            pixels = np.random.default_rng(index + brightness).normal(brightness, 20, (16, 16)).clip(0, 255)
            path = tmp_path / f"{name}_{index}.png"
            Image.fromarray(pixels.astype(np.uint8)).save(path)
            paths[name].append(path)
    with demo_page(folders / "vae") as page:
        page.get_by_role("tab", name="Edit").click()
        page.locator("#with_images input[type=file]").set_input_files([str(path) for path in paths["with"]])
        page.locator("#without_images input[type=file]").set_input_files([str(path) for path in paths["without"]])
        upload_image(page, "edit_input", paths["edit"][0])
        page.locator("#strength input[type=number]").fill("2")
        page.locator("#strength input[type=number]").press("Enter")
        page.locator("#edit").click()
        edited = shown_image(page, "edited")
    pipeline = VAEPipeline.from_pretrained(folders / "vae")
    vector = pipeline.attribute_vector(
        [Image.open(path) for path in paths["with"]], [Image.open(path) for path in paths["without"]]
    )
    expected = pipeline.apply_attribute(Image.open(paths["edit"][0]), vector, strength=2.0).images[0]
    assert edited.size == (128, 128)
    shown = np.asarray(edited.convert(expected.mode))[::8, ::8].astype(int)
    assert np.abs(shown - np.asarray(expected).astype(int)).max() <= 1


def test_the_stylegan_demo_mixes_styles_and_interpolates(folders):
    from hfgen.demo import seed_latent

    with demo_page(folders / "stylegan") as page:
        page.get_by_role("tab", name="Style mixing").click()
        page.locator("#coarse_seed input").fill("3")
        page.locator("#fine_seed input").fill("4")
        page.locator("#mix").click()
        mixed = shown_image(page, "mixed")
        page.get_by_role("tab", name="Interpolate").click()
        page.locator("#steps input[type=number]").fill("3")
        page.locator("#steps input[type=number]").press("Enter")
        page.locator("#interpolate").click()
        path = shown_image(page, "path")
        page.screenshot(path=os.path.join(ARTIFACTS, "demo-stylegan-mixing.png"), full_page=True)
    pipeline = StyleGANPipeline.from_pretrained(folders / "stylegan")
    coarse, fine = seed_latent(3, 16)[None], seed_latent(4, 16)[None]
    layers = pipeline.stylegan.num_ws
    # coarse alone, fine alone, and the mix at the middle layer, side by side, each shown 8 times larger
    assert mixed.size == (3 * 128, 128)
    mode = pipeline(batch_size=1).images[0].mode
    shown = np.asarray(mixed.convert(mode))[::8, ::8].astype(int)
    for index, layer in enumerate((layers, 0, layers // 2)):
        expected = pipeline.style_mixing(layer, latents=coarse, mixing_latents=fine).images[0]
        assert np.abs(shown[:, 16 * index : 16 * (index + 1)] - np.asarray(expected).astype(int)).max() <= 1
    assert not np.array_equal(shown[:, :16], shown[:, 16:32])
    # three steps in W from seed 0 to seed 1
    assert path.size == (3 * 128, 128)
    expected = pipeline.interpolate(seed_latent(0, 16), seed_latent(1, 16), num_steps=3, space="w").images
    row = np.asarray(path.convert(mode))[::8, ::8].astype(int)
    for index, image in enumerate(expected):
        assert np.abs(row[:, 16 * index : 16 * (index + 1)] - np.asarray(image).astype(int)).max() <= 1


def test_the_cyclegan_demo_translates_an_upload_both_ways(tmp_path):
    from hfgen import CycleGANConfig, CycleGANGenerator, CycleGANPipeline

    config = CycleGANConfig(in_channels=3, out_channels=3, generator_channels=4, num_residual_blocks=1)
    torch.manual_seed(0)
    CycleGANPipeline(CycleGANGenerator(config).eval(), CycleGANGenerator(config.reversed()).eval()).save_pretrained(
        tmp_path / "cyclegan"
    )
    upload = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(1).random((34, 30, 3)) * 255).astype(np.uint8)).save(upload)
    shown = {}
    with demo_page(tmp_path / "cyclegan") as page:
        for tab, key in (("A to B", "a_to_b"), ("B to A", "b_to_a")):
            page.get_by_role("tab", name=tab).click()
            upload_image(page, f"{key}_input", upload)
            page.locator(f"#{key}_button").click()
            shown[key] = shown_image(page, f"{key}_output")
        page.screenshot(path=os.path.join(ARTIFACTS, "demo-cyclegan.png"), full_page=True)
    pipeline = CycleGANPipeline.from_pretrained(tmp_path / "cyclegan")
    cropped = Image.open(upload).crop((0, 0, 28, 32))  # 30x34 cropped to the generator's stride 4
    for key in ("a_to_b", "b_to_a"):
        expected = np.asarray(pipeline(cropped, direction=key).images[0]).astype(int)
        assert shown[key].size == (28 * 4, 32 * 4)
        assert np.abs(np.asarray(shown[key].convert("RGB"))[::4, ::4].astype(int) - expected).max() <= 1
    assert not np.array_equal(np.asarray(shown["a_to_b"]), np.asarray(shown["b_to_a"]))


def test_the_pix2pix_demo_translates_an_upload(tmp_path):
    from hfgen import CycleGANConfig, CycleGANGenerator, Pix2PixPipeline

    config = CycleGANConfig(
        in_channels=1, out_channels=3, generator_channels=4, generator_architecture="unet", unet_num_downs=3
    )
    torch.manual_seed(0)
    Pix2PixPipeline(CycleGANGenerator(config).eval()).save_pretrained(tmp_path / "pix2pix")
    upload = tmp_path / "edges.png"
    Image.fromarray((np.random.default_rng(2).random((20, 17)) * 255).astype(np.uint8)).save(upload)
    with demo_page(tmp_path / "pix2pix") as page:
        upload_image(page, "translate_input", upload)
        page.locator("#translate_button").click()
        shown = shown_image(page, "translate_output")
    pipeline = Pix2PixPipeline.from_pretrained(tmp_path / "pix2pix")
    expected = np.asarray(pipeline(Image.open(upload).crop((0, 0, 16, 16))).images[0]).astype(int)
    assert shown.size == (16 * 8, 16 * 8)  # 17x20 cropped to the U-Net's stride 8, shown 8 times larger
    assert np.abs(np.asarray(shown.convert("RGB"))[::8, ::8].astype(int) - expected).max() <= 1


def tiny_latent_diffusion_components() -> dict:
    """The tiny latent diffusion components of the pipeline tests (a 16 px VAE, a CLIP text encoder, a UNet, DDIM)."""
    import importlib.util

    path = os.path.join(REPO, "tests", "pipelines", "test_pipeline_latent_diffusion.py")
    spec = importlib.util.spec_from_file_location("ldm_components", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.tiny_components()


def test_the_latent_diffusion_demo_draws_from_a_prompt_with_any_scheduler(tmp_path):
    from hfgen import LatentDiffusionPipeline

    LatentDiffusionPipeline(**tiny_latent_diffusion_components()).save_pretrained(tmp_path / "ldm")
    with demo_page(tmp_path / "ldm") as page:
        page.locator("#prompt textarea").fill("a handwritten digit one")
        page.locator("#steps input[type=number]").fill("2")
        page.locator("#steps input[type=number]").press("Enter")
        ddim = generate(page, 0)
        source = page.locator("#samples img").first.get_attribute("src")
        page.locator("#scheduler input").click()
        page.get_by_role("option", name="DPMSolverMultistepScheduler").click()
        dpm = generate(page, 0, source)
        page.screenshot(path=os.path.join(ARTIFACTS, "demo-latent-diffusion.png"), full_page=True)
    from diffusers import DPMSolverMultistepScheduler

    pipeline = LatentDiffusionPipeline.from_pretrained(tmp_path / "ldm")
    arguments = dict(prompt="a handwritten digit one", guidance_scale=5.0, num_inference_steps=2)
    for shown, scheduler in ((ddim, None), (dpm, DPMSolverMultistepScheduler)):
        if scheduler is not None:
            pipeline.scheduler = scheduler.from_config(pipeline.scheduler.config)
        expected = pipeline(**arguments, generator=[torch.Generator().manual_seed(0)]).images[0]
        assert shown.size == (2 * 128, 2 * 128)  # four 16 px images, shown 8 times larger
        top_left = np.asarray(shown.convert(expected.mode))[:128:8, :128:8].astype(int)
        assert np.abs(top_left - np.asarray(expected).astype(int)).max() <= 1
    assert not np.array_equal(np.asarray(ddim), np.asarray(dpm))


def test_the_controlnet_demo_takes_a_control_image(tmp_path):
    from diffusers import ControlNetModel

    from hfgen import LatentDiffusionControlNetPipeline

    components = tiny_latent_diffusion_components()
    torch.manual_seed(1)
    controlnet = ControlNetModel.from_unet(components["unet"], conditioning_embedding_out_channels=(8, 16))
    with torch.no_grad():  # noise in the zero convolutions, as training puts there, so the control image matters
        for name, parameter in controlnet.named_parameters():
            if name.startswith(("controlnet_down_blocks", "controlnet_mid_block")):
                parameter.normal_(std=0.3)
    LatentDiffusionControlNetPipeline(**components, controlnet=controlnet.eval()).save_pretrained(tmp_path / "cn")
    control = tmp_path / "control.png"
    Image.fromarray((np.random.default_rng(3).random((16, 16, 3)) * 255).astype(np.uint8)).save(control)
    with demo_page(tmp_path / "cn") as page:
        page.locator("#prompt textarea").fill("a handwritten digit one")
        page.locator("#steps input[type=number]").fill("2")
        page.locator("#steps input[type=number]").press("Enter")
        upload_image(page, "control_image", control)
        shown = generate(page, 0)
    pipeline = LatentDiffusionControlNetPipeline.from_pretrained(tmp_path / "cn")
    expected = pipeline(
        prompt="a handwritten digit one",
        image=Image.open(control),
        guidance_scale=5.0,
        num_inference_steps=2,
        generator=[torch.Generator().manual_seed(0)],
    ).images[0]
    assert shown.size == (2 * 128, 2 * 128)
    top_left = np.asarray(shown.convert(expected.mode))[:128:8, :128:8].astype(int)
    assert np.abs(top_left - np.asarray(expected).astype(int)).max() <= 1


def test_space_files_make_the_folder_a_space(folders, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "gan"
    shutil.copytree(folders / "gan", folder)
    (folder / "README.md").write_text("---\nlibrary_name: hfgen\n---\n# gan\n")
    assert main(["space", str(folder)]) == 0
    assert "now holds app.py and requirements.txt" in capsys.readouterr().out
    assert 'build_demo(".").launch()' in (folder / "app.py").read_text()
    assert (folder / "requirements.txt").read_text() == "hfgen[demo]\n"
    from huggingface_hub import ModelCard

    data = ModelCard.load(folder / "README.md").data
    assert (data.sdk, data.app_file, data.library_name) == ("gradio", "app.py", "hfgen")
    # the app builds the demo of the folder it lies in, as a Space runs it
    monkeypatch.chdir(folder)
    from hfgen.demo import build_demo

    assert type(build_demo(".")).__name__ == "Blocks"


def test_folders_without_a_demo_are_refused_in_one_line(tmp_path, capsys):
    from diffusers import DDIMPipeline, DDIMScheduler, UNet2DModel  # diffusers' own pipeline: no hfgen demo

    unet = UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
    )
    folder = tmp_path / "ddim"
    DDIMPipeline(unet=unet, scheduler=DDIMScheduler(num_train_timesteps=10)).save_pretrained(folder)
    assert main(["space", str(folder)]) == 2
    assert "DDIMPipeline folders have no demo yet" in capsys.readouterr().err
    assert not (folder / "app.py").exists()
    assert main(["demo", str(folder)]) == 2
    assert "DDIMPipeline folders have no demo yet" in capsys.readouterr().err


def test_the_groupvit_demo_segments_an_upload_into_typed_classes(tmp_path):
    from hfgen import GroupViTSegmentationPipeline

    groupvit_pipeline().save_pretrained(tmp_path / "groupvit")
    upload = tmp_path / "canvas.png"
    Image.fromarray((np.random.default_rng(4).random((32, 32, 3)) * 255).astype(np.uint8)).save(upload)
    with demo_page(tmp_path / "groupvit") as page:
        upload_image(page, "segment_input", upload)
        page.locator("#class_names textarea").fill("one, digit")
        page.locator("#segment").click()
        shown = shown_image(page, "labels")
        legend = page.locator("#legend").inner_text()
    pipeline = GroupViTSegmentationPipeline.from_pretrained(tmp_path / "groupvit")
    expected = pipeline(Image.open(upload), ["one", "digit"], background_threshold=-1.0).images[0]
    assert shown.size == (128, 128)  # 32 px, shown 4 times larger
    assert np.abs(np.asarray(shown.convert("RGB"))[::4, ::4].astype(int) - np.asarray(expected).astype(int)).max() <= 1
    assert "background: rgb(0, 0, 0)" in legend and "one: rgb" in legend and "digit: rgb" in legend


def groupvit_pipeline():
    """A tiny GroupViT segmentation pipeline, with a tokenizer written here."""
    import tempfile

    from transformers import GroupViTConfig, GroupViTModel

    from hfgen import GroupViTSegmentationPipeline
    from hfgen.models.clip_heads import build_clip_processor

    with tempfile.TemporaryDirectory() as vocabulary:
        processor = build_clip_processor(["the digit one"], vocabulary, 32, max_length=16)
    tower = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    vision = dict(tower, depths=[1, 1], num_hidden_layers=2, num_group_tokens=[2, 0], num_output_groups=[2, 2])
    text = dict(tower, vocab_size=len(processor.tokenizer), max_position_embeddings=16)
    config = GroupViTConfig(
        text_config=text, vision_config=dict(vision, image_size=32, patch_size=8), projection_dim=8
    )
    model = GroupViTModel(config).eval()
    return GroupViTSegmentationPipeline(model, processor.tokenizer, processor.image_processor)


def test_every_family_that_allows_space_has_a_demo():
    import importlib.util

    from hfgen.training.arguments import DEMO_FAMILIES

    packages = {"gan": "gan", "stylegan": "stylegan", "vae": "vae", "ddpm": "ddpm", "cyclegan": "cyclegan"}
    packages.update(pix2pix="cyclegan", ldm="latent_diffusion", groupvit="groupvit")
    assert set(DEMO_FAMILIES) == set(packages)
    for family in DEMO_FAMILIES:
        assert importlib.util.find_spec(f"hfgen.pipelines.{packages[family]}.demo"), family
    assert importlib.util.find_spec("hfgen.pipelines.score_sde.demo")  # train_ddpm.py's score SDE folders
