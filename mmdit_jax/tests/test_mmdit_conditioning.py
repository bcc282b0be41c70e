"""Several conditioning variables (e.g. t and r for improved mean flow) and timestep validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmdit_jax import MMDiT


@pytest.fixture(scope="module")
def two_condition_mmdit(tiny, sizes, perturb):
    widths = (sizes.dim_modalities, sizes.dim_outs, sizes.dim_cond)
    model = MMDiT(2, *widths, timestep_embed_dim=(8, 4), **tiny, key=jax.random.PRNGKey(3))
    return perturb(model)


def _times(t, r):
    return (jnp.asarray(t), jnp.asarray(r))


def test_one_embedding_per_variable(two_condition_mmdit):
    assert [embed.dim_embed for embed in two_condition_mmdit.timestep_embeddings] == [8, 4]


def test_conditioning_is_the_sum_of_embeddings(two_condition_mmdit):
    t_embed, r_embed = two_condition_mmdit.timestep_embeddings
    expected = t_embed(jnp.asarray(0.7)) + r_embed(jnp.asarray(0.2))
    np.testing.assert_allclose(
        np.asarray(two_condition_mmdit.embed_conditioning(_times(0.7, 0.2))), np.asarray(expected), rtol=1e-6
    )


@pytest.mark.parametrize("changed", ["t", "r"])
def test_each_variable_changes_the_output(changed, two_condition_mmdit, tokens, mmdit_forward):
    base = mmdit_forward(two_condition_mmdit, tokens, _times(0.7, 0.2))
    other = _times(0.3, 0.2) if changed == "t" else _times(0.7, 0.6)
    moved = mmdit_forward(two_condition_mmdit, tokens, other)
    assert all(not bool(jnp.allclose(a, b)) for a, b in zip(base, moved))


def test_output_shapes_with_two_variables(two_condition_mmdit, tokens, sizes, mmdit_forward):
    outputs = mmdit_forward(two_condition_mmdit, tokens, [jnp.asarray(0.7), jnp.asarray(0.2)])
    assert [o.shape for o in outputs] == [(n, d) for n, d in zip(sizes.seq_lens, sizes.dim_outs)]


@pytest.mark.parametrize("timestep", [(0.5,), (0.5, 0.2, 0.1)], ids=["too_short", "too_long"])
def test_wrong_tuple_length_is_a_clear_error(timestep, two_condition_mmdit, tokens):
    with pytest.raises(ValueError, match=f"expected a tuple of 2 timesteps .* got {len(timestep)}"):
        two_condition_mmdit(tokens, tuple(jnp.asarray(t) for t in timestep))


def test_scalar_for_several_variables_is_a_clear_error(two_condition_mmdit, tokens):
    with pytest.raises(ValueError, match="2 conditioning variables"):
        two_condition_mmdit(tokens, jnp.asarray(0.5))


def test_tuple_for_single_variable_is_a_clear_error(mmdit, tokens):
    with pytest.raises(ValueError, match="single conditioning variable"):
        mmdit(tokens, (jnp.asarray(0.5), jnp.asarray(0.1)))


def test_batched_timestep_without_vmap_is_a_clear_error(mmdit, tokens):
    with pytest.raises(ValueError, match="must be a scalar per example"):
        mmdit(tokens, jnp.asarray([0.5, 0.1]))


def test_single_entry_tuple_configuration(tiny, sizes, tokens, mmdit_forward):
    widths = (sizes.dim_modalities, sizes.dim_outs, sizes.dim_cond)
    model = MMDiT(1, *widths, timestep_embed_dim=(8,), **tiny, key=jax.random.PRNGKey(4))
    outputs = mmdit_forward(model, tokens, (jnp.asarray(0.5),))
    assert len(outputs) == 2
