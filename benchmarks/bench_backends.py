"""End-to-end `LAM.encode` throughput of the JAX backend against the torch backend, and the
delta-rule op alone, in one run.

Encode: every sentence of STS-B dev (3000: both columns), after a warm-up pass per backend
(for JAX that pass compiles one program per shape bucket, or loads it from JAX's persistent
compilation cache; the seconds JAX reports tracing, lowering and compiling, and the number of
cache hits, are given separately), then `--repeats` interleaved passes (the order alternates);
medians, sentences per second and the torch/JAX time ratio (> 1: JAX is faster). Also the
largest absolute difference between the two backends' embeddings of all the sentences.

Op: the delta rule alone at 32 texts x 128 tokens, 12 heads of width 32, 6 of them backward:
every entry of benchmarks/bench_delta_rule.py (the Cython kernel, the torch chunkwise form, the
JAX token scan and chunkwise form) plus JAX token-scan variants (unroll, no pair blocking).

    python benchmarks/bench_backends.py [--model LAM-base-v1] [--data PATH] [--limit N]
        [--batch-size 32] [--repeats 5] [--op-repeats 20] [--json PATH]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import jax
import numpy as np
import torch

import lam
from lam.datasets import data_dir

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_delta_rule  # noqa: E402  (a sibling script: its op implementations and timing loop)

COMPILE_EVENT_PREFIX = "/jax/core/compile/"
CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"


def read_sentences(path: Path, limit: int | None) -> list[str]:
    """Both sentence columns of an STS-B tsv (header row, then score, sentence1, sentence2)."""
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    sentences = [row[1] for row in rows] + [row[2] for row in rows]
    return sentences[:limit] if limit else sentences


class CompileClock:
    """Seconds JAX reports tracing, lowering and compiling (or loading from its persistent
    cache: `cache_hits`) programs, summed per stage."""

    def __init__(self):
        self.seconds = {}
        self.cache_hits = 0
        jax.monitoring.register_event_duration_secs_listener(self._record_duration)
        jax.monitoring.register_event_listener(self._record_event)

    def _record_duration(self, event: str, duration: float, **_) -> None:
        if event.startswith(COMPILE_EVENT_PREFIX):
            stage = event.removeprefix(COMPILE_EVENT_PREFIX)
            self.seconds[stage] = self.seconds.get(stage, 0.0) + duration

    def _record_event(self, event: str, **_) -> None:
        self.cache_hits += event == CACHE_HIT_EVENT

    def total(self) -> float:
        return sum(self.seconds.values())


def time_encode(models: dict, sentences: list[str], batch_size: int, repeats: int):
    """{backend: [seconds per pass]} over interleaved passes, and each backend's last embeddings."""
    embeddings = {}

    def encoder(name):
        return lambda: embeddings.__setitem__(name, models[name].encode(sentences, batch_size=batch_size))

    times = bench_delta_rule.time_interleaved({name: encoder(name) for name in models}, repeats, warmup=0)
    return times, embeddings


def bench_encode(args) -> dict:
    sentences = read_sentences(args.data, args.limit)
    clock = CompileClock()
    models, warmup = {}, {}
    for name in ("torch", "jax"):
        models[name] = lam.LAM(args.model, backend=name, fallback=False)
        compile_before = clock.total()
        start = time.perf_counter()
        models[name].encode(sentences, batch_size=args.batch_size)
        warmup[name] = {"first_pass_s": time.perf_counter() - start, "compile_s": clock.total() - compile_before}
    jax_backend = models["jax"]._backend
    warmup["jax"].update(compiled_buckets=sorted(jax_backend.compiled_shapes), compile_stages_s=dict(clock.seconds),
                         persistent_cache_hits=clock.cache_hits, cache_dir=jax.config.jax_compilation_cache_dir)
    times, embeddings = time_encode(models, sentences, args.batch_size, args.repeats)
    medians = {name: statistics.median(seconds) for name, seconds in times.items()}
    difference = np.abs(embeddings["jax"] - embeddings["torch"])
    return {
        "sentences": len(sentences),
        "median_s": medians,
        "sentences_per_s": {name: len(sentences) / median for name, median in medians.items()},
        "torch_over_jax": medians["torch"] / medians["jax"],
        "times_s": times,
        "warmup": warmup,
        "max_abs_diff": float(difference.max()),
        "min_cosine": float((embeddings["jax"] * embeddings["torch"]).sum(-1).min()),
        "jax_form": jax_backend.form,
        "torch_form": models["torch"]._backend.form,
    }


