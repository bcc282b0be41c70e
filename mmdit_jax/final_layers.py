"""Output heads mapping each modality's final tokens to its output width."""

from __future__ import annotations

import equinox as eqx
import jax

from .modulation import AdaptiveModulation, modulate
from .norms import RMSNorm, layer_norm


class ModulatedFinalLayer(eqx.Module):
    """Adaptive LayerNorm (zero-initialised shift and scale) then a linear projection."""

    modulation: AdaptiveModulation
    linear: eqx.nn.Linear

    def __init__(self, dim: int, dim_out: int, dim_cond: int, *, key: jax.Array):
        modulation_key, linear_key = jax.random.split(key)
        self.modulation = AdaptiveModulation(dim_cond, dim, num_params=2, key=modulation_key)
        self.linear = eqx.nn.Linear(dim, dim_out, key=linear_key)

    def __call__(self, x: jax.Array, cond: jax.Array) -> jax.Array:
        """x: (seq, dim), cond: (dim_cond,) -> (seq, dim_out)."""
        shift, scale = self.modulation(cond)
        return jax.vmap(self.linear)(modulate(layer_norm(x), shift, scale))


class SimpleFinalLayer(eqx.Module):
    """RMSNorm then a linear projection."""

    norm: RMSNorm
    linear: eqx.nn.Linear

    def __init__(self, dim: int, dim_out: int, *, key: jax.Array):
        self.norm = RMSNorm(dim)
        self.linear = eqx.nn.Linear(dim, dim_out, key=key)

    def __call__(self, x: jax.Array) -> jax.Array:
        """(seq, dim) -> (seq, dim_out)."""
        return jax.vmap(self.linear)(self.norm(x))
