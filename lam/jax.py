"""LAM for JAX users: the encoder as a pure function of a parameter pytree.

    import lam.jax as lam_jax

    params = lam_jax.load_params("LAM-base-v1")                   # a pytree of jax arrays
    input_ids, attention_mask = lam_jax.tokenize(params, ["a cat", "a dog"])
    embeddings = lam_jax.embed(params, input_ids, attention_mask)  # (2, 384), L2-normalised

`embed` works under `jax.jit`, `jax.grad` (with respect to `params`) and `jax.vmap` (one
example per call: input_ids and attention_mask of shape (L,) give a (d,) vector);
`save_params` writes fine-tuned parameters back as a model directory that `LAM`,
transformers and sentence-transformers load.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from . import _jax_model
from ._jax_params import Layer, Params
from .batching import TextTokenizer, pad_batch, pad_to
from .config import LAMHyperparameters
from .conversion import fused_bias_mask, params_from_torch, torch_from_params
from .registry import resolve_model
from .weights_io import WEIGHTS_NAME, read_weights


@functools.partial(jax.tree_util.register_dataclass, data_fields=["tree"], meta_fields=["config_json", "source"])
@dataclass(frozen=True)
class LAMParams:
    """LAM's parameters: `tree`, the model's typed containers of arrays (`lam._jax_params.Params`;
    see `lam.conversion` for the layout), and, as static metadata, the model's configuration (JSON)
    and the directory they came from."""

    tree: Params
    config_json: str
    source: str

    @property
    def config(self) -> LAMHyperparameters:
        return _config_from_json(self.config_json)


@functools.lru_cache(maxsize=16)
def _config_from_json(text: str) -> LAMHyperparameters:
    import json

    return LAMHyperparameters.from_dict(json.loads(text))


def load_params(model: str | os.PathLike = "LAM-base-v1") -> LAMParams:
    """The parameters of a built-in model name or a model directory, as float32 jax arrays."""
    model_dir = resolve_model(model)
    config = LAMHyperparameters.from_json_file(model_dir / "config.json")
    tree = params_from_torch(read_weights(model_dir / WEIGHTS_NAME, config), config)
    return LAMParams(jax.tree.map(jnp.asarray, tree), config.to_json_string(), str(model_dir))


def tokenize(params: LAMParams, texts: list[str], length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """input_ids and attention_mask (N, L) int32 of `texts`, with the model's tokenizer.

    L is the longest text, or `length` (texts are then truncated or padded to it: one shape,
    one compilation, for every batch of a training loop).
    """
    tokenizer = TextTokenizer(Path(params.source) / "tokenizer.json", length or params.config.max_seq_length)
    ids = tokenizer(list(texts))
    batch = pad_batch(ids, np.arange(len(ids)), tokenizer.pad_id)
    shape = (len(ids), max(length or 0, batch.input_ids.shape[1]))
    return pad_to(batch.input_ids, batch.attention_mask, shape, tokenizer.pad_id)


def embed(params: LAMParams, input_ids, attention_mask, form: str = "scan"):
    """L2-normalised sentence embeddings (B, d) of input_ids and attention_mask (B, L); (d,) for (L,).

    `form` is the delta rule's: "scan" (token scan, fastest on CPU) or "chunk" (chunkwise,
    for accelerators); both are differentiable.
    """
    single = jnp.ndim(input_ids) == 1
    if single:
        input_ids, attention_mask = input_ids[None], attention_mask[None]
    pooled = _jax_model.embed(model_tree(params), input_ids, attention_mask, params.config, form)
    return pooled[0] if single else pooled


def model_tree(params: LAMParams) -> Params:
    """`params.tree` as the model sees it: the fused input projection's bias columns of the
    projections that have no bias (see `lam.conversion`) held at zero, so they get no gradient
    and fine-tuning cannot move them (the model directory has nowhere to store them)."""
    mask = fused_bias_mask(params.config)

    def masked(layer: Layer) -> Layer:
        in_proj = layer.mixer.in_proj
        return layer._replace(mixer=layer.mixer._replace(in_proj=in_proj._replace(bias=in_proj.bias * mask)))

    return params.tree._replace(layers=tuple(masked(layer) for layer in params.tree.layers))


def save_params(params: LAMParams, directory: str | os.PathLike) -> Path:
    """Write `params` as a model directory (config, model.safetensors, the source's tokenizer)."""
    from .building import write_model_dir

    tree = jax.tree.map(lambda leaf: np.asarray(leaf, dtype=np.float32), model_tree(params))
    return write_model_dir(directory, params.config, torch_from_params(tree, params.config), Path(params.source))
