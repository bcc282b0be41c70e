"""InContextMMDiT: joint attention without internal conditioning.

Conditioning enters as tokens: the caller prepends e.g. time tokens to a modality.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax

from .feedforward import SwiGLU
from .final_layers import SimpleFinalLayer
from .joint_attention import JointAttention
from .norms import RMSNorm
from .validation import check_attention_mask, check_modality_dims, check_modality_tokens, check_positive_ints


class InContextMMDiTBlock(eqx.Module):
    """Pre-RMSNorm joint attention and SwiGLU with plain residuals `x + f(x)`."""

    attention_norms: tuple[RMSNorm, ...]
    attention: JointAttention
    feedforward_norms: tuple[RMSNorm, ...]
    feedforwards: tuple[SwiGLU, ...]

    def __init__(
        self,
        dim_modalities: Sequence[int],
        dim_head: int = 64,
        heads: int = 8,
        ff_mult: int = 4,
        *,
        key: jax.Array,
    ):
        attention_key, feedforward_key = jax.random.split(key)
        feedforward_keys = jax.random.split(feedforward_key, len(dim_modalities))
        self.attention_norms = tuple(RMSNorm(dim) for dim in dim_modalities)
        self.attention = JointAttention(dim_modalities, dim_head, heads, key=attention_key)
        self.feedforward_norms = tuple(RMSNorm(dim) for dim in dim_modalities)
        self.feedforwards = tuple(
            SwiGLU(dim, ff_mult, key=k) for dim, k in zip(dim_modalities, feedforward_keys)
        )

    def __call__(
        self, modality_tokens: Sequence[jax.Array], attention_mask: jax.Array | None = None
    ) -> tuple[jax.Array, ...]:
        """Tuple of (seq_i, dim_i), mask (total_seq, total_seq) -> tuple of (seq_i, dim_i)."""
        normed = [norm(x) for norm, x in zip(self.attention_norms, modality_tokens)]
        attended = self.attention(normed, attention_mask)
        tokens = [x + a for x, a in zip(modality_tokens, attended)]
        return tuple(
            x + jax.vmap(feedforward)(norm(x))
            for x, norm, feedforward in zip(tokens, self.feedforward_norms, self.feedforwards)
        )


class InContextMMDiT(eqx.Module):
    """Multi-modal transformer for one example (vmap for batches), conditioned only through its tokens."""

    blocks: tuple[InContextMMDiTBlock, ...]
    final_layers: tuple[SimpleFinalLayer, ...]
    dim_modalities: tuple[int, ...] = eqx.field(static=True)
    dim_outs: tuple[int, ...] = eqx.field(static=True)

    def __init__(
        self,
        depth: int,
        dim_modalities: Sequence[int],
        dim_outs: Sequence[int],
        dim_head: int = 64,
        heads: int = 8,
        ff_mult: int = 4,
        *,
        key: jax.Array,
    ):
        check_positive_ints(depth=depth, dim_head=dim_head, heads=heads, ff_mult=ff_mult)
        self.dim_modalities, self.dim_outs = check_modality_dims(dim_modalities, dim_outs)
        block_key, final_key = jax.random.split(key)
        final_keys = jax.random.split(final_key, len(self.dim_outs))
        self.blocks = tuple(
            InContextMMDiTBlock(self.dim_modalities, dim_head, heads, ff_mult, key=k)
            for k in jax.random.split(block_key, depth)
        )
        self.final_layers = tuple(
            SimpleFinalLayer(dim, dim_out, key=k)
            for dim, dim_out, k in zip(self.dim_modalities, self.dim_outs, final_keys)
        )

    def __call__(self, modality_tokens, attention_mask=None) -> tuple[jax.Array, ...]:
        """Tuple of (seq_len_i, dim_modalities[i]) -> tuple of (seq_len_i, dim_outs[i]).

        attention_mask: optional boolean (total_seq, total_seq); True = the query may attend to the key.
        """
        tokens = check_modality_tokens(modality_tokens, self.dim_modalities)
        mask = check_attention_mask(attention_mask, sum(x.shape[0] for x in tokens))
        for block in self.blocks:
            tokens = block(tokens, mask)
        return tuple(final(x) for final, x in zip(self.final_layers, tokens))
