"""MMDiT and InContextMMDiT: shapes, argument checks, jit, grad, vmap batching, attention paths."""

import inspect

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmdit_jax import InContextMMDiT, MMDiT, fallback_attention, full_attention_mask

KEY = jax.random.PRNGKey(0)
MODALITY_CONFIGS = {
    "one": ((8,), (3,), (5,)),
    "two": ((8, 6), (3, 4), (5, 4)),
    "three": ((8, 6, 5), (3, 4, 2), (5, 4, 3)),
}


def abstract_tokens(seq_lens, dims):
    return tuple(jax.ShapeDtypeStruct((n, d), jnp.float32) for n, d in zip(seq_lens, dims))


@pytest.mark.parametrize("config", list(MODALITY_CONFIGS))
def test_mmdit_output_shapes(config, tiny):
    """Shapes from tracing alone (`eqx.filter_eval_shape`): no compilation needed."""
    dims, outs, seq_lens = MODALITY_CONFIGS[config]
    model = eqx.filter_eval_shape(MMDiT, 1, dims, outs, dim_cond=16, timestep_embed_dim=8, **tiny, key=KEY)
    outputs = eqx.filter_eval_shape(model, abstract_tokens(seq_lens, dims), 0.5)
    assert isinstance(outputs, tuple)
    assert [(o.shape, o.dtype) for o in outputs] == [((n, d), jnp.float32) for n, d in zip(seq_lens, outs)]


@pytest.mark.parametrize("config", list(MODALITY_CONFIGS))
def test_in_context_output_shapes(config, tiny):
    dims, outs, seq_lens = MODALITY_CONFIGS[config]
    model = eqx.filter_eval_shape(InContextMMDiT, 1, dims, outs, **tiny, key=KEY)
    outputs = eqx.filter_eval_shape(model, abstract_tokens(seq_lens, dims))
    assert isinstance(outputs, tuple)
    assert [(o.shape, o.dtype) for o in outputs] == [((n, d), jnp.float32) for n, d in zip(seq_lens, outs)]


@pytest.mark.parametrize(
    "model_cls, defaults",
    [
        (MMDiT, dict(dim_cond=1024, timestep_embed_dim=256, dim_head=64, heads=8, ff_mult=4)),
        (InContextMMDiT, dict(dim_head=64, heads=8, ff_mult=4)),
    ],
    ids=["mmdit", "in_context"],
)
def test_default_hyperparameters(model_cls, defaults):
    parameters = inspect.signature(model_cls.__init__).parameters
    assert {name: parameters[name].default for name in defaults} == defaults
    assert parameters["key"].kind is inspect.Parameter.KEYWORD_ONLY


def test_mmdit_accepts_list_of_tokens(mmdit, tokens, mmdit_forward):
    from_list = mmdit_forward(mmdit, list(tokens), jnp.asarray(0.5))
    from_tuple = mmdit_forward(mmdit, tokens, jnp.asarray(0.5))
    assert all(bool(jnp.array_equal(a, b)) for a, b in zip(from_list, from_tuple))


def test_sequence_lengths_may_vary_between_calls(mmdit, make_tokens, sizes, mmdit_forward):
    outputs = mmdit_forward(mmdit, make_tokens((2, 7), sizes.dim_modalities), jnp.asarray(0.5))
    assert [o.shape[0] for o in outputs] == [2, 7]


def test_full_mask_equals_no_mask(mmdit, tokens, sizes, mmdit_forward):
    masked = mmdit_forward(mmdit, tokens, jnp.asarray(0.5), full_attention_mask(sizes.seq_lens))
    unmasked = mmdit_forward(mmdit, tokens, jnp.asarray(0.5))
    for a, b in zip(masked, unmasked):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6)


def test_outputs_depend_on_timestep(mmdit, tokens, mmdit_forward):
    early = mmdit_forward(mmdit, tokens, jnp.asarray(0.1))
    late = mmdit_forward(mmdit, tokens, jnp.asarray(0.9))
    assert all(not bool(jnp.allclose(a, b)) for a, b in zip(early, late))


def test_plain_jax_jit_matches_direct_call(mmdit, tokens):
    """Models are pytrees of arrays only, so plain `jax.jit` takes them as arguments."""
    jitted = jax.jit(lambda model, tokens, t: model(tokens, t))(mmdit, tokens, 0.5)
    for a, b in zip(jitted, mmdit(tokens, 0.5)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6)


def test_gradients_are_finite_and_reach_every_parameter(mmdit, tokens, blocking_mask, loss_outputs_and_grads):
    (loss, _), grads = loss_outputs_and_grads(mmdit, tokens, blocking_mask)
    assert bool(jnp.isfinite(loss))
    leaves = jax.tree_util.tree_leaves(grads)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert all(bool(jnp.any(g != 0)) for g in leaves)


