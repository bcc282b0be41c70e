"""adaLN-Zero modulation: shifts, scales and gates predicted from the conditioning vector."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp


def modulate(x: jax.Array, shift: jax.Array, scale: jax.Array) -> jax.Array:
    """Adaptive affine map `x * (1 + scale) + shift` in the dtype of x. x: (seq, dim); shift, scale: (dim,)."""
    return (x * (1 + scale) + shift).astype(x.dtype)


def gated_residual(x: jax.Array, gate: jax.Array, branch: jax.Array) -> jax.Array:
    """`x + gate * branch` in the dtype of x, so the residual stream keeps the input dtype."""
    return x + (gate * branch).astype(x.dtype)


class AdaptiveModulation(eqx.Module):
    """`Linear(silu(cond))` split into `num_params` vectors of width `dim`.

    Weight and bias start at zero (adaLN-Zero): every shift, scale and gate is
    zero at initialisation, whatever the conditioning.
    """

    linear: eqx.nn.Linear
    num_params: int = eqx.field(static=True)

    def __init__(self, dim_cond: int, dim: int, num_params: int, *, key: jax.Array):
        # Only the layer's structure is needed: its random initialisation would be overwritten.
        shape = eqx.filter_eval_shape(eqx.nn.Linear, dim_cond, dim * num_params, key=key)
        self.linear = eqx.tree_at(
            lambda layer: (layer.weight, layer.bias),
            shape,
            (jnp.zeros(shape.weight.shape, shape.weight.dtype), jnp.zeros(shape.bias.shape, shape.bias.dtype)),
        )
        self.num_params = num_params

    def __call__(self, cond: jax.Array) -> tuple[jax.Array, ...]:
        """cond: (dim_cond,) -> `num_params` arrays of shape (dim,)."""
        return tuple(jnp.split(self.linear(jax.nn.silu(cond)), self.num_params))
