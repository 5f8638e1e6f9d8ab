"""GenerativeMetrics under accelerate with two processes equals GenerativeMetrics on one process seeing everything."""

import json

import pytest
import torch
from accelerate import Accelerator, debug_launcher
from accelerate.state import AcceleratorState

from hfgen.data import collate_images, image_transform, load_digits_dataset
from hfgen.metrics import GenerativeMetrics


def measure_on_each_process(real: torch.Tensor, fake: torch.Tensor, output_prefix: str) -> None:
    """Run in every process: feed this process's share, compute, write the result of this rank."""
    # debug_launcher forks: a child inherits any single-process state an earlier test of this worker left behind, and
    # Accelerator() would reuse it (num_processes 1). Drop it so the child reads the launcher's environment.
    AcceleratorState._reset_state(reset_partial_state=True)
    accelerator = Accelerator(cpu=True)
    metrics = GenerativeMetrics(kid_subsets=20).to(accelerator.device)
    # Contiguous shares in rank order, as accelerate's samplers produce them. The 301 fakes split unevenly (151 / 150)
    # and arrive in different numbers of batches (75 + 75 + 1 / 75 + 75).
    with accelerator.split_between_processes(real) as local_real:
        metrics.update(local_real, real=True)
    with accelerator.split_between_processes(fake) as local_fake:
        for batch in local_fake.split(75):
            metrics.update(batch, real=False)
    local_counts = (int(metrics.num_real), int(metrics.num_fake))
    results = metrics.compute()
    with open(f"{output_prefix}{accelerator.process_index}.json", "w") as f:
        json.dump({"local_counts": local_counts, "num_processes": accelerator.num_processes, "results": results}, f)


@pytest.fixture(scope="module")
def real_and_fake():
    dataset = load_digits_dataset(32)
    transform = image_transform(32, "L")
    real = collate_images(list(dataset["test"].with_transform(transform)))["pixel_values"]
    # Generated stand-ins: training digits with a little noise, 301 of them so that the shares differ in size.
    train = collate_images(list(dataset["train"].select(range(301)).with_transform(transform)))["pixel_values"]
    noise = torch.randn(train.shape, generator=torch.Generator().manual_seed(0))
    return real, (train + 0.2 * noise).clamp(-1, 1)


def test_two_processes_with_half_the_data_each_match_one_process_with_all(real_and_fake, tmp_path):
    real, fake = real_and_fake
    single = GenerativeMetrics(kid_subsets=20)
    single.update(real, real=True)
    for batch in fake.split(64):
        single.update(batch, real=False)
    expected = single.compute()

    prefix = str(tmp_path / "rank")
    debug_launcher(measure_on_each_process, args=(real, fake, prefix), num_processes=2)

    for rank, local_counts in ((0, [180, 151]), (1, [180, 150])):
        with open(f"{prefix}{rank}.json") as f:
            record = json.load(f)
        assert record["num_processes"] == 2
        assert record["local_counts"] == local_counts  # each process really saw only its share
        assert record["results"].keys() == expected.keys()
        for name, value in expected.items():
            assert record["results"][name] == pytest.approx(value, rel=1e-5, abs=1e-7), name
