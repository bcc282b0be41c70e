"""Compiled Cython token scan of the hierarchical delta rule, with a torch-tensor entry point.

`AVAILABLE` says whether the extension was built; `IMPORT_ERROR` keeps the reason if not.
"""

from __future__ import annotations

import numpy as np
import torch

try:
    from .delta_rule import delta_rule_forward
except ImportError as error:
    AVAILABLE, IMPORT_ERROR = False, error
else:
    AVAILABLE, IMPORT_ERROR = True, None


def delta_rule_cython(q, k, v, beta, decay_fast, decay_slow, read_fast, read_slow, mask, num_backward_heads):
    """Run the compiled kernel on CPU tensors (no autograd); returns float32 o (B, H, L, dv).

    Shapes as in `lam.reference` (dk may differ from dv); any float dtype; mask (B, L).
    Uses torch.get_num_threads() OpenMP threads.
    """
    if not AVAILABLE:
        raise RuntimeError(
            "The compiled Cython kernel lam._cython.delta_rule is not built "
            f"({IMPORT_ERROR}). Build it with `pip install -e .` in the repository, "
            "with a C compiler (and OpenMP for threads) installed."
        )
    tensors = (q, k, v, beta, decay_fast, decay_slow, read_fast, read_slow, mask)
    if any(x.device.type != "cpu" for x in tensors):
        raise ValueError("delta_rule_cython runs on CPU tensors only")
    with torch.no_grad():
        floats = [np.ascontiguousarray(x.detach().to(torch.float32).numpy()) for x in tensors[:-1]]
        real = np.ascontiguousarray((mask.detach() != 0).to(torch.uint8).numpy())
        out = delta_rule_forward(*floats, real, int(num_backward_heads), torch.get_num_threads())
    return torch.from_numpy(out)
