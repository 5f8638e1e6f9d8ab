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
    from diffusers import DDIMPipeline, DDIMScheduler  # diffusers' own pipeline: no hfgen demo

    folder = tmp_path / "ddim"
    DDIMPipeline(unet=tiny_unet(), scheduler=DDIMScheduler(num_train_timesteps=10)).save_pretrained(folder)
    assert main(["space", str(folder)]) == 2
    assert "DDIMPipeline folders have no demo yet" in capsys.readouterr().err
    assert not (folder / "app.py").exists()
    assert main(["demo", str(folder)]) == 2
    assert "DDIMPipeline folders have no demo yet" in capsys.readouterr().err


def test_the_groupvit_demo_segments_an_upload_into_typed_classes(tmp_path, tiny_groupvit_pipeline):
    from hfgen import GroupViTSegmentationPipeline

    tiny_groupvit_pipeline.save_pretrained(tmp_path / "groupvit")
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


def test_every_family_that_allows_space_has_a_demo():
    import importlib.util

    from hfgen.training.arguments import DEMO_FAMILIES

    packages = {"gan": "pipelines.gan", "stylegan": "pipelines.stylegan", "vae": "pipelines.vae"}
    packages.update(ddpm="pipelines.ddpm", cyclegan="pipelines.cyclegan", pix2pix="pipelines.cyclegan")
    packages.update(ldm="pipelines.latent_diffusion", groupvit="pipelines.groupvit", clip="models.clip_heads")
    packages.update({"blip-captioning": "models.blip_heads", "blip-vqa": "models.blip_heads"})
    packages.update({"owlvit": "models.owlvit_heads", "controlnet": "pipelines.latent_diffusion"})
    packages["dreambooth-lora"] = "pipelines.latent_diffusion"  # served on their base pipeline (folders.py)
    packages["lcm"] = "pipelines.latent_diffusion"  # full LCM pipelines, and LCM-LoRA weights on their teacher
    packages["progan"] = "pipelines.progan"
    packages["vqgan"] = "pipelines.vqgan"
    packages["stackgan"] = "pipelines.stackgan"
    packages["super_resolution"] = "pipelines.cascade"  # its folders: SuperResolutionPipeline or a cascade
    packages["inpainting"] = "pipelines.inpainting"
    packages["unclip"] = "pipelines.unclip"
    assert set(DEMO_FAMILIES) == set(packages)
    for family in DEMO_FAMILIES:
        assert importlib.util.find_spec(f"hfgen.{packages[family]}.demo"), family
    assert importlib.util.find_spec("hfgen.pipelines.score_sde.demo")  # train_ddpm.py's score SDE folders


# --- the vision-language folders: transformers models (config.json), found by architecture ---

TOWER = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
DIGIT_NAMES = ["zero", "one", "two"]


def text_config(tokenizer, tower: dict) -> dict:
    special = dict(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    return dict(tower, vocab_size=len(tokenizer), max_position_embeddings=16, **special)


@pytest.fixture(scope="module")
def vision_language_folders(tmp_path_factory):
    """Tiny folders as the vision-language scripts save them: a CLIP with its zero-shot classifier (`zero_shot/`),
    a BLIP captioner and question answerer, an OWL-ViT detector whose config names its queries; tokenizers written
    here."""
    import tempfile

    from transformers import (
        BlipConfig,
        BlipForConditionalGeneration,
        BlipForQuestionAnswering,
        CLIPConfig,
        CLIPModel,
        OwlViTConfig,
        OwlViTForObjectDetection,
    )

    from hfgen import CLIPZeroShotClassifier
    from hfgen.models.blip_heads import blip_config_for, build_blip_processor
    from hfgen.models.clip_heads import build_clip_processor
    from hfgen.models.owlvit_heads import build_owl_processor

    root = tmp_path_factory.mktemp("vision-language")
    queries = [f"a photo of the digit {name}" for name in DIGIT_NAMES]
    with tempfile.TemporaryDirectory() as vocabulary:
        clip_processor = build_clip_processor(queries, vocabulary, 32, max_length=16)
    with tempfile.TemporaryDirectory() as vocabulary:
        blip_processor = build_blip_processor(queries + ["how many digits?", "two"], vocabulary, 16, max_length=16)
    with tempfile.TemporaryDirectory() as vocabulary:
        owl_processor = build_owl_processor(queries, vocabulary, 32, max_length=16)
    torch.manual_seed(0)
    vision = dict(TOWER, image_size=32, patch_size=8)
    clip_config = CLIPConfig(
        text_config=text_config(clip_processor.tokenizer, TOWER), vision_config=vision, projection_dim=8
    )
    clip = CLIPModel(clip_config).eval()
    clip.save_pretrained(root / "clip")
    clip_processor.save_pretrained(root / "clip")
    classifier = CLIPZeroShotClassifier.from_clip(clip, clip_processor.tokenizer, DIGIT_NAMES, ["the digit {}"])
    classifier.save_pretrained(root / "clip" / "zero_shot")
    architecture = BlipConfig(text_config=TOWER, vision_config=dict(TOWER, patch_size=8))
    blip_config = blip_config_for(blip_processor.tokenizer, 16, architecture)
    for name, model_class in (("blip", BlipForConditionalGeneration), ("vqa", BlipForQuestionAnswering)):
        model_class(blip_config).save_pretrained(root / name)
        blip_processor.save_pretrained(root / name)
    wide = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4)
    owl_config = OwlViTConfig(
        text_config=text_config(owl_processor.tokenizer, wide),
        vision_config=dict(wide, image_size=32, patch_size=8),
        projection_dim=32,
    )
    detector = OwlViTForObjectDetection(owl_config)
    detector.config.id2label = dict(enumerate(queries))  # as train_owlvit_detection.py records its queries
    detector.save_pretrained(root / "owl")
    owl_processor.save_pretrained(root / "owl")
    upload = root / "upload.png"
    Image.fromarray((np.random.default_rng(4).random((40, 36, 3)) * 255).astype(np.uint8)).save(upload)
    return root


