"""LAM where sentence-transformers code expects a SentenceTransformer: evaluators, dataset
columns, module-style methods, truncation context, and the one-call conversion for training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lam import LAM
from lam.datasets import stsb_pairs

TEXTS = ["A man is playing a guitar.", "Two dogs run through a field.", "", "ok"]


@pytest.fixture(scope="module")
def model(teacher_lam_dir):
    return LAM(teacher_lam_dir, backend="torch")


def test_evaluator_accepts_lam_itself(model):
    from scipy.stats import spearmanr
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator

    first, second, gold = stsb_pairs("dev")
    first, second, scores = first[:60], second[:60], list(gold[:60] / 5)
    metrics = EmbeddingSimilarityEvaluator(first, second, scores, name="dev60")(model)
    ours = (model.encode(first) * model.encode(second)).sum(-1)
    assert metrics["dev60_spearman_cosine"] == pytest.approx(spearmanr(ours, scores).statistic, abs=1e-6)
    assert any(m == metrics for m in model.model_card_data.eval_results_dict.values())


def test_dataset_columns_and_other_sized_collections_encode(model):
    from datasets import Dataset

    expected = model.encode(TEXTS)
    column = Dataset.from_dict({"text": TEXTS})["text"]
    for batch in (column, tuple(TEXTS), np.array(TEXTS), {t: None for t in TEXTS}.keys()):
        np.testing.assert_array_equal(model.encode(batch), expected)
    for bad in (b"bytes", {"text": "a"}, torch.zeros(3), (t for t in TEXTS), 3):
        with pytest.raises(TypeError, match="expects a string or a list of strings"):
            model.encode(bad)


def test_module_style_methods(model):
    assert model.eval() is model and model.to("cpu") is model and model.cpu() is model
    assert model.device.type == "cpu"
    np.testing.assert_array_equal(model.to(torch.device("cpu")).encode(TEXTS), model.encode(TEXTS))
    with pytest.raises(TypeError, match="float32"):
        model.half()


def test_truncate_embeddings_context(model):
    full = model.encode(TEXTS)
    with model.truncate_embeddings(64):
        assert model.encode(TEXTS).shape == (4, 64)
        assert model.encode(TEXTS, truncate_dim=32).shape == (4, 32)
    np.testing.assert_array_equal(model.encode(TEXTS), full)
    assert model.truncate_dim is None


def test_to_sentence_transformer_gives_the_same_embeddings_and_trains(model, tmp_path):
    from sentence_transformers import SentenceTransformer

    st_model = model.to_sentence_transformer()
    assert isinstance(st_model, SentenceTransformer)
    np.testing.assert_allclose(st_model.encode(TEXTS), model.encode(TEXTS), atol=1e-5)
    features = st_model.tokenize(TEXTS[:2])
    st_model.train()
    st_model(features)["sentence_embedding"].sum().backward()
    mixer = st_model[0].auto_model.layers[0].mixer
    assert all(p.grad is not None and p.grad.abs().max() > 0 for p in mixer.parameters())
    kept = model.to_sentence_transformer(tmp_path / "st")
    assert (tmp_path / "st" / "modeling_lam.py").is_file() and isinstance(kept, SentenceTransformer)
