"""The LAM facade: shapes and types, input order, batching, built-in names, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from lam import LAM
from lam.batching import pad_batch, plan_batches

SENTENCES = ["a cat", "A man is playing a guitar on a stage in front of a large crowd.", "",
             "dogs", "The weather is lovely today, with clear skies and a light breeze."]


@pytest.fixture(scope="module")
def model(teacher_lam_dir):
    return LAM(teacher_lam_dir, backend="torch")


def test_list_in_matrix_out_single_string_in_vector_out(model):
    matrix = model.encode(SENTENCES)
    assert isinstance(matrix, np.ndarray) and matrix.shape == (5, 384) and matrix.dtype == np.float32
    vector = model.encode("a cat")
    assert vector.shape == (384,)
    np.testing.assert_allclose(vector, matrix[0], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)


def test_rows_follow_input_order_whatever_the_batching(model):
    reference = np.stack([model.encode(s) for s in SENTENCES])
    for batch_size in (1, 2, 64):
        np.testing.assert_allclose(model.encode(SENTENCES, batch_size=batch_size), reference, atol=1e-6)


def test_tensor_outputs(model):
    tensor = model.encode(SENTENCES, convert_to_tensor=True)
    assert isinstance(tensor, torch.Tensor) and tensor.shape == (5, 384)
    rows = model.encode(SENTENCES, convert_to_numpy=False)
    assert isinstance(rows, list) and len(rows) == 5 and all(isinstance(r, torch.Tensor) for r in rows)


def test_batches_are_sorted_by_token_length_and_bounded_by_token_budget():
    token_ids = [np.arange(n) + 1 for n in (3, 50, 7, 50, 20)]
    plan = plan_batches([len(t) for t in token_ids], batch_size=4, max_tokens=100)
    assert [list(rows) for rows in plan] == [[1, 3], [4, 2, 0]]
    batches = [pad_batch(token_ids, rows, pad_id=0) for rows in plan]
    assert all(b.input_ids.size <= 100 for b in batches)
    first = batches[1]
    assert first.attention_mask.sum(1).tolist() == [20, 7, 3]
    assert first.input_ids[2, 3:].tolist() == [0] * 17


def test_builtin_name_resolves_and_encodes(lam_cache):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        embeddings = LAM("LAM-base-v1", backend="torch").encode(["a cat", "a dog"])
    assert embeddings.shape == (2, 384)
    assert any(p.name.startswith("LAM-base-v1") for p in lam_cache.iterdir())


def test_unknown_names_and_paths_are_clear_errors(lam_cache, tmp_path):
    with pytest.raises(ValueError, match="unknown model 'LAM-nope'"):
        LAM("LAM-nope")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        LAM(tmp_path)
    with pytest.raises(ValueError, match="backend must be one of"):
        LAM("LAM-base-v1", backend="tensorflow")


def test_missing_cython_kernel_warns_and_uses_pure_torch(teacher_lam_dir, monkeypatch):
    from lam import _cython

    expected = LAM(teacher_lam_dir, backend="torch").encode(SENTENCES)
    monkeypatch.setattr(_cython, "AVAILABLE", False)
    with pytest.warns(UserWarning, match="Cython kernel is not available"):
        model = LAM(teacher_lam_dir, backend="torch")
    assert model._backend.form == "chunk"
    np.testing.assert_allclose(model.encode(SENTENCES), expected, atol=1e-5)
