"""What the CPU can do, for choosing kernels at run time."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The instruction-set flags of /proc/cpuinfo (Linux); empty where it cannot be read."""
    try:
        with open("/proc/cpuinfo") as handle:
            return frozenset(next((line for line in handle if line.startswith("flags")), "").partition(":")[2].split())
    except OSError:
        return frozenset()
