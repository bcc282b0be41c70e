"""The parameter schema of a LAM model: one declaration of every tensor, read by `lam.weights_io`
(names and shapes of `model.safetensors`), `lam.conversion` (torch <-> JAX layouts) and
`lam.building` (initialisation and the teacher's tensors).

Each `Parameter` is a torch state-dict tensor (its name and shape are those of `model.safetensors`)
and says where it lives in the JAX parameters (`lam._jax_params`): a path of fields, whether it is
transposed there (Linear weights (out, in) are kernels (in, out), convolution weights (C, K) are
taps (K, C)), and for the mixer's nine input projections, which columns of the fused "in_proj"
kernel or bias it fills (INPUT_PROJECTIONS order: one matmul per layer instead of nine; the three
projections without a bias leave zero bias columns).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

WIDE_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "gate_proj")  # d -> inner
GATE_PROJECTIONS = ("beta_proj", "fast_proj", "slow_proj", "read_fast_proj", "read_slow_proj")  # d -> heads
INPUT_PROJECTIONS = WIDE_PROJECTIONS + GATE_PROJECTIONS
UNBIASED = ("gate_proj", "read_fast_proj", "read_slow_proj")
INITIALISATIONS = ("teacher", "normal", "zeros", "ones", "conv_identity", "fast_retention", "slow_retention")
DTYPE = "float32"  # every tensor, in the file and in both backends' parameters


class Parameter(NamedTuple):
    """One tensor: torch `name` and `shape`; JAX `path` (keys and layer indices), `transposed`, and
    `columns` (start, stop) of a fused array or None; `init` (one of INITIALISATIONS) and the
    teacher's (BertModel) tensor name when `init` is "teacher"."""

    name: str
    shape: tuple[int, ...]
    path: tuple[str | int, ...]
    transposed: bool = False
    columns: tuple[int, int] | None = None
    init: str = "normal"
    teacher: str | None = None
    dtype: str = DTYPE


def input_projection_widths(config) -> dict[str, int]:
    """Output width of each fused input projection, in column order."""
    return {name: config.inner_size if name in WIDE_PROJECTIONS else config.num_heads for name in INPUT_PROJECTIONS}


def fused_bias_mask(config) -> np.ndarray:
    """(4 * inner + 5 * heads,) float32: 1 on the fused input projection's bias columns that exist
    in the torch model, 0 on the zero columns of the projections without a bias."""
    return np.concatenate([np.full(width, float(module not in UNBIASED), np.float32)
                           for module, width in input_projection_widths(config).items()])


def fused_width(config) -> int:
    """Columns of the fused input projection, 4 * inner + 5 * heads."""
    return sum(input_projection_widths(config).values())


def linear(name: str, path: tuple, out_features: int, in_features: int, bias: bool = True, init: str = "normal",
           bias_init: str = "zeros", teacher: str | None = None) -> list[Parameter]:
    """An nn.Linear `name` (weight, bias) at JAX `path` (kernel, bias)."""
    weight = Parameter(f"{name}.weight", (out_features, in_features), (*path, "kernel"), True, init=init,
                       teacher=teacher and f"{teacher}.weight")
    if not bias:
        return [weight]
    return [weight, Parameter(f"{name}.bias", (out_features,), (*path, "bias"), init=bias_init,
                              teacher=teacher and f"{teacher}.bias")]


def layer_norm(name: str, path: tuple, width: int, teacher: str | None) -> list[Parameter]:
    """An nn.LayerNorm `name` (weight, bias) at JAX `path` (scale, bias)."""
    init = "teacher" if teacher else "ones"
    return [Parameter(f"{name}.weight", (width,), (*path, "scale"), init=init, teacher=teacher and f"{teacher}.weight"),
            Parameter(f"{name}.bias", (width,), (*path, "bias"), init="teacher" if teacher else "zeros",
                      teacher=teacher and f"{teacher}.bias")]


def embedding_parameters(config) -> list[Parameter]:
    """The embeddings: tables keep their (rows, d) layout."""
    d = config.hidden_size
    tables = [("word_embeddings", "word", config.vocab_size), ("token_type_embeddings", "token_type", config.type_vocab_size)]
    if config.position_policy != "none":
        tables.append(("position_embeddings", "position", config.max_position_embeddings))
    parameters = [Parameter(f"embeddings.{name}.weight", (rows, d), ("embeddings", key), init="teacher",
                            teacher=f"embeddings.{name}.weight") for name, key, rows in tables]
    return parameters + layer_norm("embeddings.layer_norm", ("embeddings", "norm"), d, "embeddings.LayerNorm")


