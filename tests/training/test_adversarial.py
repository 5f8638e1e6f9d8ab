"""The adversarial phases, lazy regularisation's optimizer correction, and R1 through a differentiable augmentation."""

import argparse
import copy

import pytest
import torch

from hfgen.losses import augmented_r1_penalty, r1_penalty
from hfgen.training.adversarial import (
    SMALL_DATASET_IMAGES,
    Phase,
    lazy_regularisation_ratio,
    lazy_regularised_adam,
    make_augmentation,
    run_phase,
)
from hfgen.training.augment import AdaptiveAugmentation


def test_lazy_adam_is_corrected_by_n_over_n_plus_one():
    parameter = torch.nn.Parameter(torch.zeros(3))
    adam = lazy_regularised_adam([parameter], 2e-3, (0.0, 0.99), interval=4)
    group = adam.param_groups[0]
    assert group["lr"] == pytest.approx(2e-3 * 0.8)
    assert group["betas"] == pytest.approx((0.0, 0.99**0.8))


@pytest.mark.parametrize("interval", [None, 0])
def test_a_disabled_regulariser_leaves_adam_as_configured(interval):
    parameter = torch.nn.Parameter(torch.zeros(3))
    adam = lazy_regularised_adam([parameter], 2e-3, (0.0, 0.99), interval=interval)
    assert adam.param_groups[0]["lr"] == 2e-3 and adam.param_groups[0]["betas"] == (0.0, 0.99)
    parameter.grad = torch.ones(3)
    adam.step()  # the old code set beta1 to 0 ** 0 = 1 here, which Adam rejects
    assert torch.all(parameter < 0)
    with pytest.raises(ValueError, match="at least 1"):
        lazy_regularisation_ratio(-2)


def small_discriminator():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Tanh(), torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 1)
    )


def test_r1_through_an_identity_augmentation_equals_the_plain_penalty():
    discriminator = small_discriminator()
    real = torch.randn(4, 1, 8, 8)
    leaf = real.clone().requires_grad_(True)
    plain = r1_penalty(discriminator(leaf), leaf)
    # ADA at probability 0 applies no augmentation: the same function of the reals.
    identity = AdaptiveAugmentation("color,translation,cutout", 0.0, adaptive=False)
    through, _ = augmented_r1_penalty(discriminator, real, identity)
    torch.testing.assert_close(through, plain)
    without, _ = augmented_r1_penalty(discriminator, real, None)
    torch.testing.assert_close(without, plain)


def test_r1_is_taken_with_respect_to_the_unaugmented_reals():
    discriminator = small_discriminator()
    real = torch.randn(4, 1, 8, 8)

    def double(images):  # a differentiable augmentation with a known Jacobian: 2 I
        return 2 * images

    through, _ = augmented_r1_penalty(discriminator, real, double)
    augmented = (2 * real).requires_grad_(True)
    # grad wrt the reals = 2 x grad wrt the augmented images, so the penalty is 4 times larger.
    torch.testing.assert_close(through, 4 * r1_penalty(discriminator(augmented), augmented))
    # and it trains the discriminator
    through.backward()
    assert discriminator[0].weight.grad is not None and discriminator[0].weight.grad.abs().sum() > 0


def test_r1_through_real_diffaugment_keeps_a_gradient_path():
    discriminator = small_discriminator()
    real = torch.randn(4, 1, 8, 8)
    augment = AdaptiveAugmentation("color,translation,cutout", 1.0, adaptive=False)
    torch.manual_seed(1)
    penalty, logits = augmented_r1_penalty(discriminator, real, augment)
    assert penalty.item() > 0 and logits.shape == (4, 1)


@pytest.fixture
def accelerator():
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    yield Accelerator(cpu=True)
    # A later multi-process test must not find this process's state.
    AcceleratorState._reset_state(reset_partial_state=True)


