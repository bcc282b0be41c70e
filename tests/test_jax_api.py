"""The public JAX API: `embed(params, input_ids, attention_mask)` is LAM, and stays so under
jit, vmap and grad; `save_params` round-trips."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import lam.jax as lam_jax
from lam import LAM, LAMModel
from lam.conversion import fused_bias_mask, torch_from_params

TEXTS = ["A man is playing a guitar.", "a cat", "", "Two dogs run through a field of tall grass."]


@pytest.fixture(scope="module")
def params(small_lam_dir):
    return lam_jax.load_params(small_lam_dir)


def test_embed_under_jit_is_lams_embedding(params, small_lam_dir):
    input_ids, attention_mask = lam_jax.tokenize(params, TEXTS)
    assert input_ids.dtype == np.int32 and input_ids.shape == attention_mask.shape
    ours = np.asarray(jax.jit(lam_jax.embed)(params, input_ids, attention_mask))
    np.testing.assert_allclose(ours, LAM(small_lam_dir, backend="torch").encode(TEXTS), atol=1e-5)
    fixed = lam_jax.tokenize(params, TEXTS, length=40)
    assert fixed[0].shape == (4, 40)
    np.testing.assert_allclose(np.asarray(lam_jax.embed(params, *fixed)), ours, atol=1e-6)


def test_vmap_over_single_examples_equals_the_batch(params):
    input_ids, attention_mask = lam_jax.tokenize(params, TEXTS)
    batched = jax.jit(lam_jax.embed)(params, input_ids, attention_mask)
    mapped = jax.jit(jax.vmap(lam_jax.embed, in_axes=(None, 0, 0)))(params, input_ids, attention_mask)
    assert mapped.shape == batched.shape == (len(TEXTS), params.config.hidden_size)
    np.testing.assert_allclose(np.asarray(mapped), np.asarray(batched), atol=1e-6)


def test_grad_matches_the_torch_model_in_float64(params, small_lam_dir):
    input_ids, attention_mask = lam_jax.tokenize(params, TEXTS)
    weights = jnp.asarray(np.random.default_rng(0).normal(size=(len(TEXTS), params.config.hidden_size)),
                          dtype=jnp.float32)

    def loss(p):
        return jnp.sum(lam_jax.embed(p, input_ids, attention_mask) * weights)

    grads = jax.jit(jax.grad(loss))(params)
    assert isinstance(grads, lam_jax.LAMParams) and grads.config_json == params.config_json
    unbiased = fused_bias_mask(params.config) == 0
    assert all(np.all(np.asarray(layer.mixer.in_proj.bias)[unbiased] == 0) for layer in grads.tree.layers)
    ours = torch_from_params(jax.tree.map(np.asarray, grads.tree), params.config)

    model = LAMModel.from_pretrained(small_lam_dir).double()
    model.form = "chunk"
    ids, mask = torch.from_numpy(input_ids.astype(np.int64)), torch.from_numpy(attention_mask.astype(np.int64))
    (model.embed(ids, mask) * torch.from_numpy(np.asarray(weights, dtype=np.float64))).sum().backward()
    for name, param in model.named_parameters():
        expected = param.grad.numpy()
        scale = np.abs(expected).max()
        assert np.abs(ours[name] - expected).max() <= 1e-4 * max(scale, 1e-3), name


def test_save_params_round_trip(params, tmp_path):
    shifted = jax.tree.map(lambda leaf: leaf + 0.01, params)
    path = lam_jax.save_params(shifted, tmp_path / "tuned")
    loaded = lam_jax.load_params(path)
    # Exact, except the fused bias columns the model holds at zero (nothing to store them in).
    for a, b in zip(jax.tree.leaves(lam_jax.model_tree(shifted)), jax.tree.leaves(loaded.tree)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    input_ids, attention_mask = lam_jax.tokenize(loaded, TEXTS)
    np.testing.assert_allclose(LAM(path, backend="torch").encode(TEXTS),
                               np.asarray(lam_jax.embed(shifted, input_ids, attention_mask)), atol=1e-5)