# Input projections the teacher's self-attention provides.
TEACHER_PROJECTIONS = {"q_proj": "attention.self.query", "k_proj": "attention.self.key",
                       "v_proj": "attention.self.value"}
RETENTION_BIASES = {"fast_proj": "fast_retention", "slow_proj": "slow_retention"}


def layer_parameters(config, i: int) -> list[Parameter]:
    """The tensors of layer `i`, in the torch modules' order."""
    d, inner = config.hidden_size, config.inner_size
    torch_prefix, teacher_prefix, path = f"layers.{i}", f"encoder.layer.{i}", ("layers", i)
    inputs, start = {}, 0
    for module, width in input_projection_widths(config).items():
        teacher = TEACHER_PROJECTIONS.get(module)
        parts = linear(f"{torch_prefix}.mixer.{module}", (*path, "mixer", "in_proj"), width, d,
                       bias=module not in UNBIASED, init="teacher" if teacher else "normal",
                       bias_init="teacher" if teacher else RETENTION_BIASES.get(module, "zeros"),
                       teacher=teacher and f"{teacher_prefix}.{teacher}")
        inputs[module] = [p._replace(columns=(start, start + width)) for p in parts]
        start += width
    convs = {conv: [Parameter(f"{torch_prefix}.mixer.{conv}", (inner, config.conv_size), (*path, "mixer", conv, "taps"),
                              True, init="conv_identity")] for conv in ("q_conv", "k_conv", "v_conv")}
    return [  # a module's own tensors come before its submodules' in a state dict
        *convs["q_conv"], *convs["k_conv"], *convs["v_conv"],
        Parameter(f"{torch_prefix}.mixer.out_norm", (config.head_dim,), (*path, "mixer", "out_norm"), init="ones"),
        *inputs["q_proj"], *inputs["k_proj"], *inputs["v_proj"], *inputs["beta_proj"], *inputs["fast_proj"],
        *inputs["slow_proj"],
        *linear(f"{torch_prefix}.mixer.flux_in", (*path, "mixer", "flux_in"), config.flux_hidden, 2 * config.head_dim),
        *linear(f"{torch_prefix}.mixer.flux_out", (*path, "mixer", "flux_out"), 1, config.flux_hidden),
        *inputs["read_fast_proj"], *inputs["read_slow_proj"], *inputs["gate_proj"],
        *linear(f"{torch_prefix}.mixer.o_proj", (*path, "mixer", "o_proj"), d, inner, init="teacher",
                bias_init="teacher", teacher=f"{teacher_prefix}.attention.output.dense"),
        *layer_norm(f"{torch_prefix}.mixer_norm", (*path, "mixer_norm"), d, f"{teacher_prefix}.attention.output.LayerNorm"),
        *linear(f"{torch_prefix}.ffn_in", (*path, "ffn_in"), config.intermediate_size, d, init="teacher",
                bias_init="teacher", teacher=f"{teacher_prefix}.intermediate.dense"),
        *linear(f"{torch_prefix}.ffn_out", (*path, "ffn_out"), d, config.intermediate_size, init="teacher",
                bias_init="teacher", teacher=f"{teacher_prefix}.output.dense"),
        *layer_norm(f"{torch_prefix}.ffn_norm", (*path, "ffn_norm"), d, f"{teacher_prefix}.output.LayerNorm"),
    ]


def parameters(config) -> list[Parameter]:
    """Every tensor of a LAM model with `config`, in state-dict order."""
    return embedding_parameters(config) + [p for i in range(config.num_hidden_layers) for p in layer_parameters(config, i)]


def expected_shapes(config) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor a LAM model with `config` holds (its state dict)."""
    return {p.name: p.shape for p in parameters(config)}


def initial_value(parameter: Parameter, config, rng: np.random.Generator) -> np.ndarray:
    """SPEC §2 initialisation of a tensor the teacher does not provide (float32, torch layout)."""
    init, shape = parameter.init, parameter.shape
    if init == "normal":
        return rng.normal(0.0, config.initializer_range, shape).astype(np.float32)
    if init in ("zeros", "ones"):
        return np.full(shape, float(init == "ones"), np.float32)
    if init == "conv_identity":  # taps (C, K): the current token's tap is 1, the others 0
        value = np.zeros(shape, np.float32)
        value[:, -1] = 1.0
        return value
    if init in ("fast_retention", "slow_retention"):
        p = getattr(config, f"{init}_init")
        return np.full(shape, math.log(p / (1 - p)), np.float32)
    raise ValueError(f"{parameter.name}: no initial value for init={init!r}")
