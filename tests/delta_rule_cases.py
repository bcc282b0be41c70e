"""Inputs for the delta-rule kernel tests (torch, Cython and JAX forms) and their float64 truth.

Unit-scale float32 inputs of shapes as in `lam.reference`, with retention regimes cycled over
heads: anything in (0, 1), very short memory, very long memory.
"""

from __future__ import annotations

import functools

import numpy as np

from lam.reference import DeltaRuleInputs, delta_rule_reference

WIDTH = 32
DECAY_RANGES = ((0.01, 0.99), (0.04, 0.06), (0.998, 0.9995))


def make_mask(batch, length, kind, rng):
    """(B, L) uint8 mask: 'padded' mixes lengths (right padding; row 0 full, row 2 empty);
    'holes' is a random general mask, handed over as a non-contiguous view."""
    if kind == "padded":
        lengths = [length, (length + 1) // 2, 0, *rng.integers(1, length + 1, max(batch - 3, 0))][:batch]
        return (np.arange(length)[None, :] < np.array(lengths)[:, None]).astype(np.uint8)
    if kind == "holes":
        wide = (rng.random((batch, 2 * length)) < 0.7).astype(np.uint8)
        return wide[:, ::2]
    raise ValueError(kind)


def make_inputs(batch, length, mask_kind, heads, dk=WIDTH, dv=WIDTH, seed=0):
    """A dict of numpy arrays: float32 q, k, v and gates (B, H, L[, D]) and a uint8 mask (B, L)."""
    rng = np.random.default_rng([seed, batch, length, heads, dk, dv])
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    shape = (batch, heads, length)
    inputs = {
        "q": unit(rng.standard_normal((*shape, dk))),
        "k": unit(rng.standard_normal((*shape, dk))),
        "v": rng.standard_normal((*shape, dv)),
        "beta": rng.uniform(0.01, 0.99, shape),
        "read_fast": rng.uniform(0.01, 0.99, shape),
        "read_slow": rng.uniform(0.01, 0.99, shape),
    }
    for name, offset in (("decay_fast", 0), ("decay_slow", 1)):
        low, high = np.array([DECAY_RANGES[(h + offset) % len(DECAY_RANGES)] for h in range(heads)]).T
        inputs[name] = low[:, None] + (high - low)[:, None] * rng.random(shape)
    inputs = {name: x.astype(np.float32) for name, x in inputs.items()}
    inputs["mask"] = make_mask(batch, length, mask_kind, rng)
    return inputs


@functools.lru_cache(maxsize=None)
def reference_case(batch, length, mask_kind, heads, num_backward_heads, dk=WIDTH, dv=WIDTH):
    """make_inputs(...) and the float64 reference output for them."""
    inputs = make_inputs(batch, length, mask_kind, heads, dk, dv)
    return inputs, delta_rule_reference(DeltaRuleInputs(**inputs), num_backward_heads)
