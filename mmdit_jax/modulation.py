"""adaLN-Zero modulation: shifts, scales and gates predicted from the conditioning vector."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp


def modulate(x: jax.Array, shift: jax.Array, scale: jax.Array) -> jax.Array:
    """Adaptive affine map `x * (1 + scale) + shift`. x: (seq, dim); shift, scale: (dim,)."""
    return x * (1 + scale) + shift


class AdaptiveModulation(eqx.Module):
    """`Linear(silu(cond))` split into `num_params` vectors of width `dim`.

    Weight and bias start at zero (adaLN-Zero): every shift, scale and gate is
    zero at initialisation, whatever the conditioning.
    """

    linear: eqx.nn.Linear
    num_params: int = eqx.field(static=True)

    def __init__(self, dim_cond: int, dim: int, num_params: int, *, key: jax.Array):
        linear = eqx.nn.Linear(dim_cond, dim * num_params, key=key)
        self.linear = eqx.tree_at(
            lambda layer: (layer.weight, layer.bias),
            linear,
            (jnp.zeros_like(linear.weight), jnp.zeros_like(linear.bias)),
        )
        self.num_params = num_params

    def __call__(self, cond: jax.Array) -> tuple[jax.Array, ...]:
        """cond: (dim_cond,) -> `num_params` arrays of shape (dim,)."""
        return tuple(jnp.split(self.linear(jax.nn.silu(cond)), self.num_params))
