#!/usr/bin/env python
"""unCLIP on the built-in digits: a CLIP trained from scratch (train_clip.py's default run), then train_unclip.py's
default run on it; prints what was measured as Markdown tables.

    python benchmarks/bench_unclip.py                                        # both default runs
    python benchmarks/bench_unclip.py --clip_model_name_or_path clip-digits  # reuse a trained CLIP folder
    python benchmarks/bench_unclip.py --unclip_flags="--max_train_steps 500"

The runs are the scripts as users run them, with their defaults but the output folders (and the flags given here).
The tables read the folders' `metrics.json` (the 360 held-out digits; FID and prompt accuracy with hfgen's digits
classifier):

- the priors: cosine between the image embedding predicted from a held-out digit's caption and the digit's own,
  and how often the held-out digit nearest the prediction has the caption's class; the diffusion prior, the
  regression prior, the caption's text embedding used as it is (no prior), and chance;
- text to image: FID, prompt accuracy (chance 10%) and CLIP score of prompted samples, beside the CLIP score of the
  real held-out digits with their own captions (train_clip.py's, on the same CLIP);
- variations: the cosine of the CLIP image embeddings of held-out digits and of one variation of each, beside that of
  two real digits of the same class and of different classes, and how often the classifier reads the input's class
  in the variation.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train(script: str, output_dir: str, extra: list[str]) -> float:
    """Run a training script as a user does; returns its wall time in seconds."""
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no",
        os.path.join(REPO, "training_scripts", script), "--output_dir", output_dir, "--report_to", "none", *extra,
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def read_metrics(folder: str) -> dict:
    with open(os.path.join(folder, "metrics.json"), encoding="utf-8") as file:
        return json.load(file)["metrics"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_root", default=os.path.join(REPO, "bench-unclip"))
    parser.add_argument(
        "--clip_model_name_or_path", default=None, help="A train_clip.py folder to use instead of training one."
    )
    parser.add_argument("--clip_flags", default="", help="More flags for train_clip.py, as one string.")
    parser.add_argument("--unclip_flags", default="", help="More flags for train_unclip.py, as one string.")
    args = parser.parse_args()

    clip_folder = args.clip_model_name_or_path
    times = {}
    if clip_folder is None:
        clip_folder = os.path.join(args.output_root, "clip")
        times["train_clip.py"] = train("vision_language/train_clip.py", clip_folder, shlex.split(args.clip_flags))
    unclip_folder = os.path.join(args.output_root, "unclip")
    times["train_unclip.py"] = train(
        "diffusion/train_unclip.py",
        unclip_folder,
        ["--clip_model_name_or_path", clip_folder, *shlex.split(args.unclip_flags)],
    )
    clip, unclip = read_metrics(clip_folder), read_metrics(unclip_folder)

    print("\n### The priors (360 held-out digits, each with one caption)\n")
    print("| image embedding from the caption | cosine with the digit's own | nearest held-out digit of the class |")
    print("|---|---|---|")
    for name, prefix in (
        ("diffusion prior (PriorTransformer)", "diffusion_prior"),
        ("regression prior (residual MLP)", "regression_prior"),
        ("no prior: the text embedding itself", "text_embedding"),
    ):
        print(f"| {name} | {unclip[f'{prefix}_cosine']:.3f} | {100 * unclip[f'{prefix}_retrieval_accuracy']:.1f}% |")
    print(f"| chance | - | {100 * unclip['retrieval_chance']:.1f}% |")

    print("\n### Text to image (360 prompted samples against the 360 held-out digits)\n")
    print("| | FID | prompt accuracy | CLIP score |")
    print("|---|---|---|---|")
    print(
        f"| unCLIP samples | {unclip['fid']:.2f} | {100 * unclip['class_accuracy']:.1f}% | "
        f"{unclip['clip_score']:.2f} |"
    )
    print(f"| real held-out digits, own captions | - | - | {clip['clip_score']:.2f} |")
    print("| chance | - | 10.0% | - |")

    print("\n### Variations (held-out digits, one variation each)\n")
    print("| pair | cosine of CLIP image embeddings |")
    print("|---|---|")
    print(f"| digit and its variation | {unclip['variation_similarity']:.3f} |")
    print(f"| two real digits of the same class | {unclip['same_class_similarity']:.3f} |")
    print(f"| two real digits of different classes | {unclip['different_class_similarity']:.3f} |")
    print(
        f"\nThe classifier reads the input's class in {100 * unclip['variation_class_accuracy']:.1f}% of variations."
    )
    print(f"\nCLIP zero-shot accuracy on the held-out digits: {100 * clip['zero_shot_accuracy']:.1f}%.")
    print("Wall times: " + ", ".join(f"{script} {seconds / 60:.1f} min" for script, seconds in times.items()))


if __name__ == "__main__":
    main()
