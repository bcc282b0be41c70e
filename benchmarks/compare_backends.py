"""Accuracy and speed of LAM-torch, LAM-jax and all-MiniLM-L6-v2 side by side (same as `lam compare`).

    python benchmarks/compare_backends.py                # short: torch backend and MiniLM
    python benchmarks/compare_backends.py --quick        # both backends, all lengths, peak memory
    python benchmarks/compare_backends.py --full --out out/compare-full
"""

import argparse
import sys

from lam.benchmarking.compare import add_arguments, run_command

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    sys.exit(run_command(parser.parse_args()))
