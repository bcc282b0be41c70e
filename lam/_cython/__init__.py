"""Compiled Cython token scan of the hierarchical delta rule and directional convolution, with
torch-tensor entry points.

`AVAILABLE` says whether the extension was built; `IMPORT_ERROR` keeps the reason if not.
`VARIANT` is the build in use: "avx2" (the same source compiled for AVX2, chosen when the CPU has
it and it was built; same results bit for bit), "baseline", or None.
"""

from __future__ import annotations

import numpy as np
import torch

from ..cpu import cpu_flags


def _load_kernels():
    """(module, variant): the AVX2 build where the CPU runs it, else the baseline build."""
    if "avx2" in cpu_flags():
        try:
            from . import delta_rule_avx2
            return delta_rule_avx2, "avx2"
        except ImportError:
            pass
    from . import delta_rule
    return delta_rule, "baseline"


try:
    _kernels, VARIANT = _load_kernels()
except ImportError as error:
    AVAILABLE, IMPORT_ERROR, VARIANT = False, error, None
else:
    AVAILABLE, IMPORT_ERROR = True, None
    delta_rule_forward, directional_conv_forward = _kernels.delta_rule_forward, _kernels.directional_conv_forward


def delta_rule_cython(inputs, num_backward_heads: int):
    """Run the compiled kernel on a `lam.reference.DeltaRuleInputs` of CPU tensors (no autograd);
    returns float32 o (B, H, L, dv). Any float dtype; uses torch.get_num_threads() OpenMP threads.
    """
    if not AVAILABLE:
        raise RuntimeError(
            "The compiled Cython kernel lam._cython.delta_rule is not built "
            f"({IMPORT_ERROR}). Build it with `pip install -e .` in the repository, "
            "with a C compiler (and OpenMP for threads) installed."
        )
    if any(x.device.type != "cpu" for x in inputs):
        raise ValueError("delta_rule_cython runs on CPU tensors only")
    with torch.no_grad():
        floats = [np.ascontiguousarray(x.detach().to(torch.float32).numpy()) for x in inputs[:-1]]
        real = np.ascontiguousarray((inputs.mask.detach() != 0).to(torch.uint8).numpy())
        out = delta_rule_forward(*floats, real, int(num_backward_heads), torch.get_num_threads())
    return torch.from_numpy(out)


def directional_conv_cython(x, taps, backward, real):
    """`lam.modeling_lam.directional_conv` of x * real, compiled: x (B, L, C) CPU tensor, taps (K, C)
    and backward (C,) uint8 numpy arrays, real (B, L), zero for masked tokens. Returns float32
    (B, L, C), equal to the torch form; uses torch.get_num_threads() OpenMP threads for inputs of
    more than CONV_PARALLEL_ELEMENTS elements, else one."""
    if not AVAILABLE:
        raise RuntimeError(f"The compiled kernels of lam._cython are not built ({IMPORT_ERROR})")
    with torch.no_grad():
        values = np.ascontiguousarray(x.detach().to(torch.float32).numpy())
        mask = np.ascontiguousarray((real.detach() != 0).to(torch.uint8).numpy())
        threads = torch.get_num_threads() if values.size > CONV_PARALLEL_ELEMENTS else 1
        return torch.from_numpy(directional_conv_forward(values, taps, mask, backward, threads))


# Below this many elements a convolution runs on one thread: waking the others costs more.
CONV_PARALLEL_ELEMENTS = 1 << 16