def test_a_phase_steps_on_the_mean_loss_of_its_micro_batches(accelerator):
    torch.manual_seed(0)
    network = torch.nn.Linear(3, 1)
    reference = copy.deepcopy(network)
    inputs = torch.randn(8, 3)
    phase = Phase("G main", network, torch.optim.SGD(network.parameters(), lr=0.1))

    def loss_of(micro_batch):
        loss = network(micro_batch).pow(2).mean()
        return loss, {"g_loss": loss.detach()}

    logs = run_phase(phase, accelerator, [inputs[:4], inputs[4:]], loss_of)

    # one step on the whole batch gives the same update as the two accumulated halves
    torch.optim.SGD(reference.parameters(), lr=0.1).zero_grad()
    reference(inputs).pow(2).mean().backward()
    for parameter, expected in zip(network.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(parameter, expected.detach() - 0.1 * expected.grad)
    halves = [reference(half).pow(2).mean().item() for half in (inputs[:4], inputs[4:])]
    assert logs["g_loss"] == pytest.approx(sum(halves) / 2, rel=1e-5)


def test_the_held_network_learns_nothing_and_is_released(accelerator):
    torch.manual_seed(0)
    generator, discriminator = torch.nn.Linear(2, 3), torch.nn.Linear(3, 1)
    before = copy.deepcopy(discriminator.state_dict())
    phase = Phase("G main", generator, torch.optim.SGD(generator.parameters(), lr=0.1), held=discriminator)

    def loss_of(noise):
        return -discriminator(generator(noise)).mean(), {}

    run_phase(phase, accelerator, [torch.randn(4, 2)], loss_of)
    assert all(parameter.grad is None for parameter in discriminator.parameters())
    assert all(parameter.requires_grad for parameter in discriminator.parameters())
    assert all(parameter.grad is not None for parameter in generator.parameters())
    for name, value in discriminator.state_dict().items():
        torch.testing.assert_close(value, before[name])


def test_a_guard_that_raises_stops_the_phase_before_its_step(accelerator):
    network = torch.nn.Linear(2, 1)
    before = copy.deepcopy(network.state_dict())
    phase = Phase("D main", network, torch.optim.SGD(network.parameters(), lr=0.1))
    seen = []

    def guard(loss, phase_name):
        seen.append(phase_name)
        raise FloatingPointError("diverged")

    with pytest.raises(FloatingPointError):
        run_phase(phase, accelerator, [torch.randn(2, 2)], lambda x: (network(x).sum(), {}), guard=guard)
    assert seen == ["D main"]
    for name, value in network.state_dict().items():
        torch.testing.assert_close(value, before[name])


@pytest.mark.parametrize(("interval", "due"), [(1, [0, 1, 2, 3, 4]), (4, [0, 4]), (None, [])])
def test_a_lazy_phase_is_due_every_interval_iterations_and_a_disabled_one_never(interval, due):
    phase = Phase("D R1", torch.nn.Linear(1, 1), None, interval=interval)
    assert [iteration for iteration in range(5) if phase.is_due(iteration)] == due


@pytest.mark.parametrize(
    "num_images,expected",
    [(80, "ada"), (SMALL_DATASET_IMAGES - 1, "ada"), (SMALL_DATASET_IMAGES, "none"), (1437, "none")],
)
def test_auto_augmentation_turns_ada_on_for_small_datasets(num_images, expected, accelerator):
    args = argparse.Namespace(
        augment="auto", augment_probability=None, augment_policy="color,translation,cutout", ada_target=0.6
    )
    augment = make_augmentation(args, accelerator, num_images)
    assert args.augment == expected
    assert (augment is not None) == (expected == "ada")
    assert args.augment_probability == 0.0


@pytest.mark.parametrize(("num_images", "expected"), [(80, "diffaugment"), (SMALL_DATASET_IMAGES, "none")])
def test_auto_augmentation_of_a_wgan_critic_is_fixed_diffaugment_on_small_datasets(num_images, expected, accelerator):
    """ADA reads the sign of D's scores of real images, which a WGAN critic leaves arbitrary."""
    args = argparse.Namespace(
        augment="auto", augment_probability=None, augment_policy="color", ada_target=0.6, loss="wgan-gp"
    )
    augment = make_augmentation(args, accelerator, num_images)
    assert args.augment == expected
    assert augment is None if expected == "none" else (augment.probability == 1.0 and not augment.adaptive)


def test_fixed_diffaugment_starts_at_probability_one(accelerator):
    args = argparse.Namespace(augment="diffaugment", augment_probability=None, augment_policy="color", ada_target=0.6)
    augment = make_augmentation(args, accelerator, 10)
    assert args.augment_probability == 1.0 and augment.probability == 1.0 and not augment.adaptive


def test_image_pool_fills_then_swaps_with_probability_one_half():
    from hfgen.training.adversarial import ImagePool

    torch.manual_seed(0)
    pool = ImagePool(size=4)
    first = torch.arange(4.0).view(4, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling: the new images come back
    assert torch.equal(torch.stack(pool.images), first)
    returned_stored = 0
    for step in range(200):
        new = torch.full((1, 1, 1, 1), 100.0 + step)
        out = pool.query(new)
        if out.item() != new.item():
            returned_stored += 1
            assert out.item() < 100.0 + step  # an older image
        assert len(pool.images) == 4
    assert 70 < returned_stored < 130  # about half of 200
    # the pool's state round-trips, and the same RNG state draws the same answers
    saved = pool.state_dict()
    state = torch.get_rng_state()
    expected = pool.query(torch.full((3, 1, 1, 1), -1.0))
    restored = ImagePool(size=1)
    restored.load_state_dict(saved)
    torch.set_rng_state(state)
    assert torch.equal(restored.query(torch.full((3, 1, 1, 1), -1.0)), expected)
    off = ImagePool(size=0)
    assert torch.equal(off.query(first), first) and off.images == []
    with pytest.raises(ValueError, match="pool size must be >= 0"):
        ImagePool(size=-1)


def test_constant_then_linear_decay_reaches_zero_and_resumes():
    from hfgen.training.adversarial import constant_then_linear_decay

    def learning_rates(schedule, optimizer, steps):
        rates = []
        for _ in range(steps):
            rates.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            schedule.step()
        return rates

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    schedule = constant_then_linear_decay(optimizer, constant_steps=3, decay_steps=4)
    assert learning_rates(schedule, optimizer, 8) == pytest.approx([2, 2, 2, 2, 1.5, 1, 0.5, 0])
    resumed_optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    resumed = constant_then_linear_decay(resumed_optimizer, constant_steps=3, decay_steps=4)
    fresh = constant_then_linear_decay(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0), 3, 4)
    for _ in range(5):
        fresh.optimizer.step()
        fresh.step()
    resumed.load_state_dict(fresh.state_dict())
    assert resumed.get_last_lr() == pytest.approx([1.0])
    with pytest.raises(ValueError, match="lengths must be >= 0"):
        constant_then_linear_decay(optimizer, -1, 4)
