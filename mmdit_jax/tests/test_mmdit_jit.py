"""Models are pytrees of arrays for plain `jax.jit`, and new timestep values never compile again."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmdit_jax import TimestepEmbedding

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_compilations = []


@pytest.fixture(scope="module")
def count_compilations():
    """count_compilations(thunk) -> number of XLA compilations while thunk() runs."""

    def listener(event, duration, **_):
        if event == COMPILE_EVENT:
            _compilations.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listener)

    def count(thunk):
        before = len(_compilations)
        jax.block_until_ready(thunk())
        return len(_compilations) - before

    return count


@pytest.mark.parametrize("fixture", ["mmdit", "in_context"])
def test_every_leaf_is_an_array(fixture, request):
    leaves = jax.tree_util.tree_leaves(request.getfixturevalue(fixture))
    assert leaves and all(isinstance(leaf, jax.Array) for leaf in leaves)


def test_timestep_embedding_holds_no_callable():
    leaves = jax.tree_util.tree_leaves(TimestepEmbedding(8, 16, jax.random.PRNGKey(0)))
    assert [leaf.shape for leaf in leaves] == [(16, 8), (16,), (16, 16), (16,)]


def test_plain_jit_traces_once_for_new_float_timesteps(mmdit, tokens):
    @jax.jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def forward(model, tokens, t):
        return model(tokens, t)

    outputs = [forward(mmdit, tokens, t) for t in (0.1, 0.35, 0.9)]
    assert not bool(jnp.allclose(outputs[0][0], outputs[1][0]))


def test_direct_calls_compile_once_for_all_timestep_values(mmdit, make_tokens, sizes, count_compilations):
    tokens = make_tokens((6, 1), sizes.dim_modalities, seed=11)  # shapes no other test uses
    assert count_compilations(lambda: mmdit(tokens, 0.15)) >= 1  # the counter sees compilations
    for t in (0.25, 0.5, 1, np.float64(0.7), np.float32(0.3)):
        assert count_compilations(lambda: mmdit(tokens, t)) == 0, t
    first_bf16, second_bf16 = jnp.asarray(0.2, dtype=jnp.bfloat16), jnp.asarray(0.6, dtype=jnp.bfloat16)
    count_compilations(lambda: mmdit(tokens, first_bf16))  # may compile the bf16 -> f32 conversion
    assert count_compilations(lambda: mmdit(tokens, second_bf16)) == 0