def bench_op(args) -> dict:
    inputs = bench_delta_rule.make_inputs(32, 128, 12, 32, 6)
    implementations = {
        **bench_delta_rule.IMPLEMENTATIONS,
        "jax-scan-unroll-4": bench_delta_rule.prepare_jax("scan", unroll=4),
        "jax-scan-unblocked": bench_delta_rule.prepare_jax("scan", block_pairs=32 * 12),
    }
    names = [name for name in implementations if name != "cython" or bench_delta_rule.compiled.AVAILABLE]
    runs = {name: implementations[name](inputs) for name in names}
    outputs = {name: np.asarray(run(), dtype=np.float64) for name, run in runs.items()}
    times = bench_delta_rule.time_interleaved(runs, args.op_repeats, warmup=2)
    medians = {name: 1e3 * statistics.median(seconds) for name, seconds in times.items()}
    baseline = "cython" if "cython" in medians else "chunk"
    return {
        "shape": {"batch": 32, "length": 128, "heads": 12, "width": 32, "backward_heads": 6},
        "baseline": baseline,
        "median_ms": medians,
        "baseline_over": {name: medians[baseline] / median for name, median in medians.items()},
        "max_abs_diff_vs_baseline": {name: float(np.abs(out - outputs[baseline]).max()) for name, out in outputs.items()},
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="LAM-base-v1", help="built-in name or model directory")
    parser.add_argument("--data", type=Path, default=data_dir() / "stsb" / "dev.tsv", help="an STS-B tsv file")
    parser.add_argument("--limit", type=int, default=None, help="only the first N sentences")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--op-repeats", type=int, default=20)
    parser.add_argument("--json", metavar="PATH", help="also write the results here")
    args = parser.parse_args()

    encode = bench_encode(args)
    print(f"LAM.encode of {encode['sentences']} STS-B dev sentences, batch size {args.batch_size}, "
          f"{args.repeats} interleaved passes (JAX form: {encode['jax_form']}, torch form: {encode['torch_form']})")
    for name in ("torch", "jax"):
        warm = encode["warmup"][name]
        print(f"  {name:>5}: median {encode['median_s'][name]:7.3f} s  ({encode['sentences_per_s'][name]:7.1f} sentences/s)"
              f"  first pass {warm['first_pass_s']:6.2f} s, of which compiling {warm['compile_s']:5.2f} s")
    jax_warmup = encode["warmup"]["jax"]
    print(f"  torch/jax time ratio: {encode['torch_over_jax']:.2f}  ({len(jax_warmup['compiled_buckets'])} JAX buckets "
          f"compiled, {jax_warmup['persistent_cache_hits']} of them loaded from {jax_warmup['cache_dir']}; seconds by "
          f"stage: {', '.join(f'{k} {v:.2f}' for k, v in jax_warmup['compile_stages_s'].items())})")
    print(f"  max |jax - torch| over all embeddings: {encode['max_abs_diff']:.2e}  (min cosine {encode['min_cosine']:.7f})")

    op = bench_op(args)
    baseline = op["baseline"]
    print(f"delta rule alone, B=32 L=128 H=12 D=32, {args.op_repeats} interleaved repeats:")
    for name, median in op["median_ms"].items():
        print(f"  {name:>20}: median {median:8.2f} ms  {baseline}/this {op['baseline_over'][name]:5.2f}"
              f"  max |diff| vs {baseline} {op['max_abs_diff_vs_baseline'][name]:.1e}")

    if args.json:
        environment = {"cpu_count": os.cpu_count(), "machine": platform.machine(), "torch_threads": torch.get_num_threads(),
                       "torch": torch.__version__, "jax": jax.__version__, "jax_devices": [str(d) for d in jax.devices()]}
        with open(args.json, "w") as handle:
            json.dump({"arguments": {k: str(v) for k, v in vars(args).items()}, "environment": environment,
                       "encode": encode, "delta_rule": op}, handle, indent=2)


if __name__ == "__main__":
    main()
