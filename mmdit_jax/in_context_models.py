"""InContextMMDiT: joint attention without internal conditioning.

Conditioning enters as tokens: the caller prepends e.g. time tokens to a modality.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax

from .helpers import check_attention_implementation, compiled_call
from .in_context_blocks import InContextMMDiTBlock
from .in_context_final_layer import SimpleFinalLayer
from .layer_stack import init_stacked_blocks, run_blocks
from .validation import check_attention_mask, check_modality_dims, check_modality_tokens, check_positive_ints


class InContextMMDiT(eqx.Module):
    """Multi-modal transformer for one example (vmap for batches), conditioned only through its tokens.

    `blocks`, `scan_layers`, `remat` and `attention_implementation` work as in `MMDiT`.
    """

    blocks: InContextMMDiTBlock
    final_layers: tuple[SimpleFinalLayer, ...]
    dim_modalities: tuple[int, ...] = eqx.field(static=True)
    dim_outs: tuple[int, ...] = eqx.field(static=True)
    scan_layers: bool = eqx.field(static=True)
    remat: bool = eqx.field(static=True)

    def __init__(
        self,
        depth: int,
        dim_modalities: Sequence[int],
        dim_outs: Sequence[int],
        dim_head: int = 64,
        heads: int = 8,
        ff_mult: int = 4,
        *,
        scan_layers: bool = False,
        remat: bool = False,
        attention_implementation: str | None = None,
        key: jax.Array,
    ):
        check_positive_ints(depth=depth, dim_head=dim_head, heads=heads, ff_mult=ff_mult)
        self.dim_modalities, self.dim_outs = check_modality_dims(dim_modalities, dim_outs)
        self.scan_layers, self.remat = bool(scan_layers), bool(remat)
        block_key, final_key = jax.random.split(key)
        final_keys = jax.random.split(final_key, len(self.dim_outs))
        self.blocks = init_stacked_blocks(
            InContextMMDiTBlock,
            depth,
            block_key,
            dim_modalities=self.dim_modalities,
            dim_head=dim_head,
            heads=heads,
            ff_mult=ff_mult,
            attention_implementation=check_attention_implementation(attention_implementation),
        )
        self.final_layers = tuple(
            SimpleFinalLayer(dim, dim_out, key=k)
            for dim, dim_out, k in zip(self.dim_modalities, self.dim_outs, final_keys)
        )

    def apply_blocks(self, modality_tokens, attention_mask=None) -> tuple[jax.Array, ...]:
        """The block stack alone: tuple of (seq_i, dim_i) -> tuple of (seq_i, dim_i)."""

        def step(block: InContextMMDiTBlock, tokens):
            return block(tokens, attention_mask)

        return run_blocks(self.blocks, tuple(modality_tokens), step, scan=self.scan_layers, remat=self.remat)

    def __call__(self, modality_tokens, attention_mask=None) -> tuple[jax.Array, ...]:
        """Tuple of (seq_len_i, dim_modalities[i]) -> tuple of (seq_len_i, dim_outs[i]), each in its input dtype.

        attention_mask: optional boolean (total_seq, total_seq); True = the query may attend to the key.
        """
        tokens = check_modality_tokens(modality_tokens, self.dim_modalities)
        mask = check_attention_mask(attention_mask, sum(x.shape[0] for x in tokens))
        return compiled_call(InContextMMDiT._forward, self, tokens, mask)

    def _forward(self, tokens, mask) -> tuple[jax.Array, ...]:
        tokens = self.apply_blocks(tokens, mask)
        return tuple(final(x) for final, x in zip(self.final_layers, tokens))
