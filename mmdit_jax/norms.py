"""Normalisations over the feature (last) axis."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp


def layer_norm(x: jax.Array, eps: float = 1e-6) -> jax.Array:
    """LayerNorm without learned affine parameters (adaLN supplies them). (..., dim) -> (..., dim)."""
    mean = jnp.mean(x, axis=-1, keepdims=True)
    variance = jnp.var(x, axis=-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(variance + eps)


class RMSNorm(eqx.Module):
    """Root-mean-square normalisation with a learned per-feature scale (initialised to one)."""

    scale: jax.Array
    eps: float = eqx.field(static=True)

    def __init__(self, dim: int, eps: float = 1e-6):
        self.scale = jnp.ones((dim,))
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        """(..., dim) -> (..., dim)."""
        mean_square = jnp.mean(jnp.square(x), axis=-1, keepdims=True)
        return x * jax.lax.rsqrt(mean_square + self.eps) * self.scale
