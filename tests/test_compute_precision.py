"""LAM(compute_precision=...): bfloat16 and int8 matmuls give finite unit embeddings close to
float32 on both backends; the torch backend's fused inference path equals the plain model, and
short inputs run on one thread without changing the caller's thread count."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lam import LAM

TEXTS = ["A man is playing a guitar.", "Someone plays music on a stage.", "The stock market fell sharply today.",
         "A cat sleeps on the sofa.", "Quantum computers use qubits to compute.", ""]
# Lowest cosine with the float32 embedding of the same text, LAM-base-v1 (seen: bf16 0.99999,
# int8 0.9966 on torch (activations quantised per tensor), 0.9988 on JAX (per token)).
MIN_COSINE = {"bfloat16": 0.9995, "int8": 0.99}


@pytest.fixture(scope="module")
def float32_embeddings(lam_cache):
    return {backend: LAM("LAM-base-v1", backend=backend, fallback=False).encode(TEXTS) for backend in ("torch", "jax")}


@pytest.mark.parametrize("backend", ["torch", "jax"])
@pytest.mark.parametrize("precision", ["bfloat16", "int8"])
def test_lower_precisions_stay_close_to_float32(backend, precision, float32_embeddings):
    model = LAM("LAM-base-v1", backend=backend, fallback=False, compute_precision=precision)
    assert model.compute_precision == precision and model._backend.compute_precision == precision
    embeddings = model.encode(TEXTS)
    reference = float32_embeddings[backend]
    assert embeddings.dtype == np.float32 and np.isfinite(embeddings).all()
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    cosine = (embeddings * reference).sum(1)
    assert cosine.min() >= MIN_COSINE[precision], cosine
    assert not np.array_equal(embeddings, reference), "the precision changed nothing"


def test_unknown_compute_precision_is_refused(lam_cache):
    with pytest.raises(ValueError, match="compute_precision must be one of"):
        LAM("LAM-base-v1", backend="torch", compute_precision="float16")


def test_prepared_float32_path_equals_the_plain_model(make_tiny_model):
    """The torch backend's fused projections and compiled convolution (float32) against the plain
    model's separate linears and torch convolution, on padded batches and in token blocks."""
    from lam._torch_precision import prepare_inference

    model = make_tiny_model(seed=3)
    ids = torch.randint(1, 120, (3, 13))
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    mask[2, 4:] = 0
    with torch.inference_mode():
        plain = model(ids, mask).last_hidden_state
        model.block_tokens = 8
        prepare_inference(model, "float32")
        assert "fused_inputs" in model.layers[0].mixer.__dict__
        fused = model(ids, mask).last_hidden_state
    real = mask.bool()
    torch.testing.assert_close(fused[real], plain[real], rtol=0, atol=1e-5)
    with torch.enable_grad():  # gradients go through the plain modules, not the inference copies
        ids.requires_grad_(False)
        out = model(ids, mask).last_hidden_state
        out[real].sum().backward()
    assert model.layers[0].mixer.q_proj.weight.grad is not None


def test_short_inputs_run_on_one_thread_and_restore_the_count(lam_cache, monkeypatch):
    import lam._torch_backend as torch_backend

    model = LAM("LAM-base-v1", backend="torch", fallback=False)
    threads = torch.get_num_threads()
    seen = []
    original = torch_backend.one_torch_thread

    def spy(enabled=True):
        seen.append(enabled)
        return original(enabled)

    monkeypatch.setattr(torch_backend, "one_torch_thread", spy)
    short = model.encode(TEXTS[:2])
    assert seen == [True] and torch.get_num_threads() == threads
    monkeypatch.setattr(torch_backend, "ONE_THREAD_TOKENS", 0)
    np.testing.assert_allclose(model.encode(TEXTS[:2]), short, rtol=0, atol=1e-6)
    assert seen == [True, False] and torch.get_num_threads() == threads
