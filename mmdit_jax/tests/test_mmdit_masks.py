"""Attention-mask semantics: blocked modalities and causal masks really cut information flow."""

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

from mmdit_jax import (
    InContextMMDiT,
    block_modality_attention,
    full_attention_mask,
    make_modality_causal,
    modality_spans,
)


def test_modality_spans():
    assert modality_spans((3, 2, 4)) == ((0, 3), (3, 5), (5, 9))


def test_full_attention_mask():
    mask = full_attention_mask((3, 2))
    assert mask.shape == (5, 5) and mask.dtype == jnp.bool_ and bool(mask.all())


def test_make_modality_causal_only_touches_that_modality():
    mask = make_modality_causal(full_attention_mask((2, 3)), (2, 3), modality=1)
    expected = jnp.ones((5, 5), dtype=bool).at[2:, 2:].set(jnp.tril(jnp.ones((3, 3), dtype=bool)))
    assert bool(jnp.array_equal(mask, expected))


def test_block_modality_attention_is_one_directional():
    mask = block_modality_attention(full_attention_mask((2, 3)), (2, 3), query_modality=0, key_modality=1)
    assert not bool(mask[:2, 2:].any())
    assert bool(mask[2:, :2].all())


def test_mask_builders_compose():
    seq_lens = (2, 3)
    mask = block_modality_attention(full_attention_mask(seq_lens), seq_lens, 0, 1)
    mask = make_modality_causal(mask, seq_lens, 1)
    assert int(mask.sum()) == 4 + 0 + 6 + 6


def test_bad_modality_index_raises():
    with pytest.raises(ValueError, match="modality index 2 out of range"):
        make_modality_causal(full_attention_mask((2, 3)), (2, 3), modality=2)


def _blocked_mask(seq_lens):
    return block_modality_attention(full_attention_mask(seq_lens), seq_lens, query_modality=0, key_modality=1)


@pytest.fixture(params=["mmdit", "in_context"])
def forward(request, mmdit, in_context, mmdit_forward, in_context_forward):
    """forward(tokens, mask) for each model type, with a fixed timestep for MMDiT."""
    if request.param == "mmdit":
        return lambda tokens, mask: mmdit_forward(mmdit, tokens, jnp.asarray(0.4), mask)
    return lambda tokens, mask: in_context_forward(in_context, tokens, mask)


@pytest.fixture
def other_tokens(make_tokens, sizes):
    """Different tokens of the same shapes as the `tokens` fixture."""
    return make_tokens(sizes.seq_lens, sizes.dim_modalities, seed=7)


def test_blocked_modality_ignores_other_modality(forward, tokens, other_tokens, sizes):
    mask = _blocked_mask(sizes.seq_lens)
    first, second = tokens
    before = forward((first, second), mask)
    after = forward((first, other_tokens[1]), mask)
    assert bool(jnp.array_equal(before[0], after[0]))
    assert not bool(jnp.allclose(before[1], after[1]))


def test_without_mask_modalities_interact(forward, tokens, other_tokens):
    first, second = tokens
    before = forward((first, second), None)
    after = forward((first, other_tokens[1]), None)
    assert not bool(jnp.allclose(before[0], after[0]))


def test_blocking_is_one_directional(forward, tokens, other_tokens, sizes):
    mask = _blocked_mask(sizes.seq_lens)
    first, second = tokens
    before = forward((first, second), mask)
    after = forward((other_tokens[0], second), mask)
    assert not bool(jnp.allclose(before[1], after[1]))


def test_causal_modality_ignores_later_tokens(forward, tokens, other_tokens, sizes):
    """Actions causal among themselves and hidden from observations: action j never sees actions after j."""
    seq_lens = sizes.seq_lens
    mask = make_modality_causal(_blocked_mask(seq_lens), seq_lens, modality=1)
    observations, actions = tokens
    changed_from = 2
    before = forward((observations, actions), mask)
    changed_actions = actions.at[changed_from:].set(other_tokens[1][changed_from:])
    after = forward((observations, changed_actions), mask)
    assert bool(jnp.array_equal(before[0], after[0]))
    assert bool(jnp.array_equal(before[1][:changed_from], after[1][:changed_from]))
    assert not bool(jnp.allclose(before[1][changed_from:], after[1][changed_from:]))


def test_causal_single_modality(tiny, make_tokens, perturb):
    model = perturb(InContextMMDiT(2, (8,), (3,), **tiny, key=jax.random.PRNGKey(0)))
    mask = make_modality_causal(full_attention_mask((5,)), (5,), modality=0)
    (x,) = make_tokens((5,), (8,))
    forward = eqx.filter_jit(lambda m, tokens: m(tokens, mask))
    before = forward(model, (x,))[0]
    after = forward(model, (x.at[3].set(x[0]),))[0]
    assert bool(jnp.array_equal(before[:3], after[:3]))
    assert not bool(jnp.allclose(before[3:], after[3:]))
