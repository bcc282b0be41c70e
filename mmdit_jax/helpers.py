"""Scaled dot-product attention that runs on any JAX version, and the compiled model call.

Layout follows `jax.nn.dot_product_attention`: `(..., seq, heads, head_dim)`.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable, Iterator

import equinox as eqx
import jax
import jax.numpy as jnp

HAS_NATIVE_DOT_PRODUCT_ATTENTION = hasattr(jax.nn, "dot_product_attention")
ATTENTION_IMPLEMENTATIONS = (None, "xla", "cudnn")

_force_fallback = contextvars.ContextVar("mmdit_jax_force_attention_fallback", default=False)


@contextlib.contextmanager
def fallback_attention() -> Iterator[None]:
    """Route `dot_product_attention_compat` to the einsum fallback inside this block.

    The path is chosen while tracing, so a function jitted before entering the
    block keeps the path it was first traced with.
    """
    token = _force_fallback.set(True)
    try:
        yield
    finally:
        _force_fallback.reset(token)


def uses_native_attention() -> bool:
    """Whether `dot_product_attention_compat` would call `jax.nn.dot_product_attention` now."""
    return HAS_NATIVE_DOT_PRODUCT_ATTENTION and not _force_fallback.get()


def check_attention_implementation(implementation: str | None) -> str | None:
    """Validate an `implementation` for `jax.nn.dot_product_attention`; returns it unchanged."""
    if implementation not in ATTENTION_IMPLEMENTATIONS:
        raise ValueError(
            f"attention_implementation must be one of {ATTENTION_IMPLEMENTATIONS}, got {implementation!r}"
        )
    if implementation == "cudnn" and not HAS_NATIVE_DOT_PRODUCT_ATTENTION:
        raise ValueError(
            f"attention_implementation='cudnn' needs jax.nn.dot_product_attention, which JAX "
            f"{jax.__version__} does not have"
        )
    return implementation


def dot_product_attention_compat(query, key, value, bias=None, mask=None, scale=None, implementation=None):
    """Softmax attention, native where available, einsum otherwise.

    query: (..., q_seq, heads, head_dim); key, value: (..., k_seq, heads, head_dim).
    bias: broadcastable to (..., heads, q_seq, k_seq); added to the scaled logits.
    mask: boolean, broadcastable to (..., heads, q_seq, k_seq); True = the query may
        attend to the key. A query row with no True entry attends uniformly.
    scale: logit scale; defaults to 1 / sqrt(head_dim).
    implementation: None (JAX chooses), "xla" or "cudnn"; passed to
        `jax.nn.dot_product_attention`. The einsum fallback ignores it.
    Logits and softmax are computed in float32 (or wider); returns (..., q_seq, heads, head_dim)
    in the dtype of `value`.
    """
    check_attention_implementation(implementation)
    query, key, value = jnp.asarray(query), jnp.asarray(key), jnp.asarray(value)
    bias = None if bias is None else jnp.asarray(bias)
    mask = None if mask is None else jnp.asarray(mask)
    _check_attention_inputs(query, key, value, bias, mask)
    if uses_native_attention():
        return _native_attention(query, key, value, bias, mask, scale, implementation)
    return _einsum_attention(query, key, value, bias, mask, scale)


def _check_attention_inputs(query, key, value, bias, mask) -> None:
    if query.ndim < 3:
        raise ValueError(f"query must be (..., seq, heads, head_dim), got shape {query.shape}")
    if key.shape != value.shape:
        raise ValueError(f"key and value shapes differ: {key.shape} vs {value.shape}")
    if key.ndim != query.ndim or key.shape[:-3] != query.shape[:-3]:
        raise ValueError(f"query and key batch shapes differ: {query.shape} vs {key.shape}")
    if key.shape[-2:] != query.shape[-2:]:
        raise ValueError(
            f"query and key must share (heads, head_dim), got {query.shape[-2:]} vs {key.shape[-2:]}"
        )
    if not query.dtype == key.dtype == value.dtype:
        raise ValueError(f"query, key and value dtypes differ: {query.dtype}, {key.dtype}, {value.dtype}")
    if mask is not None and mask.dtype != jnp.bool_:
        raise ValueError(f"mask must be boolean, got dtype {mask.dtype}")
    for name, term in (("bias", bias), ("mask", mask)):
        if term is not None and term.ndim > query.ndim:
            raise ValueError(
                f"{name} has {term.ndim} dims; it must broadcast to (..., heads, q_seq, k_seq) "
                f"with at most {query.ndim} dims"
            )


def _native_attention(query, key, value, bias, mask, scale, implementation):
    # Passed only when set, so JAX versions whose function predates the keyword still work.
    options = {"scale": scale} if implementation is None else {"scale": scale, "implementation": implementation}
    batch_shape = query.shape[:-3]
    if len(batch_shape) <= 1:
        return jax.nn.dot_product_attention(query, key, value, bias, mask, **options)
    # The native function takes at most one batch axis: flatten the rest into it.
    heads, q_seq, k_seq = query.shape[-2], query.shape[-3], key.shape[-3]
    logits_shape = batch_shape + (heads, q_seq, k_seq)

    def flatten(x):
        return x.reshape((-1,) + x.shape[-3:])

    def flatten_logit_term(term):
        return None if term is None else flatten(jnp.broadcast_to(term, logits_shape))

    out = jax.nn.dot_product_attention(
        flatten(query),
        flatten(key),
        flatten(value),
        flatten_logit_term(bias),
        flatten_logit_term(mask),
        **options,
    )
    return out.reshape(query.shape)


def _einsum_attention(query, key, value, bias, mask, scale):
    if scale is None:
        scale = 1.0 / math.sqrt(query.shape[-1])
    logits_dtype = jnp.promote_types(query.dtype, jnp.float32)
    logits = jnp.einsum("...qhd,...khd->...hqk", query, key, preferred_element_type=logits_dtype) * scale
    if bias is not None:
        logits = logits + bias.astype(logits_dtype)
    if mask is not None:
        logits = jnp.where(mask, logits, jnp.finfo(logits_dtype).min)
    weights = jax.nn.softmax(logits, axis=-1).astype(value.dtype)
    return jnp.einsum("...hqk,...khd->...qhd", weights, value)


@eqx.filter_jit
def _compiled(function, args, native_attention):
    del native_attention  # only part of the cache key: the attention path is read while tracing
    return function(*args)


def compiled_call(function: Callable, *args):
    """`function(*args)` through one `eqx.filter_jit` compilation per argument structure.

    Arrays are traced and everything else is static, so callers convert Python
    scalars to arrays first. The attention path in force (native or fallback) is
    part of the cache key, so `fallback_attention()` takes effect on the next call.
    """
    return _compiled(function, args, uses_native_attention())
