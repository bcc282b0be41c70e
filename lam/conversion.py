"""Torch state-dict tensors (the names and layouts of `model.safetensors`) <-> the JAX parameters
of `lam._jax_model` (the typed containers of `lam._jax_params`), both ways, as `lam.schema` declares them.

Each schema path names the containers' fields down to the array (layer indices for `Params.layers`):
Linear layers are `Linear(kernel (in, out), bias (out,))`, LayerNorms `LayerNorm(scale, bias)`,
convolutions `Conv(taps (K, C))`; the mixer's nine input projections are one fused `in_proj` (see
`lam.schema`). Arrays stay numpy and are copied bit for bit; place them on a device with `jax.device_put`.
"""

from __future__ import annotations

import numpy as np

from ._jax_params import Params, from_nested
from .config import LAMHyperparameters
from .schema import fused_bias_mask, fused_width, input_projection_widths, parameters  # noqa: F401  (re-exported)


def _container(tree: dict, path: tuple, config: LAMHyperparameters) -> dict:
    """The dict holding `path`'s last key, created along the way ("layers" is a list)."""
    for key in path[:-1]:
        if key == "layers" and key not in tree:
            tree[key] = [{} for _ in range(config.num_hidden_layers)]
        tree = tree[key] if isinstance(key, int) else tree.setdefault(key, {})
    return tree


def leaf_at(params: Params, path: tuple):
    """The array at a schema `path` of `params` (field names; layer indices)."""
    for key in path:
        params = params[key] if isinstance(key, int) else getattr(params, key)
    return params


def params_from_torch(tensors: dict[str, np.ndarray], config: LAMHyperparameters) -> Params:
    """The JAX parameters of torch state-dict `tensors`; KeyError on missing or extra names."""
    schema = parameters(config)
    expected = {p.name for p in schema}
    if set(tensors) != expected:
        raise KeyError(f"tensors do not match the config (missing: {sorted(expected - set(tensors))[:5]}, "
                       f"unexpected: {sorted(set(tensors) - expected)[:5]})")
    params: dict = {}
    for parameter in schema:
        value = np.asarray(tensors[parameter.name])
        value = np.ascontiguousarray(value.T) if parameter.transposed else value
        parent, key = _container(params, parameter.path, config), parameter.path[-1]
        if parameter.columns is None:
            parent[key] = value
            continue
        if key not in parent:  # a fused array: zeros where no torch tensor (the missing biases)
            parent[key] = np.zeros((*value.shape[:-1], fused_width(config)), value.dtype)
        parent[key][..., slice(*parameter.columns)] = value
    return from_nested(Params, params)


def torch_from_params(params: Params, config: LAMHyperparameters) -> dict[str, np.ndarray]:
    """The torch state-dict tensors of JAX parameters (the inverse of `params_from_torch`)."""
    tensors = {}
    for parameter in parameters(config):
        value = np.asarray(leaf_at(params, parameter.path))
        if parameter.columns is not None:
            value = value[..., slice(*parameter.columns)]
        tensors[parameter.name] = np.ascontiguousarray(value.T if parameter.transposed else value)
    return tensors
