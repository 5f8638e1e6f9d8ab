#!/usr/bin/env python
"""ProGAN trained on the built-in digits and faces; writes the README's figures and prints a Markdown table of what
it measured.

    python benchmarks/bench_progan.py                          # digits and faces, the script's defaults
    python benchmarks/bench_progan.py --datasets hfgen/faces --stable_steps 100 --fade_steps 100   # a quicker look

Each run is `train_progan.py` with its defaults (architecture, loss, learning rates, EMA, 4 -> 16 px,
`--stable_steps` / `--fade_steps` / `--final_steps` unless given here) but `--dataset_name` and `--output_dir`,
validating at the end of each resolution's stable phase. The table reads the `metrics.json` each run wrote (on
the digits: FID / KID / precision / recall with hfgen's digits classifier, and the class accuracy of conditional
samples; on the faces, which have no feature extractor offline, the diversity ratio in pixels). Figures, in
`--figures_dir`:

- `progan-<data>.png`: the run's sample grid (`samples.png` of its folder, the fully grown EMA generator);
- `progan-<data>-stages.png`: the validation grids at the end of each resolution's stabilisation, one row per stage
  (4, 8, 16 px), each enlarged (nearest neighbour) to the final size: what the generator drew as it grew.
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time

from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "training_scripts", "gan", "train_progan.py")


def script_defaults():
    """train_progan.py as a module, for its default schedule."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_progan", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train(dataset: str, output_dir: str, extra: list[str]) -> float:
    """Run train_progan.py as a user does; returns its wall time in seconds."""
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_processes",
        "1",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        SCRIPT,
        "--dataset_name",
        dataset,
        "--output_dir",
        output_dir,
        "--report_to",
        "none",
        *extra,
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def stage_figure(output_dir: str, steps: list[int], path: str) -> None:
    """The validation grids of `steps`, each enlarged to the width of the last, stacked top to bottom."""
    grids = [Image.open(os.path.join(output_dir, "validation", f"step-{step:06d}-samples.png")) for step in steps]
    width = grids[-1].width * 4
    rows = [grid.resize((width, grid.height * width // grid.width), Image.NEAREST) for grid in grids]
    rows = [row.convert("L") for row in rows]
    figure = Image.new("L", (width, sum(row.height for row in rows) + 4 * (len(rows) - 1)), 255)
    top = 0
    for row in rows:
        figure.paste(row, (0, top))
        top += row.height + 4
    figure.save(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["hfgen/digits", "hfgen/faces"])
    parser.add_argument("--stable_steps", type=int, default=script_defaults().DEFAULT_STABLE_STEPS)
    parser.add_argument("--fade_steps", type=int, default=script_defaults().DEFAULT_FADE_STEPS)
    parser.add_argument("--final_steps", type=int, default=script_defaults().DEFAULT_FINAL_STEPS)
    parser.add_argument("--work_dir", default="bench-progan", help="Where the runs write their folders.")
    parser.add_argument("--figures_dir", default=os.path.join(REPO, "benchmarks", "figures"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    os.makedirs(args.figures_dir, exist_ok=True)
    # 4 -> 8 -> 16 px (the script's default): the stable phases end at steps s, 2s + f and, for the final
    # resolution, at the end of the run (2s + 2f + final), where the last validation is the fully grown generator's.
    stable, fade, final = args.stable_steps, args.fade_steps, args.final_steps
    stage_ends = [stable, 2 * stable + fade, 2 * stable + 2 * fade + final]
    extra = ["--seed", str(args.seed), "--stable_steps", str(stable), "--fade_steps", str(fade)]
    extra += ["--final_steps", str(final)]
    # validations at every multiple of gcd(stable, fade, final) include the ends of the stable phases
    extra += ["--validation_steps", str(math.gcd(stable, fade, final)), "--checkpointing_steps", str(stage_ends[-1])]
    rows = []
    for dataset in args.datasets:
        name = os.path.basename(dataset)
        output_dir = os.path.join(args.work_dir, name)
        shutil.rmtree(output_dir, ignore_errors=True)
        seconds = train(dataset, output_dir, extra)
        with open(os.path.join(output_dir, "metrics.json")) as file:
            record = json.load(file)
        metrics = record["metrics"]
        shutil.copy(os.path.join(output_dir, "samples.png"), os.path.join(args.figures_dir, f"progan-{name}.png"))
        stage_figure(output_dir, stage_ends, os.path.join(args.figures_dir, f"progan-{name}-stages.png"))
        measured = [
            f"{label} {metrics[key]:.3g}"
            for key, label in (
                ("fid", "FID"),
                ("kid_mean", "KID"),
                ("precision", "precision"),
                ("recall", "recall"),
                ("class_accuracy", "class accuracy"),
                ("diversity_ratio", "diversity ratio"),
            )
            if key in metrics
        ]
        references = record.get("references", {})
        if references:
            measured.append(
                "FID references: " + ", ".join(f"{ref} {values['fid']:.3g}" for ref, values in references.items())
            )
        protocol = record["protocol"]
        rows.append((dataset, protocol["split"], record["step"], f"{seconds / 60:.1f} min", "; ".join(measured)))
        print(json.dumps({"dataset": dataset, "metrics": metrics}), flush=True)

    print(
        f"\ntrain_progan.py defaults, 4 -> 16 px, --stable_steps {stable} --fade_steps {fade} --final_steps {final}, "
        f"seed {args.seed}\n"
    )
    print("| data | evaluated split | steps | wall time | measured |\n|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")


if __name__ == "__main__":
    main()