def test_gradients_reach_zero_initialised_modulation(tiny, sizes, tokens, blocking_mask, loss_outputs_and_grads):
    """adaLN-Zero blocks start as identities, but their zero-initialised gates still get gradient."""
    config = (sizes.dim_modalities, sizes.dim_outs, sizes.dim_cond, sizes.timestep_embed_dim)
    fresh = MMDiT(2, *config, **tiny, key=KEY)
    _, grads = loss_outputs_and_grads(fresh, tokens, blocking_mask)
    gate_bias_grads = [m.linear.bias for m in grads.blocks.modulations]  # each (depth, 6 * dim)
    assert all(bool(jnp.all(jnp.max(jnp.abs(g), axis=1) > 0)) for g in gate_bias_grads)


def _batch(make_tokens, dims, seq_lens, size=3):
    examples = [make_tokens(seq_lens, dims, seed) for seed in range(size)]
    return examples, tuple(jnp.stack(parts) for parts in zip(*examples))


def _assert_batch_matches_loop(batched, looped):
    for index, example_outputs in enumerate(looped):
        for got, want in zip(batched, example_outputs):
            np.testing.assert_allclose(np.asarray(got[index]), np.asarray(want), rtol=1e-5, atol=1e-5)


def test_mmdit_vmap_equals_loop(mmdit, make_tokens, sizes, mmdit_forward):
    examples, batch = _batch(make_tokens, sizes.dim_modalities, sizes.seq_lens)
    times = jnp.asarray([0.1, 0.5, 0.9])
    mask = full_attention_mask(sizes.seq_lens).at[0, -1].set(False)
    batched = eqx.filter_jit(eqx.filter_vmap(mmdit, in_axes=(0, 0, None)))(batch, times, mask)
    looped = [mmdit_forward(mmdit, example, t, mask) for example, t in zip(examples, times)]
    _assert_batch_matches_loop(batched, looped)


def test_in_context_vmap_equals_loop(in_context, make_tokens, sizes, in_context_forward):
    examples, batch = _batch(make_tokens, sizes.dim_modalities, sizes.seq_lens)
    batched = eqx.filter_jit(eqx.filter_vmap(in_context))(batch)
    looped = [in_context_forward(in_context, example) for example in examples]
    _assert_batch_matches_loop(batched, looped)


def test_batched_input_without_vmap_is_a_clear_error(mmdit, make_tokens, sizes):
    _, batch = _batch(make_tokens, sizes.dim_modalities, sizes.seq_lens)
    with pytest.raises(ValueError, match="single example"):
        mmdit(batch, jnp.asarray(0.5))


def test_fallback_attention_model_matches_native(mmdit, tokens, sizes):
    mask = full_attention_mask(sizes.seq_lens).at[:5, 5:].set(False)

    def forward():
        # A fresh jit per call: the attention path is fixed when a function is traced.
        return eqx.filter_jit(lambda m, x, t, mask: m(x, t, mask))(mmdit, tokens, jnp.asarray(0.3), mask)

    native = forward()
    with fallback_attention():
        fallback = forward()
    for a, b in zip(native, fallback):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model_name", ["mmdit", "in_context"])
@pytest.mark.parametrize(
    "make_call, message",
    [
        (lambda tokens: (tokens[:1], None), "expected 2 modality token arrays, got 1"),
        (lambda tokens: (tokens + tokens[:1], None), "expected 2 modality token arrays, got 3"),
        (
            lambda tokens: ((tokens[0], tokens[1][:, :-1]), None),
            "modality 1 tokens have feature dim 5, expected 6",
        ),
        (lambda tokens: ((tokens[0][0], tokens[1]), None), "modality 0 tokens must be"),
        (lambda tokens: (tokens[0], None), "tuple or list"),
        (lambda tokens: (tokens, jnp.ones((9, 8), dtype=bool)), r"attention_mask must have shape \(9, 9\)"),
        (lambda tokens: (tokens, jnp.ones((9, 9))), "attention_mask must be boolean"),
    ],
    ids=[
        "too_few_modalities",
        "too_many_modalities",
        "feature_dim",
        "unbatched_rank",
        "not_a_tuple",
        "mask_shape",
        "mask_dtype",
    ],
)
def test_bad_inputs_raise_clear_errors(model_name, make_call, message, request, tokens):
    model = request.getfixturevalue(model_name)
    modality_tokens, mask = make_call(tokens)
    with pytest.raises(ValueError, match=message):
        if model_name == "mmdit":
            model(modality_tokens, jnp.asarray(0.5), mask)
        else:
            model(modality_tokens, mask)


@pytest.mark.parametrize("model_cls", [MMDiT, InContextMMDiT], ids=["mmdit", "in_context"])
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(depth=1, dim_modalities=(8, 6), dim_outs=(3,)), "dim_outs has 1 entries but there are 2"),
        (dict(depth=1, dim_modalities=(), dim_outs=()), "at least one modality"),
        (dict(depth=0, dim_modalities=(8,), dim_outs=(3,)), "depth must be a positive integer"),
        (dict(depth=1, dim_modalities=(8, -1), dim_outs=(3, 4)), r"dim_modalities\[1\] must be a positive"),
        (dict(depth=1, dim_modalities=(8,), dim_outs=(3,), heads=0), "heads must be a positive integer"),
    ],
    ids=["dim_outs_length", "no_modalities", "depth", "negative_dim", "heads"],
)
def test_bad_configuration_raises(model_cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        model_cls(**kwargs, key=KEY)
