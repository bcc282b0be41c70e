"""MMDiT: the joint-attention diffusion transformer of Stable Diffusion 3 / 3.5, conditioned by adaLN-Zero."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import equinox as eqx
import jax

from .feedforward import SwiGLU
from .final_layers import ModulatedFinalLayer
from .joint_attention import JointAttention
from .modulation import AdaptiveModulation, modulate
from .norms import layer_norm
from .timestep import TimestepEmbedding
from .validation import (
    check_attention_mask,
    check_modality_dims,
    check_modality_tokens,
    check_positive_ints,
    check_timesteps,
)


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
        self.attention = JointAttention(dim_modalities, dim_head, heads, key=attention_key)
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

        Returns a tuple of (seq_i, dim_i).
        """
        mods = [BlockModulation(*modulation(cond)) for modulation in self.modulations]
        attention_inputs = [
            modulate(layer_norm(x), mod.shift_attention, mod.scale_attention)
            for x, mod in zip(modality_tokens, mods)
        ]
        attended = self.attention(attention_inputs, attention_mask)
        tokens = [x + mod.gate_attention * a for x, mod, a in zip(modality_tokens, mods, attended)]
        outputs = []
        for x, mod, feedforward in zip(tokens, mods, self.feedforwards):
            hidden = modulate(layer_norm(x), mod.shift_feedforward, mod.scale_feedforward)
            outputs.append(x + mod.gate_feedforward * jax.vmap(feedforward)(hidden))
        return tuple(outputs)


class MMDiT(eqx.Module):
    """Multi-modal diffusion transformer for one example (vmap for batches).

    `timestep_embed_dim` is an int for one conditioning variable (timestep is a
    scalar) or a tuple for several (timestep is a tuple of scalars, e.g. (t, r));
    each variable gets its own TimestepEmbedding and the embeddings are summed.
    """

    timestep_embeddings: tuple[TimestepEmbedding, ...]
    blocks: tuple[MMDiTBlock, ...]
    final_layers: tuple[ModulatedFinalLayer, ...]
    dim_modalities: tuple[int, ...] = eqx.field(static=True)
    dim_outs: tuple[int, ...] = eqx.field(static=True)
    multiple_conditions: bool = eqx.field(static=True)

    def __init__(
        self,
        depth: int,
        dim_modalities: Sequence[int],
        dim_outs: Sequence[int],
        dim_cond: int = 1024,
        timestep_embed_dim: int | Sequence[int] = 256,
        dim_head: int = 64,
        heads: int = 8,
        ff_mult: int = 4,
        *,
        key: jax.Array,
    ):
        check_positive_ints(depth=depth, dim_cond=dim_cond, dim_head=dim_head, heads=heads, ff_mult=ff_mult)
        self.dim_modalities, self.dim_outs = check_modality_dims(dim_modalities, dim_outs)
        self.multiple_conditions = isinstance(timestep_embed_dim, (tuple, list))
        embed_dims = tuple(timestep_embed_dim) if self.multiple_conditions else (timestep_embed_dim,)
        if not embed_dims:
            raise ValueError("timestep_embed_dim must name at least one conditioning variable")

        embed_key, block_key, final_key = jax.random.split(key, 3)
        embed_keys = jax.random.split(embed_key, len(embed_dims))
        final_keys = jax.random.split(final_key, len(self.dim_outs))
        self.timestep_embeddings = tuple(
            TimestepEmbedding(dim, dim_cond, k) for dim, k in zip(embed_dims, embed_keys)
        )
        self.blocks = tuple(
            MMDiTBlock(self.dim_modalities, dim_cond, dim_head, heads, ff_mult, key=k)
            for k in jax.random.split(block_key, depth)
        )
        self.final_layers = tuple(
            ModulatedFinalLayer(dim, dim_out, dim_cond, key=k)
            for dim, dim_out, k in zip(self.dim_modalities, self.dim_outs, final_keys)
        )

    def embed_conditioning(self, timestep) -> jax.Array:
        """Scalar, or tuple of scalars when there are several variables -> (dim_cond,)."""
        timesteps = check_timesteps(timestep, len(self.timestep_embeddings), self.multiple_conditions)
        return sum(embed(t) for embed, t in zip(self.timestep_embeddings, timesteps))

    def __call__(self, modality_tokens, timestep, attention_mask=None) -> tuple[jax.Array, ...]:
        """Tuple of (seq_len_i, dim_modalities[i]) -> tuple of (seq_len_i, dim_outs[i]).

        attention_mask: optional boolean (total_seq, total_seq); True = the query may attend to the key.
        """
        tokens = check_modality_tokens(modality_tokens, self.dim_modalities)
        mask = check_attention_mask(attention_mask, sum(x.shape[0] for x in tokens))
        cond = self.embed_conditioning(timestep)
        for block in self.blocks:
            tokens = block(tokens, cond, mask)
        return tuple(final(x, cond) for final, x in zip(self.final_layers, tokens))
