"""Embedding of a scalar conditioning variable (e.g. flow-matching time t in [0, 1])."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp


def sinusoidal_embedding(
    t: jax.Array, dim: int, time_scale: float = 1000.0, max_period: float = 10_000.0
) -> jax.Array:
    """Cosine and sine features of `time_scale * t` at geometric frequencies. t: () -> (dim,).

    `time_scale` stretches [0, 1] over the range the frequencies were designed
    for (integer diffusion steps), so nearby times get distinguishable features.
    """
    if dim % 2:
        raise ValueError(f"sinusoidal embedding dim must be even, got {dim}")
    half = dim // 2
    frequencies = jnp.exp(-math.log(max_period) * jnp.arange(half) / half)
    angles = time_scale * t * frequencies
    return jnp.concatenate([jnp.cos(angles), jnp.sin(angles)])


class TimestepEmbedding(eqx.Module):
    """Sinusoidal embedding of a scalar followed by a SiLU MLP. () -> (dim_out,)."""

    mlp: eqx.nn.MLP
    dim_embed: int = eqx.field(static=True)

    def __init__(self, dim_embed: int, dim_out: int, key: jax.Array):
        if dim_embed <= 0 or dim_embed % 2:
            raise ValueError(f"dim_embed must be a positive even integer, got {dim_embed}")
        self.mlp = eqx.nn.MLP(
            dim_embed, dim_out, width_size=dim_out, depth=1, activation=jax.nn.silu, key=key
        )
        self.dim_embed = dim_embed

    def __call__(self, t: jax.Array) -> jax.Array:
        t = jnp.asarray(t)
        if t.shape != ():
            raise ValueError(f"timestep must be a scalar per example, got shape {t.shape}; vmap over batches")
        return self.mlp(sinusoidal_embedding(t, self.dim_embed))