def test_the_clip_demo_labels_an_upload_among_the_saved_classes(vision_language_folders):
    from transformers import CLIPModel, CLIPProcessor

    from hfgen.models.clip_heads.demo import zero_shot_probabilities

    root = vision_language_folders
    with demo_page(root / "clip") as page:
        # the zero-shot classifier's classes and templates are there before anything is typed
        assert page.locator("#class_names textarea").input_value() == "zero, one, two"
        assert page.locator("#templates textarea").input_value() == "the digit {}"
        upload_image(page, "classify_input", root / "upload.png")
        page.locator("#classify").click()
        page.locator("#zero_shot_labels").get_by_text("%").first.wait_for(timeout=60_000)
        shown = page.locator("#zero_shot_labels").inner_text()
        page.locator("#class_names textarea").fill("seven, two")
        page.locator("#classify").click()
        page.wait_for_function(
            "() => document.querySelector('#zero_shot_labels').innerText.includes('seven')", timeout=60_000
        )
        retyped = page.locator("#zero_shot_labels").inner_text()
        page.screenshot(path=os.path.join(ARTIFACTS, "demo-clip.png"), full_page=True)
    model, processor = CLIPModel.from_pretrained(root / "clip"), CLIPProcessor.from_pretrained(root / "clip")
    upload = Image.open(root / "upload.png")
    expected = zero_shot_probabilities(model, processor, upload, DIGIT_NAMES, ["the digit {}"])
    for name, probability in expected.items():
        assert f"{name}\n{round(probability * 100)}%" in shown, (name, shown)
    assert sum(expected.values()) == pytest.approx(1.0)
    retyped_expected = zero_shot_probabilities(model, processor, upload, ["seven", "two"], ["the digit {}"])
    for name, probability in retyped_expected.items():
        assert f"{name}\n{round(probability * 100)}%" in retyped, (name, retyped)


@pytest.mark.parametrize("folder", ["blip", "vqa"])
def test_the_blip_demos_caption_and_answer_an_upload(vision_language_folders, folder):
    from transformers import BlipForConditionalGeneration, BlipForQuestionAnswering, BlipProcessor

    from hfgen.models.blip_heads.demo import answer, caption

    root = vision_language_folders
    with demo_page(root / folder) as page:
        upload_image(page, "blip_input", root / "upload.png")
        if folder == "vqa":
            page.locator("#question textarea").fill("how many digits?")
        page.locator("#max_new_tokens input[type=number]").fill("6")
        page.locator("#max_new_tokens input[type=number]").press("Enter")
        page.locator("#generate").click()
        page.wait_for_function("() => document.querySelector('#generated textarea').value !== ''", timeout=60_000)
        shown = page.locator("#generated textarea").input_value()
        page.screenshot(path=os.path.join(ARTIFACTS, f"demo-{folder}.png"), full_page=True)
    processor = BlipProcessor.from_pretrained(root / folder)
    upload = Image.open(root / "upload.png")
    if folder == "vqa":
        expected = answer(
            BlipForQuestionAnswering.from_pretrained(root / folder), processor, upload, "how many digits?", 3, 6
        )
    else:
        expected = caption(BlipForConditionalGeneration.from_pretrained(root / folder), processor, upload, 3, 6)
    assert expected and shown == expected


