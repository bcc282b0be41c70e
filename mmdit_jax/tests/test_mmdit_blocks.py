"""MMDiTBlock (adaLN-Zero) and InContextMMDiTBlock."""

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

from mmdit_jax import (
    InContextMMDiTBlock,
    MMDiT,
    MMDiTBlock,
    full_attention_mask,
    layer_norm,
    make_modality_causal,
    unstack_blocks,
)

KEY = jax.random.PRNGKey(0)
MODALITY_CONFIGS = {
    "one": ((8,), (5,)),
    "two": ((8, 6), (5, 4)),
    "three": ((8, 6, 5), (5, 4, 3)),
}


@eqx.filter_jit
def run_block(block, tokens, cond, mask=None):
    return block(tokens, cond, mask)


def arrays_equal(first, second):
    return len(first) == len(second) and all(
        a.shape == b.shape and bool(jnp.array_equal(a, b)) for a, b in zip(first, second)
    )


@pytest.mark.parametrize("config", list(MODALITY_CONFIGS))
def test_fresh_block_is_exact_identity(config, tiny, make_tokens):
    dims, seq_lens = MODALITY_CONFIGS[config]
    block = MMDiTBlock(dims, dim_cond=16, **tiny, key=KEY)
    tokens = make_tokens(seq_lens, dims)
    cond = jnp.linspace(-2.0, 2.0, 16)
    assert arrays_equal(run_block(block, tokens, cond), tokens)


def test_fresh_block_is_identity_with_mask(tiny, make_tokens):
    dims, seq_lens = MODALITY_CONFIGS["two"]
    block = MMDiTBlock(dims, dim_cond=16, **tiny, key=KEY)
    tokens = make_tokens(seq_lens, dims)
    mask = make_modality_causal(full_attention_mask(seq_lens), seq_lens, modality=1)
    assert arrays_equal(run_block(block, tokens, jnp.ones((16,)), mask), tokens)


def test_every_modulation_parameter_starts_at_zero(tiny):
    model = MMDiT(2, (8, 6), (3, 4), dim_cond=16, timestep_embed_dim=8, **tiny, key=KEY)
    modulations = [m.linear for block in unstack_blocks(model.blocks) for m in block.modulations]
    modulations += [final.norm.modulation.linear for final in model.final_layers]
    assert len(modulations) == 2 * 2 + 2
    for linear in modulations:
        assert bool(jnp.all(linear.weight == 0)) and bool(jnp.all(linear.bias == 0))


def test_perturbed_block_is_not_identity(tiny, make_tokens, perturb):
    dims, seq_lens = MODALITY_CONFIGS["two"]
    block = perturb(MMDiTBlock(dims, dim_cond=16, **tiny, key=KEY))
    tokens = make_tokens(seq_lens, dims)
    outputs = run_block(block, tokens, jnp.ones((16,)))
    assert all(not bool(jnp.allclose(o, x)) for o, x in zip(outputs, tokens))


def test_block_gates_scale_the_residual_branches(tiny, make_tokens):
    """Opening only the attention gate (to one) adds exactly the attention branch to the input."""
    dims, seq_lens = MODALITY_CONFIGS["one"]
    block = MMDiTBlock(dims, dim_cond=16, **tiny, key=KEY)
    tokens = make_tokens(seq_lens, dims)
    # The modulation output is (shift, scale, gate) for attention, then the same for the feed-forward.
    bias = block.modulations[0].linear.bias.reshape(6, dims[0]).at[2].set(1.0)
    gated = eqx.tree_at(lambda b: b.modulations[0].linear.bias, block, bias.reshape(-1))
    gated_out, attended = jax.jit(
        lambda block, tokens: (block(tokens, jnp.zeros((16,)))[0], block.attention([layer_norm(tokens[0])])[0])
    )(gated, tokens)
    assert bool(jnp.allclose(gated_out, tokens[0] + attended, atol=1e-5))


@pytest.mark.parametrize("config", list(MODALITY_CONFIGS))
def test_in_context_block_shapes(config, tiny, make_tokens):
    dims, seq_lens = MODALITY_CONFIGS[config]
    block = InContextMMDiTBlock(dims, **tiny, key=KEY)
    outputs = eqx.filter_eval_shape(block, make_tokens(seq_lens, dims))
    assert [o.shape for o in outputs] == [(n, d) for n, d in zip(seq_lens, dims)]


def test_in_context_block_is_residual(tiny, make_tokens):
    """Zeroing the output projections of both branches leaves x + 0."""
    dims, seq_lens = MODALITY_CONFIGS["two"]
    block = InContextMMDiTBlock(dims, **tiny, key=KEY)
    zeroed = eqx.tree_at(
        lambda b: [p.weight for p in b.attention.to_out] + [ff.w_out.weight for ff in b.feedforwards],
        block,
        [jnp.zeros_like(p.weight) for p in block.attention.to_out]
        + [jnp.zeros_like(ff.w_out.weight) for ff in block.feedforwards],
    )
    tokens = make_tokens(seq_lens, dims)
    assert arrays_equal(jax.jit(lambda block, tokens: block(tokens))(zeroed, tokens), tokens)
