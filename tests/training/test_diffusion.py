"""The diffusion kind of training: noise draws, noise levels, and diffusers' EMAModel as the scripts use it."""

import argparse

import pytest
import torch
from diffusers.training_utils import EMAModel

from hfgen.training.diffusion import averaged_weights, create_ema, sample_noise_levels, training_noise


def test_offset_noise_adds_one_constant_per_image_and_channel():
    samples = torch.zeros(2000, 2, 4, 4)
    torch.manual_seed(0)
    plain = training_noise(samples, 0.0)
    torch.manual_seed(0)
    offset = training_noise(samples, 0.5)
    difference = offset - plain
    assert torch.allclose(difference, difference[:, :, :1, :1].expand_as(difference), atol=1e-5)  # constant per map
    assert 0.45 < difference[:, :, 0, 0].std().item() < 0.55


def test_noise_levels_are_log_uniform_between_the_ends():
    torch.manual_seed(0)
    sigmas = sample_noise_levels(20000, 0.01, 50.0, "cpu")
    assert sigmas.min() >= 0.01 and sigmas.max() <= 50.0
    log_fraction = (sigmas.log() - torch.log(torch.tensor(0.01))) / torch.log(torch.tensor(5000.0))
    assert abs(log_fraction.mean().item() - 0.5) < 0.01 and abs(log_fraction.std().item() - (1 / 12) ** 0.5) < 0.01


def test_ema_update_follows_the_warmup_formula_and_averaged_weights_restore():
    model = torch.nn.Linear(3, 1)
    args = argparse.Namespace(ema_decay=0.999, ema_power=0.75)
    ema = create_ema(list(model.parameters()), args)
    assert isinstance(ema, EMAModel)
    average = [p.detach().clone() for p in model.parameters()]
    for step in range(1, 6):
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(1.0)
        ema.step(model.parameters())
        # diffusers' warm-up: decay = 1 - (1 + (step - 1))^-power, capped at ema_decay (0 at the first step)
        decay = 0.0 if step == 1 else min(0.999, 1 - (1 + (step - 1)) ** -0.75)
        average = [decay * a + (1 - decay) * p.detach() for a, p in zip(average, model.parameters(), strict=True)]
        assert abs(ema.cur_decay_value - decay) < 1e-9
    live = [p.detach().clone() for p in model.parameters()]
    with averaged_weights(ema, list(model.parameters())):
        for parameter, expected in zip(model.parameters(), average, strict=True):
            assert torch.allclose(parameter, expected, atol=1e-6)
    for parameter, expected in zip(model.parameters(), live, strict=True):
        assert torch.equal(parameter, expected)
    # a state dict restores the average exactly (what checkpoints save)
    restored = create_ema(list(model.parameters()), args)
    restored.load_state_dict(ema.state_dict())
    assert restored.optimization_step == ema.optimization_step
    assert all(torch.equal(a, b) for a, b in zip(restored.shadow_params, ema.shadow_params, strict=True))


def test_a_run_takes_the_resolution_colour_mode_and_schedule_of_its_base():
    import pytest
    from diffusers import DDIMScheduler

    from hfgen.training.diffusion import base_training_schedule, fit_data_to_base

    args = argparse.Namespace(resolution=None, color_mode=None)
    fit_data_to_base(args, (32, 32), 1)
    assert (args.resolution, args.color_mode) == (32, "L")
    fit_data_to_base(argparse.Namespace(resolution=64, color_mode="RGB"), (64, 64), 3)  # given and matching
    with pytest.raises(ValueError, match="--resolution 16 but the base model makes 32px images"):
        fit_data_to_base(argparse.Namespace(resolution=16, color_mode=None), (32, 32), 1)
    with pytest.raises(ValueError, match="--color_mode RGB but the base model's first stage takes 1-channel"):
        fit_data_to_base(argparse.Namespace(resolution=None, color_mode="RGB"), (32, 32), 1)
    with pytest.raises(ValueError, match="square ones only"):
        fit_data_to_base(argparse.Namespace(resolution=None, color_mode=None), (32, 48), 3)
    sampler = DDIMScheduler(num_train_timesteps=100, beta_schedule="scaled_linear", prediction_type="v_prediction")
    args = argparse.Namespace()
    schedule = base_training_schedule(sampler.config, args)
    assert args.prediction_type == "v_prediction" and schedule.config.num_train_timesteps == 100
    assert torch.equal(schedule.alphas_cumprod, sampler.alphas_cumprod)


def test_a_base_path_that_is_neither_a_folder_nor_a_repo_id_is_named():
    import pytest

    from hfgen.training.diffusion import local_folder

    with pytest.raises(ValueError, match="'/no/such/ldm-digits' is neither a local folder nor a Hub repo id"):
        local_folder("/no/such/ldm-digits")


def test_a_space_of_a_folder_without_its_base_needs_the_base_on_the_hub(tmp_path, capsys):
    from hfgen.training.diffusion import check_space_base

    parser = argparse.ArgumentParser(prog="train_controlnet.py")
    check_space_base(parser, argparse.Namespace(space=True, pretrained_model_name_or_path="someone/tiny-ldm"))
    check_space_base(parser, argparse.Namespace(space=False, pretrained_model_name_or_path=str(tmp_path)))
    with pytest.raises(SystemExit):
        check_space_base(parser, argparse.Namespace(space=True, pretrained_model_name_or_path=str(tmp_path)))
    error = capsys.readouterr().err
    assert f"--space: the Space would load the base pipeline from {tmp_path}, a folder on this machine" in error
