"""dot_product_attention_compat: the einsum fallback agrees with jax.nn.dot_product_attention."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmdit_jax import (
    HAS_NATIVE_DOT_PRODUCT_ATTENTION,
    InContextMMDiT,
    JointAttention,
    MMDiT,
    dot_product_attention_compat,
    fallback_attention,
    uses_native_attention,
)
from mmdit_jax import helpers as attention_module

needs_native = pytest.mark.skipif(
    not HAS_NATIVE_DOT_PRODUCT_ATTENTION, reason="this JAX has no jax.nn.dot_product_attention"
)

HEADS, HEAD_DIM, Q_SEQ, K_SEQ = 2, 4, 5, 7


def normal(shape, seed):
    # numpy draws: jax.random would compile a sampler for every new shape.
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), dtype=jnp.float32)


def qkv(batch_shape=(), seed=0):
    return (
        normal(batch_shape + (Q_SEQ, HEADS, HEAD_DIM), seed),
        normal(batch_shape + (K_SEQ, HEADS, HEAD_DIM), seed + 1),
        normal(batch_shape + (K_SEQ, HEADS, HEAD_DIM), seed + 2),
    )


def random_mask(shape, seed=1):
    mask = np.random.default_rng(seed).random(shape) < 0.5
    mask[..., 0] = True  # no query row is fully masked
    return jnp.asarray(mask)


def reference_attention(q, k, v, bias=None, mask=None, scale=None):
    """Straightforward numpy attention, for checking both paths."""
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    scale = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    logits = np.einsum("...qhd,...khd->...hqk", q, k) * scale
    if bias is not None:
        logits = logits + np.asarray(bias)
    if mask is not None:
        logits = np.where(np.asarray(mask), logits, -np.inf)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return np.einsum("...hqk,...khd->...qhd", weights, v)


def both_paths(*args, **kwargs):
    with fallback_attention():
        fallback = dot_product_attention_compat(*args, **kwargs)
    native = dot_product_attention_compat(*args, **kwargs)
    return np.asarray(fallback), np.asarray(native)


CASES = {
    "basic": dict(),
    "masked": dict(mask=random_mask((Q_SEQ, K_SEQ))),
    "per_head_mask": dict(mask=random_mask((HEADS, Q_SEQ, K_SEQ))),
    "biased": dict(bias=normal((HEADS, Q_SEQ, K_SEQ), seed=2)),
    "masked_and_biased": dict(
        mask=random_mask((Q_SEQ, K_SEQ)), bias=normal((Q_SEQ, K_SEQ), seed=3)
    ),
    "custom_scale": dict(scale=0.3),
}


@pytest.mark.parametrize("batch_shape", [(), (3,), (2, 3)], ids=["unbatched", "batched", "two_batch_axes"])
@pytest.mark.parametrize("case", list(CASES))
def test_fallback_matches_reference(case, batch_shape):
    q, k, v = qkv(batch_shape)
    with fallback_attention():
        out = dot_product_attention_compat(q, k, v, **CASES[case])
    assert out.shape == q.shape
    expected = reference_attention(q, k, v, **CASES[case])
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-5, atol=1e-5)


@needs_native
@pytest.mark.parametrize("batch_shape", [(), (3,), (2, 3)], ids=["unbatched", "batched", "two_batch_axes"])
@pytest.mark.parametrize("case", list(CASES))
def test_fallback_matches_native(case, batch_shape):
    fallback, native = both_paths(*qkv(batch_shape), **CASES[case])
    np.testing.assert_allclose(fallback, native, rtol=1e-5, atol=1e-6)


@needs_native
def test_compat_native_path_equals_jax_function():
    q, k, v = qkv((3,))
    mask = random_mask((Q_SEQ, K_SEQ))
    expected = jax.nn.dot_product_attention(q, k, v, mask=mask)
    actual = dot_product_attention_compat(q, k, v, mask=mask)
    np.testing.assert_array_equal(np.asarray(actual), np.asarray(expected))


@needs_native
def test_fully_masked_row_agrees():
    mask = jnp.ones((Q_SEQ, K_SEQ), dtype=bool).at[2].set(False)
    fallback, native = both_paths(*qkv(), mask=mask)
    np.testing.assert_allclose(fallback, native, rtol=1e-5, atol=1e-6)


def test_masked_keys_get_no_weight():
    q, k, v = qkv()
    mask = jnp.ones((Q_SEQ, K_SEQ), dtype=bool).at[:, -1].set(False)
    changed_v = v.at[-1].set(100.0)
    with fallback_attention():
        np.testing.assert_array_equal(
            np.asarray(dot_product_attention_compat(q, k, v, mask=mask)),
            np.asarray(dot_product_attention_compat(q, k, changed_v, mask=mask)),
        )


@needs_native
def test_gradients_agree():
    q, k, v = qkv()
    mask = random_mask((Q_SEQ, K_SEQ))

    def loss(q, k, v):
        return jnp.sum(jnp.sin(dot_product_attention_compat(q, k, v, mask=mask)))

    with fallback_attention():
        fallback_grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(q, k, v)
    native_grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(q, k, v)
    for a, b in zip(fallback_grads, native_grads):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)


def test_fallback_switch_is_scoped():
    with fallback_attention():
        assert not uses_native_attention()
    assert uses_native_attention() == HAS_NATIVE_DOT_PRODUCT_ATTENTION


def test_fallback_used_when_jax_lacks_native(monkeypatch):
    monkeypatch.setattr(attention_module, "HAS_NATIVE_DOT_PRODUCT_ATTENTION", False)
    monkeypatch.setattr(jax.nn, "dot_product_attention", None, raising=False)
    q, k, v = qkv()
    assert not uses_native_attention()
    np.testing.assert_allclose(
        np.asarray(dot_product_attention_compat(q, k, v)), reference_attention(q, k, v), rtol=1e-5, atol=1e-5
    )


def test_works_under_jit():
    q, k, v = qkv()
    mask = random_mask((Q_SEQ, K_SEQ))
    jitted = jax.jit(lambda q, k, v: dot_product_attention_compat(q, k, v, mask=mask))
    expected = reference_attention(q, k, v, mask=mask)
    np.testing.assert_allclose(np.asarray(jitted(q, k, v)), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda q, k, v: (q[0, 0], k, v), "query must be"),
        (lambda q, k, v: (q, k, v[:-1]), "key and value shapes differ"),
        (lambda q, k, v: (q[..., :1, :], k, v), r"\(heads, head_dim\)"),
    ],
    ids=["query_rank", "key_value_mismatch", "head_mismatch"],
)
def test_bad_shapes_raise(make_args, message):
    with pytest.raises(ValueError, match=message):
        dot_product_attention_compat(*make_args(*qkv()))


def test_non_boolean_mask_raises():
    with pytest.raises(ValueError, match="mask must be boolean"):
        dot_product_attention_compat(*qkv(), mask=jnp.ones((Q_SEQ, K_SEQ)))


@pytest.fixture
def native_calls(monkeypatch):
    """Keyword arguments of every jax.nn.dot_product_attention call, which still runs."""
    calls = []
    native = jax.nn.dot_product_attention

    def recording(*args, **kwargs):
        calls.append(kwargs)
        return native(*args, **kwargs)

    monkeypatch.setattr(jax.nn, "dot_product_attention", recording)
    return calls


@needs_native
@pytest.mark.parametrize("implementation", [None, "xla"])
def test_implementation_is_passed_to_jax(implementation, native_calls):
    q, k, v = qkv()
    out = dot_product_attention_compat(q, k, v, implementation=implementation)
    assert [call.get("implementation") for call in native_calls] == [implementation]
    np.testing.assert_allclose(np.asarray(out), reference_attention(q, k, v), rtol=1e-5, atol=1e-5)


@needs_native
def test_model_attention_implementation_reaches_jax(native_calls, make_tokens):
    attention = JointAttention((8, 6), dim_head=HEAD_DIM, heads=HEADS, attention_implementation="xla",
                               key=jax.random.PRNGKey(0))
    eqx.filter_eval_shape(attention, make_tokens((5, 4), (8, 6)))  # tracing makes the call
    assert [call["implementation"] for call in native_calls] == ["xla"]


@pytest.mark.parametrize("build", [
    lambda: dot_product_attention_compat(*qkv(), implementation="flash"),
    lambda: JointAttention((8,), attention_implementation="triton", key=jax.random.PRNGKey(0)),
    lambda: MMDiT(1, (8,), (3,), attention_implementation="XLA", key=jax.random.PRNGKey(0)),
], ids=["compat", "joint_attention", "mmdit"])
def test_unknown_implementation_raises(build):
    with pytest.raises(ValueError, match="attention_implementation must be one of"):
        build()


def test_without_native_attention_xla_falls_back_and_cudnn_raises(monkeypatch):
    monkeypatch.setattr(attention_module, "HAS_NATIVE_DOT_PRODUCT_ATTENTION", False)
    q, k, v = qkv()
    np.testing.assert_allclose(
        np.asarray(dot_product_attention_compat(q, k, v, implementation="xla")),
        reference_attention(q, k, v), rtol=1e-5, atol=1e-5,
    )
    with pytest.raises(ValueError, match="cudnn.*needs jax.nn.dot_product_attention"):
        InContextMMDiT(1, (8,), (3,), attention_implementation="cudnn", key=jax.random.PRNGKey(0))


def test_query_key_value_dtypes_must_agree():
    q, k, v = qkv()
    with pytest.raises(ValueError, match="dtypes differ"):
        dot_product_attention_compat(q.astype(jnp.bfloat16), k, v)
