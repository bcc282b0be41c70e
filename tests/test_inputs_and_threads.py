"""Bad and odd inputs, huge inputs, many threads, repeatability — on both backends."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lam import LAM

BACKENDS = ["torch", "jax"]
ODD_TEXTS = ["", "   ", "\t\n", "a\x00b\x07c", "emoji 🙂 and CJK 漢字", "lone \ud800 surrogate", "é" * 3, "a" * 5000]


@pytest.fixture(scope="module")
def models(small_lam_dir):
    return {name: LAM(small_lam_dir, backend=name, fallback=False) for name in BACKENDS}


@pytest.fixture(scope="module")
def shipped_models(lam_cache):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {name: LAM("LAM-base-v1", backend=name, fallback=False) for name in BACKENDS}


@pytest.mark.parametrize("backend", BACKENDS)
def test_odd_texts_give_finite_normalised_embeddings(models, backend):
    embeddings = models[backend].encode(ODD_TEXTS)
    assert embeddings.shape == (len(ODD_TEXTS), 32)
    assert np.isfinite(embeddings).all()
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)


def test_empty_and_whitespace_texts_embed_like_an_empty_text(models):
    for model in models.values():
        empty, spaces, tabs = model.encode(["", "   ", "\t\n"])
        np.testing.assert_allclose(spaces, empty, atol=1e-6)
        np.testing.assert_allclose(tabs, empty, atol=1e-6)
    np.testing.assert_allclose(models["torch"].encode(""), models["jax"].encode(""), atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_ten_megabyte_string_is_truncated_not_tokenised_whole(models, backend):
    model = models[backend]
    huge = "word " * 2_000_000
    tokens = model.encode(huge, output_value="token_embeddings")
    assert tokens.shape == (model.max_seq_length, 32)
    assert np.isfinite(model.encode(huge)).all()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad, error, message", [
    (None, TypeError, "got None"),
    (["ok", None], TypeError, "item 1 is NoneType"),
    (["ok", ["nested"]], TypeError, "item 1 is list"),
    ([b"bytes"], TypeError, "item 0 is bytes"),
    (12, TypeError, "got int"),
])
def test_bad_inputs_name_the_problem(models, backend, bad, error, message):
    with pytest.raises(error, match=message):
        models[backend].encode(bad)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_arguments(models, backend):
    model = models[backend]
    for kwargs, error in [(dict(batch_size=-1), ValueError), (dict(batch_size="8"), TypeError),
                          (dict(truncate_dim=0), ValueError), (dict(truncate_dim=1.5), TypeError),
                          (dict(precision="int4"), ValueError)]:
        with pytest.raises(error):
            model.encode(["a"], **kwargs)
    with pytest.raises(ValueError, match="max_seq_length"):
        model.max_seq_length = 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_eight_threads_get_exactly_the_sequential_results(models, backend):
    model = models[backend]
    workloads = [[f"thread {i} sentence {j} " * (1 + (i * j) % 7) for j in range(12)] for i in range(8)]
    sequential = [model.encode(texts, batch_size=4) for texts in workloads]
    results = [None] * 8

    def work(i):
        results[i] = model.encode(workloads[i], batch_size=4)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for got, expected in zip(results, sequential):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_repeated_calls_are_bit_identical(models, backend):
    texts = ["one", "two words", "three little words"] * 5
    first = models[backend].encode(texts)
    for _ in range(3):
        np.testing.assert_array_equal(models[backend].encode(texts), first)


unicode_texts = st.lists(st.text(min_size=0, max_size=60), min_size=1, max_size=4)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=unicode_texts)
def test_random_unicode_is_embedded_identically_by_both_backends(shipped_models, texts):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        by_torch = shipped_models["torch"].encode(texts)
        by_jax = shipped_models["jax"].encode(texts)
    for embeddings in (by_torch, by_jax):
        assert np.isfinite(embeddings).all()
        np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(by_torch, by_jax, atol=1e-5)
