"""Float64 token-by-token reference of the hierarchical delta rule (SPEC §2.5-2.6).

This is the truth every fast form is tested against. Shapes, for every form:
q, k, v: (B, H, L, D); beta, decay_fast, decay_slow, read_fast, read_slow: (B, H, L);
mask: (B, L), 1 for real tokens. The last `num_backward_heads` heads read from the end.
The output o: (B, H, L, D) is zero at masked positions.
"""

from __future__ import annotations

import numpy as np


def delta_rule_reference(q, k, v, beta, decay_fast, decay_slow, read_fast, read_slow, mask, num_backward_heads):
    """Run both memories of every head token by token in float64; returns o (B, H, L, D)."""
    q, k, v, beta, decay_fast, decay_slow, read_fast, read_slow = (
        np.asarray(a, dtype=np.float64) for a in (q, k, v, beta, decay_fast, decay_slow, read_fast, read_slow)
    )
    mask = np.asarray(mask).astype(bool)
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
