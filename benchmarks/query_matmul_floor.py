"""The floor under one short query's latency: the 24 wide matmuls of LAM-base-v1 for 16 rows.

Six layers, each: the fused mixer input projection (384 -> 1,596), the output projection
(384 -> 384), and the feed-forward pair (384 -> 1,536 -> 384), on random weights of those
shapes, chained as one query would run them; in XLA (float32, bfloat16, int8 as
`lam._jax_model.linear` computes them) and torch (float32 `F.linear`, fbgemm dynamic int8).
Medians of interleaved repeats. Not a test: run it on a quiet machine.

    python benchmarks/query_matmul_floor.py --threads 1      # pin to one core too: taskset -c 0
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

ROWS = 16
SHAPES = [(384, 1596), (384, 384), (384, 1536), (1536, 384)] * 6


def xla_chain(precision: str, weights: list[np.ndarray], x: np.ndarray):
    """A callable running the chain once under jax.jit, weights stored in `precision`."""
    import jax
    import jax.numpy as jnp

    if precision == "float32":
        stored = [jnp.asarray(w) for w in weights]
    elif precision == "bfloat16":
        stored = [jnp.asarray(w, jnp.bfloat16) for w in weights]
    else:
        scales = [np.abs(w).max(0) / 127 for w in weights]
        stored = [(jnp.asarray(np.round(w / s).astype(np.int8)), jnp.asarray(s)) for w, s in zip(weights, scales)]

    def run(stored, h):
        for (rows_in, _), w in zip(SHAPES, stored):
            h_in = h if rows_in == h.shape[1] else jnp.tile(h, (1, rows_in // h.shape[1]))
            if precision == "int8":
                kernel, scale = w
                step = jnp.max(jnp.abs(h_in), axis=-1, keepdims=True) / 127
                quantized = jnp.round(h_in / step).astype(jnp.int8)
                y = jnp.matmul(quantized, kernel, preferred_element_type=jnp.int32).astype(jnp.float32) * step * scale
            elif precision == "bfloat16":
                y = jnp.matmul(h_in.astype(jnp.bfloat16), w, preferred_element_type=jnp.float32)
            else:
                y = jnp.matmul(h_in, w, precision=jax.lax.Precision.HIGHEST)
            h = jnp.tanh(y[:, :384])
        return h

    compiled, device_x = jax.jit(run), jnp.asarray(x)
    return lambda: jax.block_until_ready(compiled(stored, device_x))


def torch_chain(precision: str, weights: list[np.ndarray], x: np.ndarray):
    """A callable running the chain once in torch: float32 `nn.Linear` or fbgemm dynamic int8."""
    import torch

    layers = []
    for w in weights:
        layer = torch.nn.Linear(*w.shape)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(w.T.copy()))
        if precision == "int8":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                layer = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(layer), {torch.nn.Linear},
                                                               dtype=torch.qint8)
        layers.append(layer)
    tx = torch.from_numpy(x)

    def run():
        with torch.inference_mode():
            h = tx
            for (rows_in, _), layer in zip(SHAPES, layers):
                h_in = h if rows_in == h.shape[1] else h.repeat(1, rows_in // h.shape[1])
                h = torch.tanh(layer(h_in)[:, :384])
            return h

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (XLA: pin the process instead)")
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    weights = [(rng.standard_normal(shape) * 0.05).astype(np.float32) for shape in SHAPES]
    x = rng.standard_normal((ROWS, 384)).astype(np.float32)
    runs = {f"xla {p}": xla_chain(p, weights, x) for p in ("float32", "bfloat16", "int8")}
    runs.update({f"torch {p}": torch_chain(p, weights, x) for p in ("float32", "int8")})
    for run in runs.values():
        for _ in range(5):
            run()
    samples = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            began = time.perf_counter()
            run()
            samples[name].append(time.perf_counter() - began)
    weight_bytes = {"float32": 4, "bfloat16": 2, "int8": 1}
    parameters = sum(a * b for a, b in SHAPES)
    print(f"{len(SHAPES)} matmuls of a {ROWS}-row query ({parameters / 1e6:.1f} M weights), torch threads {args.threads}")
    for name, seconds in samples.items():
        median = float(np.median(seconds))
        megabytes = parameters * weight_bytes[name.split()[1]] / 1e6
        print(f"  {name:16} p50 {1000 * median:7.3f} ms   weights {megabytes:5.1f} MB ({megabytes / 1e3 / median:5.1f} GB/s)")


if __name__ == "__main__":
    main()
