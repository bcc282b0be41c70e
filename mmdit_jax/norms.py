"""Normalisations over the feature (last) axis, computed in float32 and returned in the input dtype."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp


def _float32_or_wider(x: jax.Array) -> jax.Array:
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def layer_norm(x: jax.Array, eps: float = 1e-6) -> jax.Array:
    """LayerNorm without learned affine parameters (adaLN supplies them). (..., dim) -> (..., dim)."""
    wide = _float32_or_wider(x)
    mean = jnp.mean(wide, axis=-1, keepdims=True)
    variance = jnp.var(wide, axis=-1, keepdims=True)
    return ((wide - mean) * jax.lax.rsqrt(variance + eps)).astype(x.dtype)


class RMSNorm(eqx.Module):
    """Root-mean-square normalisation with a learned per-feature scale (initialised to one)."""

    scale: jax.Array
    eps: float = eqx.field(static=True)

    def __init__(self, dim: int, eps: float = 1e-6):
        self.scale = jnp.ones((dim,))
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        """(..., dim) -> (..., dim) in the dtype of x, whatever the dtype of `scale`."""
        wide = _float32_or_wider(x)
        mean_square = jnp.mean(jnp.square(wide), axis=-1, keepdims=True)
        return (wide * jax.lax.rsqrt(mean_square + self.eps) * _float32_or_wider(self.scale)).astype(x.dtype)
