#!/usr/bin/env python
"""How much the training scripts repeat each other, and how long each is; prints a Markdown table.

    python benchmarks/bench_layout.py                 # the working tree
    python benchmarks/bench_layout.py --ref d880f35   # any commit, to compare a layout before and after a change

A line counts as repeated when, stripped of indentation, it also appears in the other script and carries code: blank
lines, comments, lone brackets, docstrings and import statements are left out (imports say what a script uses, not
what it repeats).
"""

import argparse
import ast
import itertools
import os
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def script_sources(ref: str | None) -> dict[str, str]:
    """{file name: text} of every training_scripts/**/train_*.py at `ref` (None: the working tree)."""
    if ref is None:
        paths = [
            os.path.relpath(os.path.join(folder, name), REPO)
            for folder, _, names in os.walk(os.path.join(REPO, "training_scripts"))
            for name in names
        ]
    else:
        listing = subprocess.run(
            ["git", "ls-tree", "-r", "--name-only", ref, "training_scripts"], cwd=REPO, capture_output=True, text=True
        )
        paths = listing.stdout.split()
    sources = {}
    for path in sorted(paths):
        name = os.path.basename(path)
        if not (name.startswith("train_") and name.endswith(".py")):
            continue
        if ref is None:
            with open(os.path.join(REPO, path)) as f:
                sources[name] = f.read()
        else:
            show = subprocess.run(["git", "show", f"{ref}:{path}"], cwd=REPO, capture_output=True, text=True)
            sources[name] = show.stdout
    return sources


def code_lines(source: str) -> list[str]:
    """The stripped lines of `source` that carry code: no blank lines, comments, lone brackets, import statements or
    docstrings."""
    skipped = set()
    for node in ast.walk(ast.parse(source)):
        is_docstring = (
            isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        )
        if isinstance(node, (ast.Import, ast.ImportFrom)) or is_docstring:
            skipped.update(range(node.lineno, node.end_lineno + 1))
    lines = []
    for number, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        if number in skipped or not stripped or stripped.startswith("#") or set(stripped) <= set("()[]{},:"):
            continue
        lines.append(stripped)
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", default=None, help="A git commit; default: the working tree.")
    args = parser.parse_args()
    sources = script_sources(args.ref)
    print(f"training scripts at {args.ref or 'the working tree'}\n")
    print("| script | lines | code lines |")
    print("|---|---|---|")
    for name, source in sources.items():
        print(f"| {name} | {len(source.splitlines())} | {len(code_lines(source))} |")
    print("\n| script A | script B | code lines of A also in B |")
    print("|---|---|---|")
    for first, second in itertools.permutations(sources, 2):
        if "digits_classifier" in first + second:
            continue
        lines, others = code_lines(sources[first]), set(code_lines(sources[second]))
        repeated = sum(line in others for line in lines)
        print(f"| {first} | {second} | {repeated} of {len(lines)} ({100 * repeated / len(lines):.0f}%) |")


if __name__ == "__main__":
    main()
