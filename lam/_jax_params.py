"""The JAX model's parameters: typed containers (NamedTuples, hence pytrees) mirroring the torch modules.

`lam.conversion` fills them from torch state-dict tensors at the paths `lam.schema` declares; field
annotations name each child's container, so `from_nested` can type a nested dict of those paths.
Optional fields are None where the model has no such tensor (position table under
`position_policy="none"`, `kernel_scale` outside int8 compute). Plain module: no jax import.
"""

from __future__ import annotations

import typing
from typing import Any, NamedTuple


class Linear(NamedTuple):
    """y = x @ kernel + bias: kernel (in, out), bias (out,); `kernel_scale` (out,) when the kernel is int8."""

    kernel: Any
    bias: Any
    kernel_scale: Any = None


class LayerNorm(NamedTuple):
    scale: Any
    bias: Any


class Conv(NamedTuple):
    """Depthwise directional convolution taps (K, C)."""

    taps: Any


class Embeddings(NamedTuple):
    """Tables (rows, d) of words, token types and positions (None without positions), then LayerNorm."""

    word: Any
    token_type: Any
    norm: LayerNorm
    position: Any = None


class Mixer(NamedTuple):
    """`in_proj` is the nine input projections fused (see `lam.schema`); `out_norm` (D,)."""

    in_proj: Linear
    q_conv: Conv
    k_conv: Conv
    v_conv: Conv
    flux_in: Linear
    flux_out: Linear
    out_norm: Any
    o_proj: Linear


class Layer(NamedTuple):
    mixer: Mixer
    mixer_norm: LayerNorm
    ffn_in: Linear
    ffn_out: Linear
    ffn_norm: LayerNorm


class Params(NamedTuple):
    """A LAM encoder: embeddings and `num_hidden_layers` layers."""

    embeddings: Embeddings
    layers: tuple[Layer, ...]


def from_nested(container: type, tree: dict):
    """`container` built from a nested dict (lists for tuple fields) of its fields; absent fields take
    their defaults."""
    hints = typing.get_type_hints(container)
    return container(**{field: _typed(hints[field], tree[field]) for field in container._fields if field in tree})


def _typed(hint, value):
    if isinstance(hint, type) and issubclass(hint, tuple) and hasattr(hint, "_fields"):
        return from_nested(hint, value)
    if typing.get_origin(hint) is tuple:
        return tuple(_typed(typing.get_args(hint)[0], item) for item in value)
    return value
