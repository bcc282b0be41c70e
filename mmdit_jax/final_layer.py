"""MMDiT output head: maps each modality's final tokens to its output width."""

from __future__ import annotations

import equinox as eqx
import jax

from .layers import AdaptiveLayerNorm


class ModulatedFinalLayer(eqx.Module):
    """Adaptive LayerNorm (zero-initialised shift and scale) then a linear projection."""

    norm: AdaptiveLayerNorm
    linear: eqx.nn.Linear

    def __init__(self, dim: int, dim_out: int, dim_cond: int, *, key: jax.Array):
        norm_key, linear_key = jax.random.split(key)
        self.norm = AdaptiveLayerNorm(dim, dim_cond, key=norm_key)
        self.linear = eqx.nn.Linear(dim, dim_out, key=linear_key)

    def __call__(self, x: jax.Array, cond: jax.Array) -> jax.Array:
        """x: (seq, dim), cond: (dim_cond,) -> (seq, dim_out) in the dtype of x."""
        return jax.vmap(self.linear)(self.norm(x, cond)).astype(x.dtype)
