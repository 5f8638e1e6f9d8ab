"""The growing schedule of progressive training (ProGAN): the stage is a function of the step alone, and real images
are shown at the stage as the generator's output is."""

import pytest
import torch
import torch.nn.functional as F

from hfgen.losses import drift_penalty
from hfgen.training.progressive import GrowingSchedule, real_images_at


def test_the_schedule_alternates_stable_and_fade_in_phases_up_to_the_final_resolution():
    schedule = GrowingSchedule(start_resolution=4, final_resolution=16, stable_steps=3, fade_steps=2)
    assert schedule.num_growths == 2 and schedule.growth_steps == 10
    expected = [(4, 1.0)] * 3 + [(8, 0.0), (8, 0.5)] + [(8, 1.0)] * 3 + [(16, 0.0), (16, 0.5)] + [(16, 1.0)] * 5
    assert [schedule.at(step) for step in range(15)] == expected
    assert schedule.at(10**6) == (16, 1.0)
    # without a fade-in the new resolution takes over at once; starting fully grown, nothing grows
    assert [GrowingSchedule(8, 16, 2, 0).at(step) for step in range(4)] == [(8, 1.0)] * 2 + [(16, 1.0)] * 2
    fixed = GrowingSchedule(16, 16, 5, 5)
    assert fixed.growth_steps == 0 and fixed.at(0) == (16, 1.0)


@pytest.mark.parametrize(
    "settings, message",
    [
        ((6, 16, 1, 1), "start_resolution must be a power of two"),
        ((2, 16, 1, 1), "start_resolution must be a power of two of at least 4"),
        ((32, 16, 1, 1), r"start_resolution \(32\) must not exceed final_resolution \(16\)"),
        ((4, 16, 0, 1), "stable_steps must be >= 1"),
        ((4, 16, 1, -1), "fade_steps >= 0"),
    ],
)
def test_a_bad_schedule_is_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        GrowingSchedule(*settings)


def test_real_images_are_pooled_to_the_stage_and_faded_like_the_generator_output():
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    at_8 = real_images_at(images, 8, 1.0)
    torch.testing.assert_close(at_8, F.avg_pool2d(images, 2))
    assert torch.equal(real_images_at(images, 16, 1.0), images)
    start = real_images_at(images, 16, 0.0)  # the 8 px images, enlarged
    torch.testing.assert_close(start, F.interpolate(at_8, scale_factor=2, mode="nearest"))
    torch.testing.assert_close(real_images_at(images, 16, 0.25), torch.lerp(start, images, 0.25))
    with pytest.raises(ValueError, match="cannot be shown at 32 px"):
        real_images_at(images, 32, 1.0)


def test_drift_penalty_is_the_mean_squared_real_score():
    assert drift_penalty(torch.tensor([1.0, -3.0, 2.0])).item() == pytest.approx(14 / 3)
