"""SwiGLU feed-forward network."""

from __future__ import annotations

import equinox as eqx
import jax


class SwiGLU(eqx.Module):
    """`W_out(W_in(x) * swish(W_gate(x)))` with hidden width `dim * mult`, applied to one token."""

    w_in: eqx.nn.Linear
    w_gate: eqx.nn.Linear
    w_out: eqx.nn.Linear

    def __init__(self, dim: int, mult: int = 4, *, key: jax.Array):
        key_in, key_gate, key_out = jax.random.split(key, 3)
        hidden = dim * mult
        self.w_in = eqx.nn.Linear(dim, hidden, use_bias=False, key=key_in)
        self.w_gate = eqx.nn.Linear(dim, hidden, use_bias=False, key=key_gate)
        self.w_out = eqx.nn.Linear(hidden, dim, use_bias=False, key=key_out)

    def __call__(self, x: jax.Array) -> jax.Array:
        """(dim,) -> (dim,)."""
        return self.w_out(self.w_in(x) * jax.nn.swish(self.w_gate(x)))
