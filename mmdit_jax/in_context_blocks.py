"""InContextMMDiTBlock: a joint-attention block without internal conditioning."""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax

from .feedforward import SwiGLU
from .joint_attention import JointAttention
from .norms import RMSNorm


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
        attention_implementation: str | None = None,
        *,
        key: jax.Array,
    ):
        attention_key, feedforward_key = jax.random.split(key)
        feedforward_keys = jax.random.split(feedforward_key, len(dim_modalities))
        self.attention_norms = tuple(RMSNorm(dim) for dim in dim_modalities)
        self.attention = JointAttention(
            dim_modalities, dim_head, heads, attention_implementation, key=attention_key
        )
        self.feedforward_norms = tuple(RMSNorm(dim) for dim in dim_modalities)
        self.feedforwards = tuple(
            SwiGLU(dim, ff_mult, key=k) for dim, k in zip(dim_modalities, feedforward_keys)
        )

    def __call__(
        self, modality_tokens: Sequence[jax.Array], attention_mask: jax.Array | None = None
    ) -> tuple[jax.Array, ...]:
        """Tuple of (seq_i, dim_i), mask (total_seq, total_seq) -> tuple of (seq_i, dim_i) in the input dtypes."""
        normed = [norm(x) for norm, x in zip(self.attention_norms, modality_tokens)]
        attended = self.attention(normed, attention_mask)
        tokens = [x + a.astype(x.dtype) for x, a in zip(modality_tokens, attended)]
        return tuple(
            x + jax.vmap(feedforward)(norm(x)).astype(x.dtype)
            for x, norm, feedforward in zip(tokens, self.feedforward_norms, self.feedforwards)
        )
