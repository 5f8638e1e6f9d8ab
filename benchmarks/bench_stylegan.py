#!/usr/bin/env python
"""Speed and quality of hfgen's StyleGAN on this machine; prints a Markdown table of what it measured.

    python benchmarks/bench_stylegan.py --model_dir stylegan-digits    # a folder written by train_stylegan.py

The measures are those of bench_gan.py (see its docstring), on train_stylegan.py's default architecture and loop
(lazy R1 and path-length regularisation included at their amortised cost).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_gan import main

if __name__ == "__main__":
    main("stylegan")
