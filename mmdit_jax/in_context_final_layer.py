"""InContextMMDiT output head: maps each modality's final tokens to its output width."""

from __future__ import annotations

import equinox as eqx
import jax

from .norms import RMSNorm


class SimpleFinalLayer(eqx.Module):
    """RMSNorm then a linear projection."""

    norm: RMSNorm
    linear: eqx.nn.Linear

    def __init__(self, dim: int, dim_out: int, *, key: jax.Array):
        self.norm = RMSNorm(dim)
        self.linear = eqx.nn.Linear(dim, dim_out, key=key)

    def __call__(self, x: jax.Array) -> jax.Array:
        """(seq, dim) -> (seq, dim_out) in the dtype of x."""
        return jax.vmap(self.linear)(self.norm(x)).astype(x.dtype)
