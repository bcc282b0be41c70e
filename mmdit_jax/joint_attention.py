"""Joint attention: every modality's tokens attend over the tokens of all modalities."""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from einops import rearrange

from .helpers import check_attention_implementation, dot_product_attention_compat
from .norms import RMSNorm


class JointAttention(eqx.Module):
    """Per-modality q/k/v and output projections around one attention over all tokens.

    Queries and keys are RMS-normalised per head (QK-norm, separate weights per
    modality), which keeps attention logits bounded as training proceeds.
    `attention_implementation` (None, "xla" or "cudnn") is passed to
    `jax.nn.dot_product_attention` where the installed JAX has it.
    """

    to_qkv: tuple[eqx.nn.Linear, ...]
    query_norms: tuple[RMSNorm, ...]
    key_norms: tuple[RMSNorm, ...]
    to_out: tuple[eqx.nn.Linear, ...]
    heads: int = eqx.field(static=True)
    attention_implementation: str | None = eqx.field(static=True)

    def __init__(
        self,
        dim_modalities: Sequence[int],
        dim_head: int = 64,
        heads: int = 8,
        attention_implementation: str | None = None,
        *,
        key: jax.Array,
    ):
        dim_inner = dim_head * heads
        qkv_keys, out_keys = jax.random.split(key)
        self.to_qkv = tuple(
            eqx.nn.Linear(dim, 3 * dim_inner, use_bias=False, key=k)
            for dim, k in zip(dim_modalities, jax.random.split(qkv_keys, len(dim_modalities)))
        )
        self.query_norms = tuple(RMSNorm(dim_head) for _ in dim_modalities)
        self.key_norms = tuple(RMSNorm(dim_head) for _ in dim_modalities)
        self.to_out = tuple(
            eqx.nn.Linear(dim_inner, dim, use_bias=False, key=k)
            for dim, k in zip(dim_modalities, jax.random.split(out_keys, len(dim_modalities)))
        )
        self.heads = heads
        self.attention_implementation = check_attention_implementation(attention_implementation)

    def queries_keys_values(
        self, modality_tokens: Sequence[jax.Array]
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Tuple of (seq_i, dim_i) -> q, k, v each (total_seq, heads, dim_head); q and k RMS-normalised."""
        queries, keys, values = [], [], []
        projections = zip(self.to_qkv, self.query_norms, self.key_norms)
        for x, (to_qkv, query_norm, key_norm) in zip(modality_tokens, projections):
            qkv = jax.vmap(to_qkv)(x)
            q, k, v = rearrange(qkv, "s (three h d) -> three s h d", three=3, h=self.heads)
            queries.append(query_norm(q))
            keys.append(key_norm(k))
            values.append(v)
        return jnp.concatenate(queries), jnp.concatenate(keys), jnp.concatenate(values)

    def __call__(
        self, modality_tokens: Sequence[jax.Array], attention_mask: jax.Array | None = None
    ) -> tuple[jax.Array, ...]:
        """Tuple of (seq_i, dim_i), mask (total_seq, total_seq) -> tuple of (seq_i, dim_i)."""
        q, k, v = self.queries_keys_values(modality_tokens)
        attended = dot_product_attention_compat(
            q, k, v, mask=attention_mask, implementation=self.attention_implementation
        )
        attended = rearrange(attended, "s h d -> s (h d)")
        boundaries = np.cumsum([x.shape[0] for x in modality_tokens])[:-1]
        per_modality = jnp.split(attended, boundaries)
        return tuple(jax.vmap(to_out)(out) for to_out, out in zip(self.to_out, per_modality))
