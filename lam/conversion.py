"""Torch state-dict tensors (the names and layouts of `model.safetensors`) <-> the JAX parameter
pytree of `lam._jax_model`, both ways.

Layouts: Linear weights (out, in) become kernels (in, out); convolution weights (C, K) become
taps (K, C); LayerNorm weights become scales; "layers" is a list of per-layer pytrees. The
mixer's nine projections of its input x are fused into one "in_proj" kernel
(d, 4 * inner + 5 * heads), columns in INPUT_PROJECTIONS order, so each layer runs one matmul
instead of nine (five of them only `heads` wide); the three projections without a bias get
zero bias columns. Arrays stay numpy; place them on a device with `jax.device_put`.
"""

from __future__ import annotations

import numpy as np

from .config import LAMHyperparameters

WIDE_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "gate_proj")  # d -> inner
GATE_PROJECTIONS = ("beta_proj", "fast_proj", "slow_proj", "read_fast_proj", "read_slow_proj")  # d -> heads
INPUT_PROJECTIONS = WIDE_PROJECTIONS + GATE_PROJECTIONS
UNBIASED = ("gate_proj", "read_fast_proj", "read_slow_proj")
MIXER_LINEARS = ("flux_in", "flux_out", "o_proj")
MIXER_CONVS = ("q_conv", "k_conv", "v_conv")
FFN_LINEARS = ("ffn_in", "ffn_out")
LAYER_NORMS = ("mixer_norm", "ffn_norm")


def input_projection_widths(config: LAMHyperparameters) -> dict[str, int]:
    """Output width of each fused input projection, in column order."""
    return {name: config.inner_size if name in WIDE_PROJECTIONS else config.num_heads for name in INPUT_PROJECTIONS}


def fused_bias_mask(config: LAMHyperparameters) -> np.ndarray:
    """(4 * inner + 5 * heads,) float32: 1 on the fused input projection's bias columns that exist
    in the torch model, 0 on the zero columns of the projections without a bias."""
    return np.concatenate([np.full(width, float(module not in UNBIASED), np.float32)
                           for module, width in input_projection_widths(config).items()])


def layer_names() -> dict[str, tuple[str, ...]]:
    """Torch name within a layer -> path in a layer's pytree, for all but the fused input projections."""
    names = {}
    for module in MIXER_LINEARS:
        names[f"mixer.{module}.weight"] = ("mixer", module, "kernel")
        names[f"mixer.{module}.bias"] = ("mixer", module, "bias")
    for conv in MIXER_CONVS:
        names[f"mixer.{conv}"] = ("mixer", conv, "taps")
    names["mixer.out_norm"] = ("mixer", "out_norm")
    for module in FFN_LINEARS:
        names[f"{module}.weight"] = (module, "kernel")
        names[f"{module}.bias"] = (module, "bias")
    for norm in LAYER_NORMS:
        names[f"{norm}.weight"] = (norm, "scale")
        names[f"{norm}.bias"] = (norm, "bias")
    return names


def embedding_names(config: LAMHyperparameters) -> dict[str, tuple[str, ...]]:
    """Torch name -> path in the "embeddings" pytree; tables keep their (rows, d) layout."""
    names = {
        "embeddings.word_embeddings.weight": ("word",),
        "embeddings.token_type_embeddings.weight": ("token_type",),
        "embeddings.layer_norm.weight": ("norm", "scale"),
        "embeddings.layer_norm.bias": ("norm", "bias"),
    }
    if config.position_policy != "none":
        names["embeddings.position_embeddings.weight"] = ("position",)
    return names


def torch_names(config: LAMHyperparameters) -> set[str]:
    """Every tensor name of a model with `config`, as in its state dict."""
    per_layer = set(layer_names())
    for module in INPUT_PROJECTIONS:
        per_layer.add(f"mixer.{module}.weight")
        if module not in UNBIASED:
            per_layer.add(f"mixer.{module}.bias")
    return set(embedding_names(config)) | {f"layers.{i}.{n}" for i in range(config.num_hidden_layers) for n in per_layer}


def _set(tree: dict, path: tuple[str, ...], value) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def _get(tree: dict, path: tuple[str, ...]):
    for key in path:
        tree = tree[key]
    return tree


def _in_out(weight: np.ndarray) -> np.ndarray:
    """(out, in) -> (in, out): torch Linear and conv layouts to JAX ones, and back."""
    return np.ascontiguousarray(np.asarray(weight).T)


def params_from_torch(tensors: dict[str, np.ndarray], config: LAMHyperparameters) -> dict:
    """The JAX parameter pytree of torch state-dict `tensors`; KeyError on missing or extra names."""
    expected = torch_names(config)
    if set(tensors) != expected:
        raise KeyError(f"tensors do not match the config (missing: {sorted(expected - set(tensors))[:5]}, "
                       f"unexpected: {sorted(set(tensors) - expected)[:5]})")
    params: dict = {"embeddings": {}, "layers": [{} for _ in range(config.num_hidden_layers)]}
    for name, path in embedding_names(config).items():
        _set(params["embeddings"], path, np.asarray(tensors[name]))
    for i, layer in enumerate(params["layers"]):
        for name, path in layer_names().items():
            # 2-d per-layer tensors are Linear weights (out, in) and conv weights (C, K).
            value = np.asarray(tensors[f"layers.{i}.{name}"])
            _set(layer, path, _in_out(value) if value.ndim == 2 else value)
        kernels, biases = [], []
        for module, width in input_projection_widths(config).items():
            kernels.append(_in_out(tensors[f"layers.{i}.mixer.{module}.weight"]))
            biases.append(np.zeros(width, np.float32) if module in UNBIASED else tensors[f"layers.{i}.mixer.{module}.bias"])
        _set(layer, ("mixer", "in_proj"), {"kernel": np.concatenate(kernels, -1), "bias": np.concatenate(biases, -1)})
    return params


def torch_from_params(params: dict, config: LAMHyperparameters) -> dict[str, np.ndarray]:
    """The torch state-dict tensors of a JAX parameter pytree (the inverse of `params_from_torch`)."""
    tensors = {name: np.asarray(_get(params["embeddings"], path)) for name, path in embedding_names(config).items()}
    widths = input_projection_widths(config)
    splits = np.cumsum(list(widths.values()))[:-1]
    for i, layer in enumerate(params["layers"]):
        for name, path in layer_names().items():
            value = np.asarray(_get(layer, path))
            tensors[f"layers.{i}.{name}"] = _in_out(value) if value.ndim == 2 else value
        in_proj = layer["mixer"]["in_proj"]
        for module, kernel, bias in zip(widths, np.split(np.asarray(in_proj["kernel"]), splits, -1),
                                        np.split(np.asarray(in_proj["bias"]), splits, -1)):
            tensors[f"layers.{i}.mixer.{module}.weight"] = _in_out(kernel)
            if module not in UNBIASED:
                tensors[f"layers.{i}.mixer.{module}.bias"] = np.ascontiguousarray(bias)
    return tensors
