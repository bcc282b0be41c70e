"""Interleaved repeated timing: every system measured in the same rounds, medians reported."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def first_call_seconds(run: Callable[[], object]) -> float:
    """Wall time of one call (the first call includes JIT compilation where there is one)."""
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def interleaved_medians(runs: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, dict]:
    """Median (and all) seconds per call of each named callable, measured in rotating order.

    Each round calls every system once, starting at a different one each round, so slow
    drifts of a shared machine hit all systems alike.
    """
    names = list(runs)
    for _ in range(warmup):
        for name in names:
            runs[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            runs[name]()
            samples[name].append(time.perf_counter() - start)
    return {name: {"median_s": statistics.median(s), "samples_s": s} for name, s in samples.items()}
