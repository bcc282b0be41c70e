"""Float64 token-by-token reference of the hierarchical delta rule (SPEC §2.5-2.6).

This is the truth every fast form is tested against. Every form (this one, the torch chunkwise
form, the Cython token scan, the JAX scan and chunkwise forms) takes a `DeltaRuleInputs` and
`num_backward_heads`, the last heads that read from the end (a static setting, not an array).
The output o: (B, H, L, Dv) is zero at masked positions.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np


class DeltaRuleInputs(NamedTuple):
    """The arrays of the delta rule (numpy, torch or JAX): q, k (B, H, L, Dk); v (B, H, L, Dv);
    per-token gates (B, H, L): write strength beta, fast and slow retention (decays), fast and slow
    read weights; mask (B, L), nonzero for real tokens."""

    q: Any
    k: Any
    v: Any
    beta: Any
    decay_fast: Any
    decay_slow: Any
    read_fast: Any
    read_slow: Any
    mask: Any

    def gates(self) -> tuple:
        """beta, decay_fast, decay_slow, read_fast, read_slow."""
        return self[3:8]


def delta_rule_reference(inputs: DeltaRuleInputs, num_backward_heads: int) -> np.ndarray:
    """Run both memories of every head token by token in float64; returns o (B, H, L, Dv)."""
    q, k, v, beta, decay_fast, decay_slow, read_fast, read_slow = (np.asarray(a, dtype=np.float64) for a in inputs[:-1])
    mask = np.asarray(inputs.mask).astype(bool)
    batch, heads, length, dk = k.shape
    out = np.zeros(v.shape, dtype=np.float64)
    for h in range(heads):
        backward = h >= heads - num_backward_heads
        order = range(length - 1, -1, -1) if backward else range(length)
        state_fast = np.zeros((batch, dk, v.shape[-1]))
        state_slow = np.zeros((batch, dk, v.shape[-1]))
        for t in order:
            real = mask[:, t]
            kt, vt, qt = k[:, h, t], v[:, h, t], q[:, h, t]
            outer = np.einsum("bi,bj->bij", kt, vt)
            erase = np.einsum("bi,bj->bij", kt, kt)
            eye = np.eye(dk)[None]
            b = beta[:, h, t][:, None, None]
            new_fast = decay_fast[:, h, t][:, None, None] * (eye - b * erase) @ state_fast + b * outer
            new_slow = decay_slow[:, h, t][:, None, None] * (eye - b * erase) @ state_slow + b * outer
            state_fast = np.where(real[:, None, None], new_fast, state_fast)
            state_slow = np.where(real[:, None, None], new_slow, state_slow)
            read = read_fast[:, h, t][:, None] * np.einsum("bij,bi->bj", state_fast, qt) + read_slow[:, h, t][
                :, None
            ] * np.einsum("bij,bi->bj", state_slow, qt)
            out[:, h, t] = np.where(real[:, None], read, 0.0)
    return out