def test_the_owlvit_demo_boxes_the_saved_queries_on_an_upload(vision_language_folders):
    from transformers import OwlViTForObjectDetection, OwlViTProcessor

    from hfgen.demo import enlarged
    from hfgen.models.owlvit_heads.demo import detect, draw_detections

    root = vision_language_folders
    queries = [f"a photo of the digit {name}" for name in DIGIT_NAMES]
    with demo_page(root / "owl") as page:
        assert page.locator("#queries textarea").input_value() == ", ".join(queries)
        upload_image(page, "detect_input", root / "upload.png")
        page.locator("#threshold input[type=number]").fill("0")
        page.locator("#threshold input[type=number]").press("Enter")
        page.locator("#detect").click()
        shown = shown_image(page, "detections")
        page.wait_for_function(
            "() => document.querySelector('#detection_list').innerText.includes('a photo of the digit')",
            timeout=60_000,
        )
        # the table's text: its label, the header, then each row's six cells, one per line
        text = page.locator("#detection_list").inner_text().split("y1", 1)[1]
        cells = [line.strip() for line in text.splitlines() if line.strip()]
        listed = [cells[start : start + 6] for start in range(0, len(cells), 6)]
        page.screenshot(path=os.path.join(ARTIFACTS, "demo-owlvit.png"), full_page=True)
    model, processor = (
        OwlViTForObjectDetection.from_pretrained(root / "owl"),
        OwlViTProcessor.from_pretrained(root / "owl"),
    )
    expected = detect(model, processor, Image.open(root / "upload.png"), queries, 0.0)
    assert len(expected) == 16  # one box per 8 px patch of the 32 px input, all kept at threshold 0
    assert shown.size == (36 * 3, 40 * 3)  # 36 x 40 upload, shown 3 times larger
    # the table lists the detections, best first
    assert len(listed) == len(expected)
    for row, detection in zip(listed, expected, strict=True):
        assert row[0] == detection["query"]
        assert [float(cell) for cell in row[1:]] == pytest.approx([detection["score"], *detection["box"]], abs=1e-3)
    # the shown image is the upload enlarged with the detections drawn on it, box for box
    upload = Image.open(root / "upload.png")
    drawn = np.asarray(draw_detections(upload, expected, queries).convert("RGB"))
    assert np.array_equal(np.asarray(shown.convert("RGB")), drawn)
    assert not np.array_equal(drawn, np.asarray(enlarged(upload.convert("RGB"), 36)))


def test_a_lora_adapter_folder_is_served_merged_onto_its_base(vision_language_folders, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import CLIPModel, CLIPProcessor

    from hfgen.demo import build_demo
    from hfgen.models.clip_heads.demo import zero_shot_probabilities
    from hfgen.models.modeling_utils import folder_architecture, load_model_folder

    root = vision_language_folders
    base = CLIPModel.from_pretrained(root / "clip")
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights="gaussian")
    adapted = get_peft_model(base, lora)
    with torch.no_grad():  # LoRA starts as the identity (B = 0): a trained adapter has moved B
        for name, parameter in adapted.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, 0.5)
    adapted.save_pretrained(tmp_path / "adapter")  # records the base folder as base_model_name_or_path
    CLIPProcessor.from_pretrained(root / "clip").save_pretrained(tmp_path / "adapter")
    assert not (tmp_path / "adapter" / "config.json").exists()
    assert folder_architecture(str(tmp_path / "adapter")) == "CLIPModel"
    merged = load_model_folder(str(tmp_path / "adapter"), CLIPModel).eval()
    reference = PeftModel.from_pretrained(CLIPModel.from_pretrained(root / "clip"), tmp_path / "adapter").eval()
    processor = CLIPProcessor.from_pretrained(root / "clip")
    upload = Image.open(root / "upload.png")
    with_adapter = zero_shot_probabilities(merged, processor, upload, DIGIT_NAMES, ["the digit {}"])
    without = zero_shot_probabilities(
        CLIPModel.from_pretrained(root / "clip"), processor, upload, DIGIT_NAMES, ["the digit {}"]
    )
    expected = zero_shot_probabilities(reference.base_model.model, processor, upload, DIGIT_NAMES, ["the digit {}"])
    assert with_adapter == pytest.approx(expected, abs=1e-5)
    assert with_adapter != pytest.approx(without, abs=1e-5), "the adapter changed nothing"
    assert type(build_demo(str(tmp_path / "adapter"))).__name__ == "Blocks"


