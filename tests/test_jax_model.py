"""The JAX model (`lam._jax_model`) and the weight conversion (`lam.conversion`).

The JAX model, fed the converted weights of a torch model, reproduces the float64 torch model
(its float64 chunkwise form; see tests/test_torch_model.py for that against the reference)
to <= 1e-5 on sentence embeddings, for both delta-rule forms and both position policies; and each
module (embeddings, mixer, layer, whole encoder), run in float64 on the same inputs, equals its
torch mirror to float64 rounding.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from required import require_jax

jax = require_jax()

from lam import conversion  # noqa: E402
from lam import _jax_model as jax_model  # noqa: E402
from lam._torch_model import directional_conv, mean_pool  # noqa: E402

TOLERANCE = 1e-5


def tensors_of(model):
    return {name: t.detach().numpy().copy() for name, t in model.state_dict().items()}


def batch(lengths, vocab_size, seed=0):
    """Right-padded token ids and mask (B, max(lengths)) with random real tokens."""
    rng = np.random.default_rng(seed)
    mask = (np.arange(max(lengths))[None, :] < np.array(lengths)[:, None]).astype(np.int32)
    return np.where(mask, rng.integers(1, vocab_size, mask.shape), 0).astype(np.int32), mask


def float64_truth(model, ids, mask):
    """Hidden states (B, L, d) and sentence embeddings (B, d) of the float64 torch model."""
    model = copy.deepcopy(model).double()
    model.form = "chunk"
    ids, mask = torch.from_numpy(ids).long(), torch.from_numpy(mask).long()
    with torch.no_grad():
        hidden = model(ids, mask).last_hidden_state
        sentences = torch.nn.functional.normalize(mean_pool(hidden, mask), dim=-1)
    return hidden.numpy(), sentences.numpy()


def embedder(model, form, block_tokens=jax_model.DEFAULT_BLOCK_TOKENS):
    """(ids, mask) -> numpy hidden states and sentence embeddings of the JAX model of `model`."""
    params = conversion.params_from_torch(tensors_of(model), model.config)

    def hidden_and_sentences(params, ids, mask):
        hidden = jax_model.encode(params, ids, mask, model.config, form, block_tokens)
        return hidden, jax_model.pool(hidden, mask)

    jitted = jax.jit(hidden_and_sentences)
    return lambda ids, mask: tuple(np.asarray(x) for x in jitted(params, ids, mask))


def embed(model, ids, mask, form, block_tokens=jax_model.DEFAULT_BLOCK_TOKENS):
    return embedder(model, form, block_tokens)(ids, mask)


@pytest.mark.parametrize("policy", ("clamp", "none"))
def test_conversion_round_trip_is_exact(make_tiny_model, policy):
    model = make_tiny_model(position_policy=policy)
    tensors = tensors_of(model)
    back = conversion.torch_from_params(conversion.params_from_torch(tensors, model.config), model.config)
    assert set(back) == set(tensors)
    for name, value in tensors.items():
        assert back[name].dtype == value.dtype and np.array_equal(back[name], value), name


def test_conversion_layouts(make_tiny_model):
    model = make_tiny_model()
    config = model.config
    params = conversion.params_from_torch(tensors_of(model), config)
    d, inner, heads = config.hidden_size, config.inner_size, config.num_heads
    assert len(params.layers) == config.num_hidden_layers
    mixer = params.layers[1].mixer
    assert mixer.in_proj.kernel.shape == (d, 4 * inner + 5 * heads)
    assert mixer.q_conv.taps.shape == (config.conv_size, inner)
    assert params.layers[1].ffn_in.kernel.shape == (d, config.intermediate_size)
    assert np.array_equal(mixer.in_proj.kernel[:, :inner], model.layers[1].mixer.q_proj.weight.detach().numpy().T)
    assert not mixer.in_proj.bias[3 * inner:4 * inner].any()  # the gate projection has no bias
    assert params.embeddings.position.shape == (config.max_position_embeddings, d)
    unpositioned = make_tiny_model(position_policy="none")
    assert conversion.params_from_torch(tensors_of(unpositioned), unpositioned.config).embeddings.position is None


def test_conversion_rejects_missing_and_unexpected_tensors(make_tiny_model):
    model = make_tiny_model()
    tensors = tensors_of(model)
    missing = {name: value for name, value in tensors.items() if name != "layers.0.mixer.q_conv"}
    with pytest.raises(KeyError, match="missing"):
        conversion.params_from_torch(missing, model.config)
    with pytest.raises(KeyError, match="unexpected"):
        conversion.params_from_torch({**tensors, "layers.0.extra": np.zeros(1)}, model.config)


@pytest.mark.parametrize("backward_channels", (0, 5, 12))
def test_directional_conv_matches_torch(backward_channels):
    rng = np.random.default_rng(backward_channels)
    x = rng.standard_normal((2, 9, 12)).astype(np.float32)
    weight = rng.standard_normal((12, 4)).astype(np.float32)
    expected = directional_conv(torch.from_numpy(x), torch.from_numpy(weight), backward_channels).numpy()
    actual = np.asarray(jax_model.directional_conv(x, weight.T, backward_channels))
    assert np.abs(actual - expected).max() <= 1e-6


@pytest.mark.parametrize("policy", ("clamp", "none"))
@pytest.mark.parametrize("form", ("scan", "chunk"))
def test_model_matches_float64_torch(make_tiny_model, form, policy):
    # Lengths: past max_position_embeddings (16, so "clamp" reuses the last position), a
    # padded one off the chunk size (8), and a single token.
    model = make_tiny_model(position_policy=policy)
    ids, mask = batch((37, 12, 1), model.config.vocab_size)
    hidden, sentences = embed(model, ids, mask, form)
    expected_hidden, expected = float64_truth(model, ids, mask)
    assert np.abs(sentences - expected).max() <= TOLERANCE
    assert (sentences * expected).sum(-1).min() >= 0.99999
    assert np.abs(hidden - expected_hidden)[mask == 1].max() <= 1e-4


@pytest.mark.parametrize("block_tokens", (4, 12, 40, 92))
def test_token_blocks_match_float64_torch(make_tiny_model, block_tokens):
    # 4 rows: blocks of 1, 3 (shorter than the convolution's reach), 10 and 23 tokens; the
    # blocked path also scans over the stacked layers.
    model = make_tiny_model()
    ids, mask = batch((23, 5, 1, 17), model.config.vocab_size, seed=4)
    hidden, sentences = embed(model, ids, mask, "scan", block_tokens)
    expected_hidden, expected = float64_truth(model, ids, mask)
    assert np.abs(sentences - expected).max() <= TOLERANCE
    assert np.abs(hidden - expected_hidden)[mask == 1].max() <= 1e-4


def test_text_longer_than_512_tokens(make_tiny_model):
    model = make_tiny_model(max_position_embeddings=512)
    ids, mask = batch((600, 3), model.config.vocab_size, seed=1)
    _, sentences = embed(model, ids, mask, "scan")
    _, expected = float64_truth(model, ids, mask)
    assert np.abs(sentences - expected).max() <= TOLERANCE


def test_padding_changes_nothing(make_tiny_model):
    model = make_tiny_model()
    ids, mask = batch((20, 9, 5), model.config.vocab_size, seed=2)
    run = embedder(model, "scan")
    _, together = run(ids, mask)
    for row, length in enumerate((20, 9, 5)):
        _, alone = run(ids[row:row + 1, :length], mask[row:row + 1, :length])
        assert np.abs(alone[0] - together[row]).max() <= 1e-6


def compare_modules(torch_module, jax_module, *inputs, tolerance=1e-9):
    """As recurrentgemma's `numerically_compare_modules`: the same numpy inputs through a torch
    module and its JAX mirror (both float64); outputs equal within `tolerance` x their scale."""
    with torch.no_grad():
        expected = torch_module(*(torch.from_numpy(x) for x in inputs)).numpy()
    with jax.enable_x64(True):
        actual = np.asarray(jax_module(*inputs))
    assert actual.shape == expected.shape and actual.dtype == expected.dtype == np.float64
    assert np.abs(actual - expected).max() <= tolerance * max(1.0, np.abs(expected).max())


def float64_mirrors(model):
    """The float64 torch model (chunkwise form) and the JAX parameters converted from it."""
    model = copy.deepcopy(model).double()
    model.form = "chunk"
    model.pack_tokens = False  # padding positions as JAX computes them (packing: tests/test_torch_model.py)
    with jax.enable_x64(True):
        params = jax.device_put(conversion.params_from_torch(tensors_of(model), model.config))
    return model, params


@pytest.mark.parametrize("policy", ("clamp", "none"))
def test_embeddings_mirror_torch(make_tiny_model, policy):
    model, params = float64_mirrors(make_tiny_model(position_policy=policy))
    ids, _ = batch((37, 12, 1), model.config.vocab_size)  # past max_position_embeddings (16)
    compare_modules(model.embeddings, lambda ids: jax_model.embeddings(params.embeddings, ids, model.config),
                    ids.astype(np.int64))


def test_feed_forward_half_mirrors_torch(make_tiny_model):
    model, params = float64_mirrors(make_tiny_model())
    h = np.random.default_rng(5).standard_normal((3, 7, model.config.hidden_size))
    compare_modules(model.layers[1].ffn, lambda h: jax_model.ffn(params.layers[1], h, model.config), h)


# (module, JAX form, block_tokens): each module with each form, blocked and not.
MODULE_CASES = [("mixer", "scan", None), ("mixer", "chunk", 12), ("layer", "scan", 12), ("layer", "chunk", None),
                ("encoder", "scan", None), ("encoder", "chunk", 12)]


@pytest.mark.parametrize(("module", "form", "block_tokens"), MODULE_CASES)
def test_modules_mirror_torch(make_tiny_model, module, form, block_tokens):
    model, params = float64_mirrors(make_tiny_model())
    config = model.config
    ids, mask = batch((23, 5, 1, 17), config.vocab_size, seed=3)
    mask = mask.astype(np.int64)
    if module == "encoder":
        model.block_tokens = block_tokens
        compare_modules(model.encode, lambda ids, mask: jax_model.encode(params, ids, mask, config, form, block_tokens),
                        ids.astype(np.int64), mask)
        return
    x = np.random.default_rng(4).standard_normal((*ids.shape, config.hidden_size))
    torch_module = getattr(model.layers[1], module) if module == "mixer" else model.layers[1]
    jax_params = getattr(params.layers[1], module) if module == "mixer" else params.layers[1]
    compare_modules(lambda x, mask: torch_module(x, mask, "chunk", block_tokens),
                    lambda x, mask: getattr(jax_model, module)(jax_params, x, mask, config, form, block_tokens), x, mask)
