"""Time the hierarchical delta rule op alone: the compiled Cython token scan against the
chunkwise torch form, on the same float32 inputs, in the same run.

Default shape: a batch of 32 texts x 128 tokens, 12 heads of width 32, both memories,
6 backward heads (SPEC §2). Repetitions are interleaved (the order rotates every round)
after a warm-up, and medians are reported.

Every implementation is an entry of IMPLEMENTATIONS: a function that takes the inputs
(a dict of torch CPU tensors, keyword names as in `lam.reference`) and returns a
zero-argument callable that runs the op once and returns the output (B, H, L, dv) as
something `np.asarray` accepts. Conversions and compilation belong in the outer function,
so a JAX entry can move the arrays and jit there, and block until ready in the callable.

    python benchmarks/bench_delta_rule.py [--batch 32 --length 128 --heads 12 --width 32
        --backward-heads 6 --repeats 30 --warmup 3 --threads N --json PATH]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics

import numpy as np
import torch

import lam._cython as compiled
from lam.benchmarking.timing import interleaved_medians
from lam._torch_core import delta_rule_chunked
from lam.reference import DeltaRuleInputs


def make_inputs(batch, length, heads, width, backward_heads, seed=0):
    """Unit-scale float32 inputs, every token real."""
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, heads, length)
    unit = lambda x: torch.nn.functional.normalize(x, dim=-1)  # noqa: E731
    gate = lambda low, high: low + (high - low) * torch.rand(shape, generator=generator)  # noqa: E731
    return {
        "q": unit(torch.randn(*shape, width, generator=generator)),
        "k": unit(torch.randn(*shape, width, generator=generator)),
        "v": torch.randn(*shape, width, generator=generator),
        "beta": gate(0.01, 0.99),
        "decay_fast": gate(0.1, 0.5),
        "decay_slow": gate(0.8, 0.99),
        "read_fast": gate(0.01, 0.99),
        "read_slow": gate(0.01, 0.99),
        "mask": torch.ones(batch, length, dtype=torch.uint8),
        "num_backward_heads": backward_heads,
    }


def split(inputs):
    """A `DeltaRuleInputs` and the number of backward heads."""
    return DeltaRuleInputs(**{n: x for n, x in inputs.items() if n != "num_backward_heads"}), inputs["num_backward_heads"]


def prepare_cython(inputs):
    return lambda: compiled.delta_rule_cython(*split(inputs))


def prepare_chunk(inputs):
    def run():
        with torch.inference_mode():
            return delta_rule_chunked(*split(inputs))

    return run


def prepare_jax(form, **options):
    """A form of lam._jax_core ("scan" or "chunk"), jitted and compiled here, on JAX's default device."""

    def prepare(inputs):
        import functools

        import jax

        from lam._jax_core import delta_rule

        tensors, num_backward_heads = split(inputs)
        arrays = DeltaRuleInputs(*(jax.device_put(x.numpy()) for x in tensors))
        jitted = jax.jit(functools.partial(delta_rule, form, num_backward_heads=num_backward_heads, **options))
        jitted(arrays).block_until_ready()
        return lambda: jitted(arrays).block_until_ready()

    return prepare


IMPLEMENTATIONS = {"cython": prepare_cython, "chunk": prepare_chunk}
if importlib.util.find_spec("jax") is not None:
    IMPLEMENTATIONS.update({"jax-scan": prepare_jax("scan"), "jax-chunk": prepare_jax("chunk")})
BASELINE = "chunk"


def available_implementations():
    names = list(IMPLEMENTATIONS)
    if not compiled.AVAILABLE:
        print(f"cython: skipped, the compiled kernel is not built ({compiled.IMPORT_ERROR})")
        names.remove("cython")
    return names


def time_interleaved(runs, repeats, warmup):
    """{name: [seconds per call]}, measured in rotating order by `interleaved_medians`."""
    return {name: r["samples_s"] for name, r in interleaved_medians(runs, repeats, warmup).items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--width", type=int, default=32, help="dk = dv")
    parser.add_argument("--backward-heads", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch (and so kernel) threads")
    parser.add_argument("--json", metavar="PATH", help="also write the results here")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    inputs = make_inputs(args.batch, args.length, args.heads, args.width, args.backward_heads)
    runs = {name: IMPLEMENTATIONS[name](inputs) for name in available_implementations()}
    outputs = {name: np.asarray(run(), dtype=np.float64) for name, run in runs.items()}
    times = time_interleaved(runs, args.repeats, args.warmup)

    medians = {name: 1e3 * statistics.median(seconds) for name, seconds in times.items()}
    speedups = {name: medians[BASELINE] / median for name, median in medians.items()}
    differences = {name: float(np.abs(out - outputs[BASELINE]).max()) for name, out in outputs.items()}
    config = {**vars(args), "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
              "machine": platform.machine(), "processor": platform.processor(), "torch": torch.__version__}
    print(f"B={args.batch} L={args.length} H={args.heads} D={args.width} backward={args.backward_heads} "
          f"threads={torch.get_num_threads()} repeats={args.repeats}")
    for name in times:
        print(f"{name:>8}: median {medians[name]:9.2f} ms  min {1e3 * min(times[name]):9.2f} ms  "
              f"speed-up vs {BASELINE} {speedups[name]:6.2f}x  max |diff| vs {BASELINE} {differences[name]:.1e}")
    if args.json:
        results = {"config": config, "median_ms": medians, f"speedup_vs_{BASELINE}": speedups,
                   f"max_abs_diff_vs_{BASELINE}": differences,
                   "times_ms": {name: [1e3 * s for s in seconds] for name, seconds in times.items()}}
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
