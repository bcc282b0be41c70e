"""MMDiT: the joint-attention diffusion transformer of Stable Diffusion 3 / 3.5, conditioned by adaLN-Zero."""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax

from .blocks import MMDiTBlock
from .final_layer import ModulatedFinalLayer
from .helpers import check_attention_implementation, compiled_call
from .layer_stack import init_stacked_blocks, run_blocks
from .layers import TimestepEmbedding
from .validation import (
    check_attention_mask,
    check_modality_dims,
    check_modality_tokens,
    check_positive_ints,
    check_timesteps,
)


class MMDiT(eqx.Module):
    """Multi-modal diffusion transformer for one example (vmap for batches).

    `timestep_embed_dim` is an int for one conditioning variable (timestep is a
    scalar) or a tuple for several (timestep is a tuple of scalars, e.g. (t, r));
    each variable gets its own TimestepEmbedding and the embeddings are summed.

    `blocks` is one MMDiTBlock whose arrays have a leading (depth,) axis, whatever
    the execution options: `scan_layers=True` runs them with `jax.lax.scan`
    (compile time independent of depth), `remat=True` recomputes each block's
    activations in the backward pass (`jax.checkpoint`). `attention_implementation`
    (None, "xla", "cudnn") is passed to `jax.nn.dot_product_attention`.
    """

    timestep_embeddings: tuple[TimestepEmbedding, ...]
    blocks: MMDiTBlock
    final_layers: tuple[ModulatedFinalLayer, ...]
    dim_modalities: tuple[int, ...] = eqx.field(static=True)
    dim_outs: tuple[int, ...] = eqx.field(static=True)
    multiple_conditions: bool = eqx.field(static=True)
    scan_layers: bool = eqx.field(static=True)
    remat: bool = eqx.field(static=True)

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
        scan_layers: bool = False,
        remat: bool = False,
        attention_implementation: str | None = None,
        key: jax.Array,
    ):
        check_positive_ints(depth=depth, dim_cond=dim_cond, dim_head=dim_head, heads=heads, ff_mult=ff_mult)
        self.dim_modalities, self.dim_outs = check_modality_dims(dim_modalities, dim_outs)
        self.multiple_conditions = isinstance(timestep_embed_dim, (tuple, list))
        embed_dims = tuple(timestep_embed_dim) if self.multiple_conditions else (timestep_embed_dim,)
        if not embed_dims:
            raise ValueError("timestep_embed_dim must name at least one conditioning variable")
        self.scan_layers, self.remat = bool(scan_layers), bool(remat)

        embed_key, block_key, final_key = jax.random.split(key, 3)
        embed_keys = jax.random.split(embed_key, len(embed_dims))
        final_keys = jax.random.split(final_key, len(self.dim_outs))
        self.timestep_embeddings = tuple(
            TimestepEmbedding(dim, dim_cond, k) for dim, k in zip(embed_dims, embed_keys)
        )
        self.blocks = init_stacked_blocks(
            MMDiTBlock,
            depth,
            block_key,
            dim_modalities=self.dim_modalities,
            dim_cond=dim_cond,
            dim_head=dim_head,
            heads=heads,
            ff_mult=ff_mult,
            attention_implementation=check_attention_implementation(attention_implementation),
        )
        self.final_layers = tuple(
            ModulatedFinalLayer(dim, dim_out, dim_cond, key=k)
            for dim, dim_out, k in zip(self.dim_modalities, self.dim_outs, final_keys)
        )

    def embed_conditioning(self, timestep) -> jax.Array:
        """Scalar, or tuple of scalars when there are several variables -> (dim_cond,) float32."""
        return self._embed(check_timesteps(timestep, len(self.timestep_embeddings), self.multiple_conditions))

    def _embed(self, timesteps: tuple[jax.Array, ...]) -> jax.Array:
        return sum(embed(t) for embed, t in zip(self.timestep_embeddings, timesteps))

    def apply_blocks(self, modality_tokens, cond: jax.Array, attention_mask=None) -> tuple[jax.Array, ...]:
        """The block stack alone: tuple of (seq_i, dim_i), cond (dim_cond,) -> tuple of (seq_i, dim_i)."""

        def step(block: MMDiTBlock, tokens):
            return block(tokens, cond, attention_mask)

        return run_blocks(self.blocks, tuple(modality_tokens), step, scan=self.scan_layers, remat=self.remat)

    def __call__(self, modality_tokens, timestep, attention_mask=None) -> tuple[jax.Array, ...]:
        """Tuple of (seq_len_i, dim_modalities[i]) -> tuple of (seq_len_i, dim_outs[i]), each in its input dtype.

        timestep: a scalar (Python number or array), or a tuple of them for several
            conditioning variables; converted to float32 arrays before compilation,
            so new values reuse the compiled model.
        attention_mask: optional boolean (total_seq, total_seq); True = the query may attend to the key.
        """
        tokens = check_modality_tokens(modality_tokens, self.dim_modalities)
        mask = check_attention_mask(attention_mask, sum(x.shape[0] for x in tokens))
        timesteps = check_timesteps(timestep, len(self.timestep_embeddings), self.multiple_conditions)
        return compiled_call(MMDiT._forward, self, tokens, timesteps, mask)

    def _forward(self, tokens, timesteps, mask) -> tuple[jax.Array, ...]:
        cond = self._embed(timesteps)
        tokens = self.apply_blocks(tokens, cond, mask)
        return tuple(final(x, cond) for final, x in zip(self.final_layers, tokens))
