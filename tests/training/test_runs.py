"""The guard against diverging losses; the channels-last memory order; endless batches."""

import pytest
import torch

from hfgen.training.runs import check_finite


def test_the_divergence_guard_names_the_loss_step_and_kept_checkpoint():
    check_finite(torch.tensor(3.0), "the loss", 5, "out")
    with pytest.raises(FloatingPointError, match="the loss became nan at step 5: the run diverged"):
        check_finite(torch.tensor(float("nan")), "the loss", 5, "out")
    with pytest.raises(FloatingPointError, match="last complete checkpoint in out is kept"):
        check_finite(torch.tensor(1e9), "the loss", 5, "out", limit=1e5)


def one_training_step(channels_last: bool) -> dict:
    """A tiny DCGAN's discriminator after one step on a fixed batch, trained in the given memory order."""
    import argparse

    import hfgen
    from hfgen.losses import discriminator_loss
    from hfgen.training.runs import to_training_memory_format

    torch.manual_seed(0)
    config = hfgen.GANConfig(
        architecture="dcgan", image_size=16, num_channels=3, generator_channels=8, discriminator_channels=8
    )
    generator, discriminator = hfgen.GANGenerator(config), hfgen.GANDiscriminator(config)
    to_training_memory_format(argparse.Namespace(channels_last=channels_last), generator, discriminator)
    assert discriminator.blocks[1].conv.weight.is_contiguous(memory_format=torch.channels_last) == channels_last
    optimizer = torch.optim.Adam(discriminator.parameters(), lr=1e-2)
    real = torch.rand(4, 3, 16, 16) * 2 - 1
    fake = generator(torch.randn(4, config.latent_dim)).sample
    assert fake.is_contiguous(memory_format=torch.channels_last) == channels_last
    loss = discriminator_loss(discriminator(real).logits, discriminator(fake.detach()).logits, "non-saturating")
    loss.backward()
    optimizer.step()
    return discriminator.state_dict()


def test_channels_last_training_changes_the_memory_order_not_the_numbers():
    contiguous, channels_last = one_training_step(False), one_training_step(True)
    for name, value in contiguous.items():
        torch.testing.assert_close(channels_last[name], value, rtol=1e-4, atol=1e-5, msg=name)


def test_random_flip_mirrors_paired_maps_with_their_images():
    from hfgen.training.runs import random_flip

    torch.manual_seed(0)
    images = torch.arange(32.0).view(8, 1, 1, 4)
    controls = images * 10
    flipped, flipped_controls = random_flip(images, controls)
    mirrored = [not torch.equal(flipped[i], images[i]) for i in range(8)]
    assert 0 < sum(mirrored) < 8  # some of each
    assert torch.equal(flipped_controls, flipped * 10)  # each map flipped exactly when its image was
    torch.manual_seed(0)
    assert torch.equal(random_flip(images), flipped)  # the same draws without a paired map


def test_endless_batches_names_the_batch_size_when_a_process_would_get_no_batch():
    """100 images in batches of 64 over 2 processes: one batch in all, none for either process. The error comes when
    the batches are set up, before any training step, instead of a ZeroDivisionError at the first one."""
    import types

    from accelerate.data_loader import prepare_data_loader

    from hfgen.training.runs import endless_batches

    images = torch.utils.data.TensorDataset(torch.zeros(100, 1))
    loader = torch.utils.data.DataLoader(images, batch_size=64, shuffle=True, drop_last=True)
    shard = prepare_data_loader(loader, num_processes=2, process_index=0, put_on_device=False)
    assert len(shard) == 0
    accelerator = types.SimpleNamespace(num_processes=2)
    message = r"--train_batch_size 64 is too large for 100 training images over 2 process\(es\).* at most 50"
    with pytest.raises(ValueError, match=message):
        endless_batches(accelerator, shard, 0)
    # one process: one batch per epoch, epoch after epoch
    shard = prepare_data_loader(loader, num_processes=1, process_index=0, put_on_device=False)
    batches = endless_batches(types.SimpleNamespace(num_processes=1), shard, 0)
    assert [next(batches)[0].shape[0] for _ in range(3)] == [64, 64, 64]