def test_model_folders_without_a_demo_are_refused_in_one_line(tmp_path, capsys):
    from hfgen import GANConfig, GANDiscriminator

    discriminator = tmp_path / "discriminator"
    GANDiscriminator(GANConfig(latent_dim=8, image_size=16, generator_channels=4, max_channels=16)).save_pretrained(
        discriminator
    )
    assert main(["demo", str(discriminator)]) == 2
    assert "GANDiscriminator folders have no demo yet" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    for command in ("demo", "space"):
        assert main([command, str(tmp_path / "empty")]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and "holds no pipeline (model_index.json), no model (config.json)" in error
    assert not (tmp_path / "empty" / "app.py").exists()


def test_the_vision_language_folders_become_spaces(vision_language_folders, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "owl"
    shutil.copytree(vision_language_folders / "owl", folder)
    assert main(["space", str(folder)]) == 0
    assert "now holds app.py and requirements.txt" in capsys.readouterr().out
    monkeypatch.chdir(folder)
    namespace = {}
    import gradio

    monkeypatch.setattr(gradio.Blocks, "launch", lambda self, **kwargs: namespace.setdefault("launched", self))
    exec((folder / "app.py").read_text(), namespace)  # as the Space runs it, without serving
    assert type(namespace["launched"]).__name__ == "Blocks"


def tiny_unet():
    """An 8 px grey UNet of two levels."""
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    return UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
    ).eval()


@pytest.mark.parametrize("family", ["ddpm", "score_sde"])
def test_the_diffusion_demos_draw_by_seed_with_the_steps_asked(tmp_path, family):
    from diffusers import DDIMScheduler, ScoreSdeVeScheduler

    from hfgen import DDPMPipeline, ScoreSdePipeline

    if family == "ddpm":
        pipeline, steps = DDPMPipeline(unet=tiny_unet(), scheduler=DDIMScheduler(num_train_timesteps=20)), 3
    else:
        pipeline, steps = ScoreSdePipeline(unet=tiny_unet(), scheduler=ScoreSdeVeScheduler(num_train_timesteps=20)), 10
    pipeline.save_pretrained(tmp_path / family)
    with demo_page(tmp_path / family) as page:
        page.locator("#num_inference_steps input[type=number]").fill(str(steps))
        page.locator("#num_inference_steps input[type=number]").press("Enter")
        first, other, again = draw_by_seed(page)
    assert first.size == (256, 256)  # four 8 px images, 2 x 2, shown 16 times larger
    assert np.array_equal(np.asarray(first), np.asarray(again)) and not np.array_equal(
        np.asarray(first), np.asarray(other)
    )
    expected = pipeline(
        batch_size=1, generator=[torch.Generator().manual_seed(5)], num_inference_steps=steps, output_type="pil"
    ).images[0]
    shown = np.asarray(first.convert(expected.mode))[:128:16, :128:16].astype(int)
    assert np.abs(shown - np.asarray(expected).astype(int)).max() <= 1


def test_the_digits_classifier_demo_labels_an_uploaded_digit(tmp_path):
    import hfgen.metrics
    from hfgen.data import load_image_dataset
    from hfgen.models.digits_classifier import DigitsClassifier
    from hfgen.models.digits_classifier.demo import class_probabilities

    folder = os.path.join(os.path.dirname(hfgen.metrics.__file__), "digits_classifier")  # the shipped classifier
    digit = load_image_dataset("hfgen/digits", None, 32, None, None)["test"][0]
    upload = tmp_path / "digit.png"
    digit["image"].convert("L").resize((48, 48)).save(upload)
    with demo_page(folder) as page:
        upload_image(page, "digit_input", upload)
        page.locator("#classify").click()
        page.locator("#digit_labels").get_by_text("%").first.wait_for(timeout=60_000)
        shown = page.locator("#digit_labels").inner_text()
    probabilities = class_probabilities(DigitsClassifier.from_pretrained(folder).eval(), Image.open(upload))
    best = max(probabilities, key=probabilities.get)
    assert best == str(digit["label"])  # the shipped classifier reads a real test digit right
    assert f"{best}\n{round(probabilities[best] * 100)}%" in shown
