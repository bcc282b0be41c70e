"""Building blocks: timestep embedding, norms, modulation, SwiGLU, joint attention, final layers."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmdit_jax import (
    AdaptiveLayerNorm,
    AdaptiveModulation,
    JointAttention,
    ModulatedFinalLayer,
    RMSNorm,
    SimpleFinalLayer,
    SwiGLU,
    TimestepEmbedding,
    layer_norm,
    modulate,
    sinusoidal_embedding,
)

KEY = jax.random.PRNGKey(0)


def normal(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), dtype=jnp.float32)


def test_sinusoidal_embedding_shape_and_range():
    embedding = sinusoidal_embedding(jnp.asarray(0.3), 8)
    assert embedding.shape == (8,)
    assert bool(jnp.all(jnp.abs(embedding) <= 1.0))


def test_sinusoidal_embedding_separates_nearby_times():
    difference = sinusoidal_embedding(jnp.asarray(0.50), 8) - sinusoidal_embedding(jnp.asarray(0.51), 8)
    assert float(jnp.max(jnp.abs(difference))) > 0.1


def test_sinusoidal_embedding_rejects_odd_dim():
    with pytest.raises(ValueError, match="even"):
        sinusoidal_embedding(jnp.asarray(0.3), 7)


def test_timestep_embedding_shape():
    embed = TimestepEmbedding(8, 16, KEY)
    assert embed(jnp.asarray(0.25)).shape == (16,)


def test_timestep_embedding_rejects_batched_timestep():
    embed = TimestepEmbedding(8, 16, KEY)
    with pytest.raises(ValueError, match="scalar"):
        embed(jnp.zeros((3,)))


def test_timestep_embedding_rejects_odd_dim_embed():
    with pytest.raises(ValueError, match="dim_embed"):
        TimestepEmbedding(7, 16, KEY)


def test_layer_norm_standardises_features():
    x = normal((4, 8)) * 3 + 1
    normed = layer_norm(x)
    np.testing.assert_allclose(np.asarray(normed.mean(-1)), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(normed.std(-1)), 1.0, atol=1e-3)


def test_rms_norm_gives_unit_root_mean_square():
    x = normal((4, 8)) * 5
    rms = jnp.sqrt(jnp.mean(jnp.square(RMSNorm(8)(x)), axis=-1))
    np.testing.assert_allclose(np.asarray(rms), 1.0, atol=1e-4)


def test_modulate_formula():
    x, shift, scale = jnp.ones((2, 3)), jnp.asarray([1.0, 2.0, 3.0]), jnp.asarray([0.5, 0.0, -1.0])
    np.testing.assert_array_equal(np.asarray(modulate(x, shift, scale)), np.asarray([[2.5, 3.0, 3.0]] * 2))


def test_adaptive_modulation_is_zero_initialised():
    modulation = AdaptiveModulation(16, 8, num_params=6, key=KEY)
    outputs = modulation(normal((16,)))
    assert len(outputs) == 6
    assert all(o.shape == (8,) and bool(jnp.all(o == 0)) for o in outputs)


def test_swiglu_formula():
    ff = SwiGLU(6, mult=2, key=KEY)
    x = normal((6,))
    expected = ff.w_out.weight @ ((ff.w_in.weight @ x) * jax.nn.swish(ff.w_gate.weight @ x))
    np.testing.assert_allclose(np.asarray(ff(x)), np.asarray(expected), rtol=1e-5, atol=1e-6)
    assert ff.w_in.weight.shape == (12, 6)


def test_joint_attention_shapes(make_tokens):
    attention = JointAttention((8, 6, 5), dim_head=4, heads=2, key=KEY)
    tokens = make_tokens((5, 4, 3), (8, 6, 5))
    outputs = eqx.filter_eval_shape(attention, tokens)
    assert [o.shape for o in outputs] == [(5, 8), (4, 6), (3, 5)]


def test_joint_attention_normalises_queries_and_keys(make_tokens):
    attention = JointAttention((8, 6), dim_head=4, heads=2, key=KEY)
    q, k, v = attention.queries_keys_values(make_tokens((5, 4), (8, 6)))
    assert q.shape == k.shape == v.shape == (9, 2, 4)
    for normed in (q, k):
        rms = jnp.sqrt(jnp.mean(jnp.square(normed), axis=-1))
        np.testing.assert_allclose(np.asarray(rms), 1.0, atol=1e-4)
    assert float(jnp.max(jnp.abs(jnp.sqrt(jnp.mean(jnp.square(v), axis=-1)) - 1.0))) > 1e-2


def test_joint_attention_mixes_modalities(make_tokens):
    attention = JointAttention((8, 6), dim_head=4, heads=2, key=KEY)
    first, second = make_tokens((5, 4), (8, 6))
    before = attention((first, second))[0]
    after = attention((first, second + 1.0))[0]
    assert not bool(jnp.allclose(before, after))


def test_adaptive_layer_norm_starts_as_plain_layer_norm():
    norm = AdaptiveLayerNorm(8, 16, key=KEY)
    x = normal((5, 8))
    np.testing.assert_array_equal(np.asarray(norm(x, normal((16,), seed=1))), np.asarray(layer_norm(x)))


def test_adaptive_layer_norm_formula():
    norm = AdaptiveLayerNorm(8, 16, key=KEY)
    weight, bias = normal((16, 16), seed=2), normal((16,), seed=3)
    norm = eqx.tree_at(lambda n: (n.modulation.linear.weight, n.modulation.linear.bias), norm, (weight, bias))
    x, cond = normal((5, 8)), normal((16,), seed=4)
    shift, scale = jnp.split(weight @ jax.nn.silu(cond) + bias, 2)
    expected = layer_norm(x) * (1 + scale) + shift
    np.testing.assert_allclose(np.asarray(norm(x, cond)), np.asarray(expected), rtol=1e-5, atol=1e-5)


def test_modulated_final_layer_at_init_is_layer_norm_then_linear():
    final = ModulatedFinalLayer(8, 3, 16, key=KEY)
    x = normal((5, 8))
    expected = jax.vmap(final.linear)(layer_norm(x))
    np.testing.assert_array_equal(np.asarray(final(x, jnp.ones((16,)))), np.asarray(expected))


def test_simple_final_layer_shape():
    final = SimpleFinalLayer(8, 3, key=KEY)
    assert final(jnp.ones((5, 8))).shape == (5, 3)


def test_modules_are_pytrees_of_arrays():
    modulation = AdaptiveModulation(16, 8, num_params=2, key=KEY)
    leaves = jax.tree_util.tree_leaves(eqx.filter(modulation, eqx.is_array))
    assert {leaf.shape for leaf in leaves} == {(16, 16), (16,)}
