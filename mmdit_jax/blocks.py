"""MMDiTBlock: one adaLN-Zero joint-attention block of Stable Diffusion 3 / 3.5."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import equinox as eqx
import jax

from .feedforward import SwiGLU
from .joint_attention import JointAttention
from .modulation import AdaptiveModulation, gated_residual, modulate
from .norms import layer_norm


class BlockModulation(NamedTuple):
    """The six vectors an MMDiTBlock predicts per modality from the conditioning, each (dim,)."""

    shift_attention: jax.Array
    scale_attention: jax.Array
    gate_attention: jax.Array
    shift_feedforward: jax.Array
    scale_feedforward: jax.Array
    gate_feedforward: jax.Array


class MMDiTBlock(eqx.Module):
    """adaLN -> joint attention -> gate, then adaLN -> SwiGLU -> gate; each modality has its own weights.

    All modulation starts at zero, so the gates are zero and a fresh block
    returns its input exactly (adaLN-Zero).
    """

    modulations: tuple[AdaptiveModulation, ...]
    attention: JointAttention
    feedforwards: tuple[SwiGLU, ...]

    def __init__(
        self,
        dim_modalities: Sequence[int],
        dim_cond: int,
        dim_head: int = 64,
        heads: int = 8,
        ff_mult: int = 4,
        attention_implementation: str | None = None,
        *,
        key: jax.Array,
    ):
        modulation_key, attention_key, feedforward_key = jax.random.split(key, 3)
        modulation_keys = jax.random.split(modulation_key, len(dim_modalities))
        feedforward_keys = jax.random.split(feedforward_key, len(dim_modalities))
        num_params = len(BlockModulation._fields)
        self.modulations = tuple(
            AdaptiveModulation(dim_cond, dim, num_params, key=k)
            for dim, k in zip(dim_modalities, modulation_keys)
        )
        self.attention = JointAttention(
            dim_modalities, dim_head, heads, attention_implementation, key=attention_key
        )
        self.feedforwards = tuple(
            SwiGLU(dim, ff_mult, key=k) for dim, k in zip(dim_modalities, feedforward_keys)
        )

    def __call__(
        self,
        modality_tokens: Sequence[jax.Array],
        cond: jax.Array,
        attention_mask: jax.Array | None = None,
    ) -> tuple[jax.Array, ...]:
        """Tuple of (seq_i, dim_i), cond (dim_cond,), mask (total_seq, total_seq).

        Returns a tuple of (seq_i, dim_i), each in the dtype of its input.
        """
        mods = [BlockModulation(*modulation(cond)) for modulation in self.modulations]
        attention_inputs = [
            modulate(layer_norm(x), mod.shift_attention, mod.scale_attention)
            for x, mod in zip(modality_tokens, mods)
        ]
        attended = self.attention(attention_inputs, attention_mask)
        tokens = [gated_residual(x, mod.gate_attention, a) for x, mod, a in zip(modality_tokens, mods, attended)]
        outputs = []
        for x, mod, feedforward in zip(tokens, mods, self.feedforwards):
            hidden = modulate(layer_norm(x), mod.shift_feedforward, mod.scale_feedforward)
            outputs.append(gated_residual(x, mod.gate_feedforward, jax.vmap(feedforward)(hidden)))
        return tuple(outputs)
