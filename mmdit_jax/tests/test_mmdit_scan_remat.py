"""Stacked blocks: scan over layers and rematerialisation give the unrolled model's outputs and gradients."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmdit_jax import InContextMMDiT, MMDiT, MMDiTBlock, stack_blocks, unstack_blocks
from mmdit_jax.layer_stack import init_stacked_blocks

DEPTH = 2
KEY = jax.random.PRNGKey(5)  # for the block-initialisation test
MODES = {
    "unrolled": dict(scan_layers=False, remat=False),
    "scan": dict(scan_layers=True, remat=False),
    "remat": dict(scan_layers=False, remat=True),
    "scan_remat": dict(scan_layers=True, remat=True),
}


def build(model_name, sizes, tiny, perturb, depth=DEPTH, **mode):
    """The conftest's `mmdit` / `in_context` model (same keys and perturbation), in the given mode."""
    if model_name == "mmdit":
        config = (sizes.dim_modalities, sizes.dim_outs, sizes.dim_cond, sizes.timestep_embed_dim)
        model = MMDiT(depth, *config, **tiny, **mode, key=jax.random.PRNGKey(0))
    else:
        model = InContextMMDiT(depth, sizes.dim_modalities, sizes.dim_outs, **tiny, **mode, key=jax.random.PRNGKey(1))
    return perturb(model)


def call(model, tokens, mask):
    if isinstance(model, MMDiT):
        return model(tokens, 0.4, mask)
    return model(tokens, mask)


def assert_trees_close(got, want, tolerance=1e-5):
    """Leaf by leaf; the models' static execution options may differ."""
    got_leaves, want_leaves = jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)
    assert [x.shape for x in got_leaves] == [x.shape for x in want_leaves]
    for a, b in zip(got_leaves, want_leaves):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("mode", ["scan", "remat"])
def test_outputs_and_gradients_match_unrolled(
    mode, sizes, tiny, perturb, tokens, blocking_mask, loss_outputs_and_grads
):
    unrolled = build("mmdit", sizes, tiny, perturb, **MODES["unrolled"])
    variant = build("mmdit", sizes, tiny, perturb, **MODES[mode])
    assert_trees_close(variant, unrolled, tolerance=0)  # the mode does not change the parameters
    (loss, outputs), grads = loss_outputs_and_grads(variant, tokens, blocking_mask)
    (expected_loss, expected_outputs), expected_grads = loss_outputs_and_grads(unrolled, tokens, blocking_mask)
    assert_trees_close(outputs, expected_outputs)
    np.testing.assert_allclose(float(loss), float(expected_loss), rtol=1e-6)
    assert_trees_close(grads, expected_grads)
    assert all(bool(jnp.any(g != 0)) for g in jax.tree_util.tree_leaves(grads.blocks))


def test_scan_with_remat_gives_unrolled_outputs(sizes, tiny, perturb, tokens, blocking_mask):
    unrolled = build("in_context", sizes, tiny, perturb, **MODES["unrolled"])
    variant = build("in_context", sizes, tiny, perturb, **MODES["scan_remat"])
    assert_trees_close(call(variant, tokens, blocking_mask), call(unrolled, tokens, blocking_mask))


def lowered_program_lines(sizes, tiny, depth, **mode):
    """Lines of the StableHLO program of a model call, from shapes alone (nothing is compiled)."""
    config = (sizes.dim_modalities, sizes.dim_outs, sizes.dim_cond, sizes.timestep_embed_dim)
    model = eqx.filter_eval_shape(MMDiT, depth, *config, **tiny, **mode, key=KEY)
    tokens = tuple(jax.ShapeDtypeStruct((n, d), jnp.float32) for n, d in zip(sizes.seq_lens, sizes.dim_modalities))
    lowered = jax.jit(lambda model, tokens: model(tokens, 0.4)).lower(model, tokens)
    return len(lowered.as_text().splitlines())


def test_scanned_program_does_not_grow_with_depth(sizes, tiny):
    assert lowered_program_lines(sizes, tiny, 2, scan_layers=True) == lowered_program_lines(sizes, tiny, 5, scan_layers=True)
    assert lowered_program_lines(sizes, tiny, 5) > lowered_program_lines(sizes, tiny, 2)


def test_stacked_initialisation_equals_separately_built_blocks(sizes, tiny):
    config = dict(dim_modalities=sizes.dim_modalities, dim_cond=sizes.dim_cond, **tiny)
    stacked = init_stacked_blocks(MMDiTBlock, DEPTH, KEY, **config)
    separate = [MMDiTBlock(**config, key=k) for k in jax.random.split(KEY, DEPTH)]
    assert_trees_close(stacked, stack_blocks(separate), tolerance=0)
    for got, want in zip(unstack_blocks(stacked), separate):
        assert_trees_close(got, want, tolerance=0)


def test_stack_equals_blocks_called_in_turn(mmdit, tokens, blocking_mask):
    @jax.jit
    def stack_and_loop(model, tokens):
        cond = model.embed_conditioning(0.4)
        looped = tokens
        for block in unstack_blocks(model.blocks):
            looped = block(looped, cond, blocking_mask)
        return model.apply_blocks(tokens, cond, blocking_mask), looped

    stacked, looped = stack_and_loop(mmdit, tokens)
    assert_trees_close(stacked, looped, tolerance=1e-6)
