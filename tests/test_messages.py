"""Messages a new user meets: a missing GPU, truncated texts, the tokenizer's length limit."""

from __future__ import annotations

import warnings

import pytest
import torch

from lam import LAM, BackendFallbackWarning


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_a_gpu_says_to_use_cpu(small_lam_dir):
    with pytest.raises(RuntimeError, match="no CUDA device is visible to torch; use device='cpu'"):
        LAM(small_lam_dir, backend="torch", device="cuda", fallback=False)
    with pytest.warns(BackendFallbackWarning, match="use device='cpu'"):
        with pytest.raises(RuntimeError, match=r"no device 'cuda' is visible to JAX .*; use device='cpu'"):
            LAM(small_lam_dir, backend="torch", device="cuda")


def test_truncation_warns_once_per_model(small_lam_dir):
    model = LAM(small_lam_dir, backend="torch")
    model.max_seq_length = 8
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.encode(["a cat", "word " * 20, "word " * 30])
        model.encode(["word " * 20])
    messages = [str(w.message) for w in caught if "truncated" in str(w.message)]
    assert len(messages) == 1 and "2 of 3 texts are longer than max_seq_length=8 tokens" in messages[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LAM(small_lam_dir, backend="torch").encode(["a cat", "word " * 20])


def test_tokenizer_limit_follows_max_seq_length(small_lam_dir):
    model = LAM(small_lam_dir, backend="torch")
    assert model.tokenizer.model_max_length == model.max_seq_length == 32768
    model.max_seq_length = 64
    assert model.tokenizer.model_max_length == 64
