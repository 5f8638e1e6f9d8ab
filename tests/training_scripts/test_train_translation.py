"""train_cyclegan.py and train_pix2pix.py run as users run them (`accelerate launch` subprocesses, a few steps on
tiny networks): the built-in digit pair and two folders of the user's, the Hub-ready folder, the metrics against the
known mapping, exact resume (the image pools and the learning-rate schedule included), and one-line flag errors."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import hfgen

from .conftest import dry_run, evaluate_saved_copy, import_script, parse_error
from .test_secrets import FAKE_TOKEN, files_containing

TINY_NETWORKS = [
    "--generator_channels",
    "4",
    "--discriminator_channels",
    "4",
    "--num_residual_blocks",
    "1",
    "--train_batch_size",
    "8",
    "--num_validation_images",
    "4",
]


def cyclegan_arguments(output_dir, *extra):
    return [
        "--output_dir",
        output_dir,
        "--resolution",
        "16",
        *TINY_NETWORKS,
        "--pool_size",
        "10",  # full after the second step: the later ones swap with stored translations
        "--max_train_steps",
        "4",
        "--checkpointing_steps",
        "2",
        "--validation_steps",
        "2",
        "--random_flip",
        *extra,
    ]


@pytest.fixture(scope="module")
def cyclegan_run(tmp_path_factory, launch_script):
    """Four CycleGAN steps on the built-in digit pair at 16 px, checkpoints every two, a (fake) Hub token given: the
    uninterrupted reference run."""
    output_dir = tmp_path_factory.mktemp("cyclegan") / "run"
    result = launch_script("train_cyclegan.py", *cyclegan_arguments(output_dir, "--hub_token", FAKE_TOKEN))
    return output_dir, result


def test_cyclegan_folder_translates_both_ways_and_reports_against_the_known_mapping(cyclegan_run):
    output_dir, result = cyclegan_run
    pipeline = hfgen.CycleGANPipeline.from_pretrained(output_dir)
    digit = Image.fromarray((np.arange(256).reshape(16, 16)).astype(np.uint8), mode="L")
    to_b = pipeline([digit, digit], direction="a_to_b").images
    assert len(to_b) == 2 and to_b[0].size == (16, 16) and to_b[0].mode == "RGB"
    back = pipeline(to_b, direction="b_to_a", output_type="pt").images
    assert back.shape == (2, 3, 16, 16)
    for name in ("discriminator_a", "discriminator_b"):
        assert hfgen.CycleGANDiscriminator.from_pretrained(output_dir / name).config.in_channels == 3

    record = json.loads((output_dir / "metrics.json").read_text())
    metrics = record["metrics"]
    for direction in ("a_to_b", "b_to_a"):
        for name in ("psnr", "ssim", "fid", "kid", "class_preservation"):
            assert np.isfinite(metrics[f"{name}_{direction}"]), name
        assert 0 <= metrics[f"class_preservation_{direction}"] <= 1
    assert metrics["cycle_psnr_a"] > 0 and metrics["cycle_psnr_b"] > 0
    # The identity baseline of the digit pair: grey digits read as their inverted, coloured versions score badly.
    identity = record["baselines"]["psnr_a_to_b"]["identity mapping"]
    assert 0 < identity < 10
    assert record["baselines"]["class_preservation_a_to_b"]["real held-out digits"] > 0.9
    assert record["protocol"]["dataset"] == "hfgen/digits-colour" and record["protocol"]["split"] == "test"
    assert record["step"] == 4

    card = (output_dir / "README.md").read_text()
    assert "A CycleGAN (Zhu et al., 2017)" in card and "pipeline_tag: image-to-image" in card
    assert "| psnr_a_to_b | identity mapping |" in card
    assert "A, A -> B, A -> B -> A, B, B -> A, B -> A -> B" in card
    grid = Image.open(output_dir / "samples.png")
    assert grid.width == 8 * 64 and grid.height == 6 * 64  # 8 columns, 6 rows, enlarged for the card
    assert (output_dir / "validation" / "step-000002-translations.png").is_file()
    assert list((output_dir / "logs").rglob("events.out.tfevents.*"))
    # The token given on the command line reached no file and no log.
    assert files_containing(output_dir, FAKE_TOKEN) == []
    assert FAKE_TOKEN not in result.stdout + result.stderr


def test_cyclegan_resume_continues_exactly_with_its_pools_and_schedule(tmp_path, cyclegan_run, launch_script):
    reference_dir, _ = cyclegan_run
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copytree(reference_dir / "checkpoint-2", resumed_dir / "checkpoint-2")
    launch_script(
        "train_cyclegan.py",
        *cyclegan_arguments(resumed_dir, "--hub_token", FAKE_TOKEN, "--resume_from_checkpoint", "latest"),
    )
    for component in ("generator_ab", "generator_ba", "discriminator_a", "discriminator_b"):
        reference = load_file(reference_dir / component / "model.safetensors")
        resumed = load_file(resumed_dir / component / "model.safetensors")
        for key in reference:
            torch.testing.assert_close(resumed[key], reference[key], rtol=0, atol=1e-6, msg=f"{component}.{key}")


def test_cyclegan_on_two_processes_keeps_the_replicas_in_step(tmp_path, launch_script):
    """Under DDP the generators run several passes before one backward, the discriminators run unwrapped in the
    generators' step: the replicas must still take the same steps."""
    output_dir = tmp_path / "ddp"
    arguments = cyclegan_arguments(output_dir, "--report_to", "none", "--gradient_accumulation_steps", "2")
    launch_script("train_cyclegan.py", *arguments, "--validation_steps", "4", num_processes=2)
    record = json.loads((output_dir / "metrics.json").read_text())
    assert record["num_processes"] == 2 and record["replica_max_abs_difference"] == 0.0
    assert np.isfinite(record["metrics"]["psnr_a_to_b"])


