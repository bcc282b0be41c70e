"""The multi-process pool has sentence-transformers' contract and gives single-process results."""

from __future__ import annotations

import multiprocessing
import os
import signal

import numpy as np
import pytest
import torch

from lam import LAM
from lam.multiprocess import cpu_shares, usable_cores

TEXTS = [f"text {i}: " + " ".join(["alpha", "beta", "gamma", "delta"][: i % 5]) * (1 + i % 9) for i in range(150)]
TEXTS += ["", "   ", "emoji 🙂 and CJK 漢字", "lone \ud800 surrogate", "a" * 3000]


@pytest.fixture(scope="module")
def model(small_lam_dir):
    return LAM(small_lam_dir, backend="torch", fallback=False)


@pytest.fixture(scope="module")
def pool(model):
    pool = model.start_multi_process_pool(["cpu", "cpu"])
    yield pool
    model.stop_multi_process_pool(pool)


def test_pool_has_the_sentence_transformers_shape(pool):
    assert set(pool) == {"input", "output", "processes"}
    assert len(pool["processes"]) == 2 and all(p.is_alive() for p in pool["processes"])


def test_pool_embeddings_equal_single_process_in_input_order(model, pool):
    expected = model.encode(TEXTS)
    got = model.encode(TEXTS, pool=pool, chunk_size=7, batch_size=8)
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    default_chunks = model.encode(TEXTS, pool=pool)
    np.testing.assert_allclose(default_chunks, expected, rtol=0, atol=1e-6)
    one = model.encode("a single text", pool=pool)
    np.testing.assert_allclose(one, model.encode("a single text"), rtol=0, atol=1e-6)


def test_pool_honours_the_other_encode_arguments(model, pool):
    texts = TEXTS[:40]
    tensor = model.encode(texts, pool=pool, chunk_size=9, convert_to_tensor=True)
    assert isinstance(tensor, torch.Tensor) and tensor.device.type == "cpu"
    small = model.encode(texts, pool=pool, chunk_size=9, truncate_dim=8, normalize_embeddings=True)
    np.testing.assert_allclose(small, model.encode(texts, truncate_dim=8, normalize_embeddings=True), atol=1e-6)
    tokens = model.encode(texts, pool=pool, chunk_size=9, output_value="token_embeddings")
    for got, expected in zip(tokens, model.encode(texts, output_value="token_embeddings")):
        assert got.shape == expected.shape
        # Token states (|x| up to ~3, not normalised) of one text in two batch compositions: float32
        # rounding of matmuls of different row counts (up to 2e-6 seen).
        np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-5)
    dicts = model.encode(texts[:3], pool=pool, output_value=None)
    for got, expected in zip(dicts, model.encode(texts[:3], output_value=None)):
        assert got.keys() == expected.keys()
        assert torch.equal(got["input_ids"], expected["input_ids"])
    assert len(model.encode([], pool=pool)) == 0


def test_encode_multi_process_is_deprecated_but_works(model, pool):
    with pytest.warns(DeprecationWarning, match="encode\\(..., pool=pool\\)"):
        got = model.encode_multi_process(TEXTS[:20], pool, chunk_size=4)
    np.testing.assert_allclose(got, model.encode(TEXTS[:20]), atol=1e-6)


def test_bad_chunk_size_and_texts_are_refused_before_any_work(model, pool):
    with pytest.raises(ValueError, match="chunk_size"):
        model.encode(TEXTS, pool=pool, chunk_size=0)
    with pytest.raises(TypeError, match="item 1 is NoneType"):
        model.encode(["ok", None], pool=pool)


def test_a_device_list_runs_a_pool_for_that_call_only(model):
    before = set(multiprocessing.active_children())
    got = model.encode(TEXTS[:30], device=["cpu"], chunk_size=8)
    np.testing.assert_allclose(got, model.encode(TEXTS[:30]), rtol=0, atol=1e-6)
    assert set(multiprocessing.active_children()) == before


def test_jax_workers_match_and_are_pinned_to_disjoint_cores(small_lam_dir):
    """XLA sizes its thread pool from the CPU affinity, so JAX workers get their share of cores pinned."""
    jax_model = LAM(small_lam_dir, backend="jax", fallback=False)
    texts = TEXTS[:8]
    pool = jax_model.start_multi_process_pool(["cpu", "cpu"])
    pids = [p.pid for p in pool["processes"]]
    try:
        got = jax_model.encode(texts, pool=pool, chunk_size=4)
        pinned = [sorted(os.sched_getaffinity(pid)) for pid in pids]
    finally:
        jax_model.stop_multi_process_pool(pool)
    np.testing.assert_allclose(got, jax_model.encode(texts), rtol=0, atol=1e-6)
    assert pinned == cpu_shares(2)
    for pid in pids:  # stopped and reaped
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_worker_that_cannot_load_the_model_or_dies_is_reported_not_waited_for(model, tmp_path):
    from lam.multiprocess import embed_in_pool, start_pool, stop_pool

    pool = start_pool({**model._worker_spec(), "model_dir": str(tmp_path / "missing")}, ["cpu"])
    try:
        with pytest.raises(FileNotFoundError, match="missing"):  # the worker's load error, with the first task
            embed_in_pool(pool, ["a"], None, 32, False, False)
        os.kill(pool["processes"][0].pid, signal.SIGKILL)
        with pytest.raises(RuntimeError, match="died"):
            embed_in_pool(pool, ["a"], None, 32, False, False)
    finally:
        stop_pool(pool)


def test_cpu_shares_split_cores_evenly_and_share_when_short():
    assert cpu_shares(2, [0, 1]) == [[0], [1]]
    assert cpu_shares(3, list(range(8))) == [[0, 1, 2], [3, 4, 5], [6, 7]]
    assert cpu_shares(3, [4, 5]) == [[4], [5], [4]]
    assert cpu_shares(1) == [usable_cores()]
