"""Builders for boolean joint-attention masks over the concatenated modality tokens.

A mask has shape (total_seq, total_seq); entry [q, k] is True when query token q
may attend to key token k. Keep at least one True entry per row: a row with none
attends uniformly to every token.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp


def modality_spans(seq_lens: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """(start, stop) of each modality inside the concatenated sequence."""
    spans, start = [], 0
    for length in seq_lens:
        spans.append((start, start + length))
        start += length
    return tuple(spans)


def full_attention_mask(seq_lens: Sequence[int]) -> jax.Array:
    """Every token may attend to every token. (total_seq, total_seq)."""
    total = sum(seq_lens)
    return jnp.ones((total, total), dtype=bool)


def make_modality_causal(mask: jax.Array, seq_lens: Sequence[int], modality: int) -> jax.Array:
    """Restrict attention within `modality` to its current and earlier tokens."""
    start, stop = _span(seq_lens, modality)
    length = stop - start
    within = mask[start:stop, start:stop] & jnp.tril(jnp.ones((length, length), dtype=bool))
    return mask.at[start:stop, start:stop].set(within)


def block_modality_attention(
    mask: jax.Array, seq_lens: Sequence[int], query_modality: int, key_modality: int
) -> jax.Array:
    """Stop the tokens of `query_modality` from attending to those of `key_modality`."""
    q_start, q_stop = _span(seq_lens, query_modality)
    k_start, k_stop = _span(seq_lens, key_modality)
    return mask.at[q_start:q_stop, k_start:k_stop].set(False)


def _span(seq_lens: Sequence[int], modality: int) -> tuple[int, int]:
    if not 0 <= modality < len(seq_lens):
        raise ValueError(f"modality index {modality} out of range for {len(seq_lens)} modalities")
    return modality_spans(seq_lens)[modality]