def test_hfgen_evaluate_measures_the_saved_cyclegan_as_the_run_did(cyclegan_run, tmp_path, capsys):
    from huggingface_hub import ModelCard

    from hfgen.cli import main

    output_dir, _ = cyclegan_run
    folder = tmp_path / "cyclegan"
    # no data flag: the run's built-in pair and its test split, from training_args.json
    printed, record = evaluate_saved_copy(output_dir, folder, capsys)
    assert printed["metrics"] == pytest.approx(record["metrics"], abs=1e-5)
    assert printed["baselines"] == record["baselines"] and printed["protocol"] == record["protocol"]
    results = ModelCard.load(folder / "README.md").data.eval_results
    cycle = [result for result in results if result.metric_type == "cycle_psnr_a"]
    assert cycle[0].metric_value == pytest.approx(record["metrics"]["cycle_psnr_a"])
    assert cycle[0].dataset_split == "test" and "hfgen/digits-colour" in cycle[0].dataset_name
    # on other data: the built-in photo pair, paired in its test split, which no extractor or classifier reads
    assert main(["evaluate", str(folder), "--dataset_name", "hfgen/photos-graded"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["protocol"]["dataset"] == "hfgen/photos-graded" and printed["protocol"]["split"] == "test"
    paired_metrics = {f"{name}_{direction}" for name in ("psnr", "ssim") for direction in ("a_to_b", "b_to_a")}
    assert set(printed["metrics"]) == paired_metrics | {"cycle_psnr_a", "cycle_psnr_b"}


@pytest.fixture(scope="module")
def paired_folders(tmp_path_factory):
    """A user's pairs: 24 of scikit-image's photo crops in photos/ and their edge drawings (as PNG) in edges/, matched
    by file name (the two folders use different image formats)."""
    from hfgen.data.control import canny_edges
    from hfgen.data.translation import photo_crops

    root = tmp_path_factory.mktemp("pairs")
    (root / "edges").mkdir()
    (root / "photos").mkdir()
    for index, crop in enumerate(photo_crops(16)[:24]):
        crop.save(root / "photos" / f"crop{index:02d}.jpg")
        edges = canny_edges(np.asarray(crop.convert("L"), dtype=np.float64) / 255.0)
        Image.fromarray((edges * 255).astype(np.uint8)).convert("RGB").save(root / "edges" / f"crop{index:02d}.png")
    return root


def pix2pix_arguments(folders, output_dir, *extra):
    return [
        "--domain_a",
        folders / "edges",
        "--domain_b",
        folders / "photos",
        "--output_dir",
        output_dir,
        "--resolution",
        "16",
        *TINY_NETWORKS,
        "--max_train_steps",
        "4",
        "--checkpointing_steps",
        "2",
        "--validation_steps",
        "2",
        "--lr_scheduler",
        "step",
        "--lr_decay_steps",
        "3",
        "--random_flip",
        "--report_to",
        "none",
        *extra,
    ]


@pytest.fixture(scope="module")
def pix2pix_run(tmp_path_factory, paired_folders, launch_script):
    output_dir = tmp_path_factory.mktemp("pix2pix") / "run"
    launch_script("train_pix2pix.py", *pix2pix_arguments(paired_folders, output_dir))
    return output_dir


def test_pix2pix_on_a_users_paired_folders(pix2pix_run, paired_folders):
    output_dir = pix2pix_run
    pipeline = hfgen.Pix2PixPipeline.from_pretrained(output_dir)
    edges = Image.open(paired_folders / "edges" / "crop00.png")
    assert pipeline([edges]).images[0].size == (16, 16)
    discriminator = hfgen.CycleGANDiscriminator.from_pretrained(output_dir / "discriminator")
    assert discriminator.config.conditional_discriminator and discriminator.config.discriminator_in_channels == 6

    record = json.loads((output_dir / "metrics.json").read_text())
    # Paired held-out images (10% of 24, at least 4): PSNR / SSIM against them; no extractor knows photos.
    assert record["protocol"]["split"].startswith("train[held-out 4 of 24 images")
    assert record["protocol"]["training_pairs"] == "paired"
    assert set(record["metrics"]) == {"psnr_a_to_b", "ssim_a_to_b"}
    assert "identity mapping" in record["baselines"]["psnr_a_to_b"]
    recorded = json.loads((output_dir / "training_args.json").read_text())
    assert recorded["color_mode"] == "RGB" and recorded["lr_scheduler"] == "step"
    card = (output_dir / "README.md").read_text()
    assert "A pix2pix model (Isola et al., 2017)" in card and "A, A -> B, true B" in card
    assert "datasets:" not in card and "type: imagefolder" in card  # local folders are not Hub datasets


def test_pix2pix_resume_continues_exactly(tmp_path, pix2pix_run, paired_folders, launch_script):
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copytree(pix2pix_run / "checkpoint-2", resumed_dir / "checkpoint-2")
    launch_script(
        "train_pix2pix.py", *pix2pix_arguments(paired_folders, resumed_dir, "--resume_from_checkpoint", "latest")
    )
    for component in ("generator", "discriminator"):
        reference = load_file(pix2pix_run / component / "model.safetensors")
        resumed = load_file(resumed_dir / component / "model.safetensors")
        for key in reference:
            torch.testing.assert_close(resumed[key], reference[key], rtol=0, atol=1e-6, msg=f"{component}.{key}")


def test_hfgen_evaluate_measures_the_saved_pix2pix_as_the_run_did(pix2pix_run, tmp_path, capsys):
    from huggingface_hub import ModelCard

    from hfgen.cli import main

    folder = tmp_path / "pix2pix"
    shutil.copytree(pix2pix_run, folder)
    # no data flag: the run's own two paired folders and held-out pairs, from its training_args.json
    assert main(["evaluate", str(folder)]) == 0
    printed = json.loads(capsys.readouterr().out)
    record = json.loads((pix2pix_run / "metrics.json").read_text())
    assert printed["metrics"] == pytest.approx(record["metrics"], abs=1e-5)
    assert printed["baselines"] == record["baselines"] and printed["protocol"] == record["protocol"]
    # a dataset on the command line replaces the run's folders: the built-in digit pair, read by the digits classifier
    assert main(["evaluate", str(folder), "--dataset_name", "hfgen/digits-colour", "--update_card"]) == 0
    printed = json.loads(capsys.readouterr().out.split("\nmodel-index")[0])
    assert printed["protocol"]["dataset"] == "hfgen/digits-colour" and printed["protocol"]["split"] == "test"
    expected = {f"{name}_a_to_b" for name in ("psnr", "ssim", "fid", "kid", "class_preservation")}
    assert set(printed["metrics"]) == expected
    results = ModelCard.load(folder / "README.md").data.eval_results
    psnr = [result for result in results if result.metric_type == "psnr_a_to_b"]
    assert psnr[0].metric_value == pytest.approx(printed["metrics"]["psnr_a_to_b"])
    assert psnr[0].dataset_split == "test" and psnr[0].dataset_name == "hfgen/digits-colour (test)"
    # one image folder is not the two domains of a translation
    assert main(["evaluate", str(folder), "--train_data_dir", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert "--train_data_dir" in error and "two domains" in error and "\n" not in error


@pytest.mark.parametrize("script", ["train_cyclegan.py", "train_pix2pix.py"])
def test_translation_flag_errors_are_one_line(script):
    module = import_script(script)
    assert "--domain_a and --domain_b go together" in parse_error(module, "--domain_a", "x")
    assert "--n_epochs and --n_epochs_decay go together" in parse_error(module, "--n_epochs", "100")
    assert "--lr_decay_steps is for --lr_scheduler step" in parse_error(module, "--lr_decay_steps", "10")
    assert "--lr_warmup_steps" in parse_error(module, "--lr_warmup_steps", "10")
    assert "invalid choice: 'hinge'" in parse_error(module, "--gan_loss", "hinge")
    assert "--learning_rate must lie in (0, inf)" in parse_error(module, "--learning_rate", "0")
    assert "give either --dataset_name or --domain_a" in parse_error(
        module, "--dataset_name", "hfgen/photos-graded", "--domain_a", "a", "--domain_b", "b"
    )
    args = module.parse_args(["--domain_a", "/data/horses", "--domain_b", "/data/zebras/"])
    assert args.output_dir.endswith("-horses-to-zebras")


def test_schedules_follow_the_papers():
    from hfgen.training.translation import make_translation_scheduler, resolve_translation_steps

    module = import_script("train_cyclegan.py")
    args = module.parse_args(["--n_epochs", "2", "--n_epochs_decay", "2"])
    assert resolve_translation_steps(args, batches_per_epoch=5, default_steps=1000) == 20
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = make_translation_scheduler(args, optimizer, batches_per_epoch=5)
    rates = []
    for _ in range(20):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[:10] == [1.0] * 10  # constant for n_epochs
    assert rates[10:] == pytest.approx([1 - k / 10 for k in range(10)])  # then linear, reaching zero after the run
    assert optimizer.param_groups[0]["lr"] == 0.0
    args = module.parse_args(["--lr_scheduler", "plateau"])
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    plateau = make_translation_scheduler(args, optimizer, 5)
    for reconstruction_loss in (3.0, 2.0, 2.5, 2.5, 2.5):  # stepped at validations: no better than 2.0 three times
        plateau.step(reconstruction_loss)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1)
    args = module.parse_args(["--lr_scheduler", "cosine", "--max_train_steps", "10"])
    resolve_translation_steps(args, 5, 1000)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    cosine = make_translation_scheduler(args, optimizer, 5)
    for _ in range(10):
        optimizer.step()
        cosine.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_unpaired_folders_and_missing_pairs(tmp_path, paired_folders):
    """CycleGAN takes two folders unpaired, each with its own held-out images; pix2pix names the first image without
    a counterpart."""
    import logging
    from types import SimpleNamespace

    from hfgen.training.translation import load_translation_data
    from hfgen.training.translation import paired_folders as pair_up

    module = import_script("train_cyclegan.py")
    shutil.copytree(paired_folders / "photos", tmp_path / "photos")
    for index in range(6):  # domain B larger than A, and its own images
        Image.new("RGB", (20, 16), (index * 40, 90, 200)).save(tmp_path / "photos" / f"flat{index}.png")
    args = module.parse_args(["--domain_a", str(paired_folders / "edges"), "--domain_b", str(tmp_path / "photos")])
    accelerator = SimpleNamespace(num_processes=1, device=torch.device("cpu"))
    data = load_translation_data(args, accelerator, paired=False, logger=logging.getLogger("test"))
    assert (len(data.train_a), len(data.train_b), len(data.eval_a), len(data.eval_b)) == (20, 26, 4, 4)
    assert not data.paired_evaluation and data.feature_extractor is None and data.datasets == []
    assert data.eval_b.shape == (4, 3, 32, 32) and args.color_mode == "RGB"

    mixed = tmp_path / "edges"
    shutil.copytree(paired_folders / "edges", mixed)
    shutil.copy(paired_folders / "edges" / "crop00.png", mixed / "lonely.png")
    with pytest.raises(ValueError, match=r"no image named like 1 of the 25 images of --domain_a \(first: 'lonely'\)"):
        pair_up(str(mixed), str(paired_folders / "photos"))
    assert len(pair_up(str(paired_folders / "edges"), str(paired_folders / "photos"))["train"]) == 24


def test_dry_run_reports_the_networks_and_trains_nothing(tmp_path):
    output_dir = tmp_path / "dry"
    report = json.loads(dry_run("train_pix2pix.py", "--output_dir", output_dir, "--resolution", "16"))
    assert report["model_config"]["generator_architecture"] == "unet"
    assert report["model_config"]["unet_num_downs"] == 4 and report["model_config"]["conditional_discriminator"]
    assert report["args"]["color_mode"] == "RGB"
    assert not output_dir.exists()


def tiny_cyclegan_step(accelerator, gan_loss: str = "lsgan", norm: str = "instance"):
    """A CycleGANStep on tiny networks at 16 px, as train_cyclegan.py builds it, with SGD for exact comparisons (a
    bias before instance norm has a gradient of rounding noise only, which Adam would blow up)."""
    from types import SimpleNamespace

    from hfgen.training.adversarial import ImagePool

    module = import_script("train_cyclegan.py")
    config = hfgen.CycleGANConfig(
        generator_channels=4, discriminator_channels=4, num_residual_blocks=1, discriminator_layers=2, norm=norm
    )
    torch.manual_seed(0)
    networks = {
        "generator_ab": hfgen.CycleGANGenerator(config),
        "generator_ba": hfgen.CycleGANGenerator(config.reversed()),
        "discriminator_a": hfgen.CycleGANDiscriminator(config.reversed()),
        "discriminator_b": hfgen.CycleGANDiscriminator(config),
    }
    g_parameters = [p for name in ("generator_ab", "generator_ba") for p in networks[name].parameters()]
    d_parameters = [p for name in ("discriminator_a", "discriminator_b") for p in networks[name].parameters()]
    flags = SimpleNamespace(
        gan_loss=gan_loss, lambda_cycle=10.0, lambda_identity=0.5, gp_weight=10.0, max_grad_norm=1.0
    )
    optimizers = torch.optim.SGD(g_parameters, lr=0.1), torch.optim.SGD(d_parameters, lr=0.1)
    step = module.CycleGANStep(accelerator, networks, networks, *optimizers, ImagePool(0), ImagePool(0), flags)
    return step, networks


@pytest.mark.parametrize("gan_loss", ["vanilla", "wgan-gp"])
def test_cyclegan_step_with_the_other_adversarial_losses(gan_loss):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    batch = [(torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1)]
    try:
        step, networks = tiny_cyclegan_step(Accelerator(cpu=True), gan_loss)
        before = {name: network.conv_out.weight.clone() for name, network in networks.items() if "generator" in name}
        logs = step(batch)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    assert all(np.isfinite(value) for value in logs.values())
    assert {"g_loss", "cycle", "identity", "d_a_loss", "d_b_loss"} <= set(logs)
    for name, weight in before.items():
        assert not torch.equal(networks[name].conv_out.weight, weight)  # both generators took the step


def test_batch_norm_runs_every_pass_on_its_own():
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    try:
        step, _ = tiny_cyclegan_step(Accelerator(cpu=True), norm="batch")
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    assert not step.joint_passes  # batch statistics would mix the cycle and identity batches


def test_joint_passes_take_the_same_step_as_separate_ones():
    """With instance norm, CycleGANStep runs a generator's cycle and identity passes (and a discriminator's real and
    pooled passes) as one pass on both batches: the same step as the paper code's separate passes."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    batch = [(torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1)]
    results = []
    try:
        accelerator = Accelerator(cpu=True)
        for joint in (True, False):
            step, networks = tiny_cyclegan_step(accelerator)
            assert step.joint_passes  # instance norm
            step.joint_passes = joint
            results.append((step(batch), {name: network.state_dict() for name, network in networks.items()}))
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    (joint_logs, joint_weights), (separate_logs, separate_weights) = results
    assert joint_logs == pytest.approx(separate_logs, rel=1e-5)
    for name, weights in joint_weights.items():
        for key, value in weights.items():
            torch.testing.assert_close(value, separate_weights[name][key], rtol=1e-4, atol=1e-5, msg=f"{name}.{key}")


def test_training_continues_from_a_saved_folder_and_refuses_another_kind(cyclegan_run, pix2pix_run, paired_folders):
    """--pretrained_model_name_or_path: a folder the script wrote gives back its networks, discriminators included;
    a CycleGAN folder is not a pix2pix one."""
    cyclegan_dir, _ = cyclegan_run
    cyclegan = import_script("train_cyclegan.py")
    args = cyclegan.parse_args(["--pretrained_model_name_or_path", str(cyclegan_dir), "--resolution", "16"])
    networks = cyclegan.build_networks(args, channels=3)
    saved = load_file(cyclegan_dir / "discriminator_b" / "model.safetensors")
    for key, value in networks["discriminator_b"].state_dict().items():
        torch.testing.assert_close(value, saved[key], rtol=0, atol=0)
    pix2pix = import_script("train_pix2pix.py")
    folders = ["--domain_a", str(paired_folders / "edges"), "--domain_b", str(paired_folders / "photos")]
    args = pix2pix.parse_args(["--pretrained_model_name_or_path", str(pix2pix_run), "--resolution", "16", *folders])
    assert pix2pix.build_networks(args, channels=3)["discriminator"].config.conditional_discriminator
    args = pix2pix.parse_args(["--pretrained_model_name_or_path", str(cyclegan_dir), "--resolution", "16", *folders])
    with pytest.raises(ValueError, match=r"run has no generator/: give a folder this script wrote"):
        pix2pix.build_networks(args, channels=3)
