"""Conditioning layers: the timestep embedding and the adaptive LayerNorm that consumes it."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp

from .modulation import AdaptiveModulation, modulate
from .norms import layer_norm


def sinusoidal_embedding(
    t: jax.Array, dim: int, time_scale: float = 1000.0, max_period: float = 10_000.0
) -> jax.Array:
    """Cosine and sine features of `time_scale * t` at geometric frequencies. t: () -> (dim,) float32.

    `time_scale` stretches [0, 1] over the range the frequencies were designed
    for (integer diffusion steps), so nearby times get distinguishable features.
    Computed in float32 whatever the dtype of `t`: in bfloat16, `time_scale * t`
    would be off by several units and the features by up to ~1.
    """
    if dim % 2:
        raise ValueError(f"sinusoidal embedding dim must be even, got {dim}")
    half = dim // 2
    frequencies = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    angles = time_scale * jnp.asarray(t).astype(jnp.float32) * frequencies
    return jnp.concatenate([jnp.cos(angles), jnp.sin(angles)])


class TimestepEmbedding(eqx.Module):
    """Sinusoidal embedding of a scalar, then Linear -> SiLU -> Linear, all in float32. () -> (dim_out,)."""

    linear_in: eqx.nn.Linear
    linear_out: eqx.nn.Linear
    dim_embed: int = eqx.field(static=True)

    def __init__(self, dim_embed: int, dim_out: int, key: jax.Array):
        if dim_embed <= 0 or dim_embed % 2:
            raise ValueError(f"dim_embed must be a positive even integer, got {dim_embed}")
        in_key, out_key = jax.random.split(key)
        self.linear_in = eqx.nn.Linear(dim_embed, dim_out, key=in_key)
        self.linear_out = eqx.nn.Linear(dim_out, dim_out, key=out_key)
        self.dim_embed = dim_embed

    def __call__(self, t: jax.Array) -> jax.Array:
        t = jnp.asarray(t)
        if t.shape != ():
            raise ValueError(f"timestep must be a scalar per example, got shape {t.shape}; vmap over batches")
        hidden = _linear_float32(self.linear_in, sinusoidal_embedding(t, self.dim_embed))
        return _linear_float32(self.linear_out, jax.nn.silu(hidden))


def _linear_float32(linear: eqx.nn.Linear, x: jax.Array) -> jax.Array:
    """`linear(x)` with its parameters upcast, so bfloat16 weights still give a float32 result."""
    return linear.weight.astype(jnp.float32) @ x + linear.bias.astype(jnp.float32)


class AdaptiveLayerNorm(eqx.Module):
    """`LN(x) * (1 + scale) + shift`, with (shift, scale) predicted from the conditioning (adaLN-Zero).

    Shift and scale start at zero, so a fresh layer is a plain LayerNorm.
    """

    modulation: AdaptiveModulation

    def __init__(self, dim: int, dim_cond: int, *, key: jax.Array):
        self.modulation = AdaptiveModulation(dim_cond, dim, num_params=2, key=key)

    def __call__(self, x: jax.Array, cond: jax.Array) -> jax.Array:
        """x: (seq, dim), cond: (dim_cond,) -> (seq, dim) in the dtype of x."""
        shift, scale = self.modulation(cond)
        return modulate(layer_norm(x), shift, scale)
