"""Running training scripts as users do: `accelerate launch` subprocesses, one or two CPU processes."""

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ACCELERATE = os.path.join(os.path.dirname(sys.executable), "accelerate")


def launch(script: str, *arguments, num_processes: int = 1, check: bool = True) -> subprocess.CompletedProcess:
    """Run `training_scripts/<script>` with `arguments` under `accelerate launch`; on failure (with `check`), the
    assertion shows the end of its output."""
    command = [ACCELERATE, "launch", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    if num_processes > 1:
        # Two CPU processes: accelerate needs --multi_gpu plus ACCELERATE_USE_CPU (--cpu alone starts one).
        command += ["--multi_gpu", "--num_processes", str(num_processes)]
        environment["ACCELERATE_USE_CPU"] = "1"
    else:
        command += ["--num_processes", "1"]
    command += [os.path.join(REPO, "training_scripts", script), *map(str, arguments)]
    result = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=REPO, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(f"{script} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


@pytest.fixture(scope="session")
def launch_script():
    return launch
