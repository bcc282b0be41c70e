"""Compile time of `jax.jit(jax.value_and_grad(loss))` for mmdit_jax's MMDiT: unrolled blocks vs layer scan.

The model is built abstractly (`eqx.filter_eval_shape`) and the training step is lowered
from shapes only, so SD3.5-medium widths compile without allocating their parameters.
Rounds go over every configuration in turn (interleaved); the summary gives the median and
the minimum compile time of each, the median CPU seconds of compiling, and the load average
seen while measuring it.

    python benchmarks/mmdit_compile_time.py                     # depths 2 4 8 16, all modes, 1 round
    python benchmarks/mmdit_compile_time.py --depths 16 --modes scan scan_remat --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import equinox as eqx
import jax
import jax.numpy as jnp

from mmdit_jax import MMDiT

MODES = {
    "unrolled": dict(scan_layers=False, remat=False),
    "scan": dict(scan_layers=True, remat=False),
    "scan_remat": dict(scan_layers=True, remat=True),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[2, 4, 8, 16])
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--width", type=int, default=1536, help="width of both modalities (SD3.5 medium: 1536)")
    parser.add_argument("--heads", type=int, default=24)
    parser.add_argument("--dim-head", type=int, default=64)
    parser.add_argument("--ff-mult", type=int, default=4)
    parser.add_argument("--seq-lens", type=int, nargs=2, default=[1024, 256], help="image and text tokens")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="rounds over all configurations")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    return parser.parse_args()


def abstract_model(args: argparse.Namespace, depth: int, mode: str) -> MMDiT:
    """The model's structure with ShapeDtypeStruct leaves: no parameter is allocated."""
    return eqx.filter_eval_shape(
        MMDiT,
        depth,
        (args.width, args.width),
        (args.width, args.width),
        dim_cond=args.width,
        timestep_embed_dim=256,
        dim_head=args.dim_head,
        heads=args.heads,
        ff_mult=args.ff_mult,
        **MODES[mode],
        key=jax.random.PRNGKey(0),
    )


def flow_matching_loss(model: MMDiT, tokens: tuple[jax.Array, ...], times: jax.Array) -> jax.Array:
    """Mean squared output over a batch: tokens (batch, seq_i, width), times (batch,)."""
    outputs = jax.vmap(model)(tokens, times)
    return sum(jnp.mean(jnp.square(out)) for out in outputs)


def compile_seconds(args: argparse.Namespace, depth: int, mode: str) -> tuple[float, float, float]:
    """(lowering, compilation, compilation CPU) seconds for the value-and-grad step of one configuration.

    XLA compiles on one thread, so the CPU seconds estimate the time on an idle machine
    when other work slows the wall clock down.
    """
    tokens = tuple(jax.ShapeDtypeStruct((args.batch, n, args.width), jnp.float32) for n in args.seq_lens)
    times = jax.ShapeDtypeStruct((args.batch,), jnp.float32)
    step = jax.jit(jax.value_and_grad(flow_matching_loss))
    start = time.perf_counter()
    lowered = step.lower(abstract_model(args, depth, mode), tokens, times)
    lowered_at, cpu_start = time.perf_counter(), time.process_time()
    lowered.compile()
    return lowered_at - start, time.perf_counter() - lowered_at, time.process_time() - cpu_start


def main() -> None:
    args = parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, load average {os.getloadavg()[0]:.1f}")
    print(f"width {args.width}, {args.heads} heads x {args.dim_head}, ff_mult {args.ff_mult}, "
          f"tokens {args.seq_lens}, batch {args.batch}")
    print(f"{'round':>5} {'depth':>5} {'mode':>10} {'lower s':>8} {'compile s':>9} {'cpu s':>6} {'load':>5}")
    rows = []
    for round_index in range(args.repeats):
        for depth in args.depths:
            for mode in args.modes:
                lower, compile_, cpu = compile_seconds(args, depth, mode)
                load = os.getloadavg()[0]
                rows.append(dict(round=round_index, depth=depth, mode=mode, lower_s=lower, compile_s=compile_,
                                 compile_cpu_s=cpu, load=load))
                print(f"{round_index:>5} {depth:>5} {mode:>10} {lower:>8.2f} {compile_:>9.2f} {cpu:>6.2f} {load:>5.1f}",
                      flush=True)
    print(f"\n{'depth':>5} {'mode':>10} {'median s':>9} {'min s':>7} {'median cpu s':>12} {'loads':>12}")
    for depth in args.depths:
        for mode in args.modes:
            mine = [row for row in rows if row["depth"] == depth and row["mode"] == mode]
            times = [row["compile_s"] for row in mine]
            cpu = statistics.median(row["compile_cpu_s"] for row in mine)
            loads = "-".join(f"{row['load']:.1f}" for row in mine)
            print(f"{depth:>5} {mode:>10} {statistics.median(times):>9.2f} {min(times):>7.2f} {cpu:>12.2f} {loads:>12}")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(dict(jax=jax.__version__, config=vars(args), rows=rows), file, indent=2)


if __name__ == "__main__":
    main()
