"""LAM.encode against SentenceTransformer.encode: same arguments, same types, shapes, dtypes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lam import LAM
from lam.datasets import stsb_pairs

TEXTS = ["A man is playing a guitar.", "", "Two dogs run through a field of tall grass.", "ok"]

CASES = {
    "default list": dict(),
    "single string": dict(_single=True),
    "empty list": dict(_empty=True),
    "batch_size": dict(batch_size=1),
    "show_progress_bar": dict(show_progress_bar=True),
    "prompt": dict(prompt="query: "),
    "convert_to_tensor": dict(convert_to_tensor=True),
    "convert_to_tensor single": dict(convert_to_tensor=True, _single=True),
    "convert_to_tensor empty": dict(convert_to_tensor=True, _empty=True),
    "list of tensors": dict(convert_to_numpy=False),
    "device": dict(device="cpu", convert_to_tensor=True),
    "normalize_embeddings": dict(normalize_embeddings=True),
    "truncate_dim": dict(truncate_dim=64),
    "truncate_dim normalised": dict(truncate_dim=64, normalize_embeddings=True),
    "int8": dict(precision="int8"),
    "uint8": dict(precision="uint8"),
    "binary": dict(precision="binary"),
    "ubinary": dict(precision="ubinary"),
    "ubinary tensor": dict(precision="ubinary", convert_to_tensor=True),
    "token_embeddings": dict(output_value="token_embeddings"),
    "token_embeddings single": dict(output_value="token_embeddings", _single=True),
    "all outputs": dict(output_value=None),
    "all outputs single": dict(output_value=None, _single=True),
}


@pytest.fixture(scope="module")
def teacher():
    from sentence_transformers import SentenceTransformer

    from lam.teacher import teacher_dir

    return SentenceTransformer(str(teacher_dir()), device="cpu")


@pytest.fixture(scope="module", params=["torch", "jax"])
def lam_model(request, teacher_lam_dir):
    model = LAM(teacher_lam_dir, backend=request.param, fallback=False)
    assert model.backend == request.param
    return model


def describe(value):
    """A comparable summary of an encode result: container types, shapes, dtypes."""
    if isinstance(value, np.ndarray):
        return ("ndarray", value.shape, str(value.dtype))
    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape), str(value.dtype), value.device.type)
    if isinstance(value, dict):
        return ("dict", {k: describe(v) for k, v in value.items() if k in DICT_KEYS})
    if isinstance(value, list):
        return ("list", [describe(v) for v in value])
    return (type(value).__name__,)


DICT_KEYS = ("sentence_embedding",)


@pytest.mark.parametrize("case", list(CASES))
def test_encode_matches_sentence_transformers_contract(case, teacher, lam_model):
    kwargs = dict(CASES[case])
    inputs = TEXTS[0] if kwargs.pop("_single", False) else [] if kwargs.pop("_empty", False) else TEXTS
    theirs = teacher.encode(inputs, **kwargs)
    ours = lam_model.encode(inputs, **kwargs)
    if kwargs.get("output_value", "sentence_embedding") == "sentence_embedding":
        assert describe(ours) == describe(theirs)
    else:
        # Token counts follow each model's own tokenisation limits; compare structure and widths.
        ours_list, theirs_list = (x if isinstance(x, list) else [x] for x in (ours, theirs))
        assert len(ours_list) == len(theirs_list)
        for mine, other in zip(ours_list, theirs_list):
            assert type(mine) is type(other)
            if isinstance(mine, dict):
                assert set(other) == set(mine)
                mine, other = mine["token_embeddings"], other["token_embeddings"]
            assert mine.shape[-1] == other.shape[-1] and mine.dtype == other.dtype
    if precision_is_float(kwargs) and kwargs.get("output_value", "sentence_embedding") == "sentence_embedding" \
            and inputs and not kwargs.get("truncate_dim") or kwargs.get("normalize_embeddings"):
        norms = np.linalg.norm(np.atleast_2d(to_numpy(ours)), axis=-1)
        np.testing.assert_allclose(norms, 1.0, atol=1e-5)


def precision_is_float(kwargs):
    return kwargs.get("precision", "float32") == "float32"


def to_numpy(value):
    if isinstance(value, list):
        return np.stack([to_numpy(v) for v in value])
    return value.cpu().numpy() if isinstance(value, torch.Tensor) else value


def test_quantisation_equals_sentence_transformers(lam_model):
    from sentence_transformers.quantization import quantize_embeddings

    embeddings = lam_model.encode(TEXTS)
    for precision in ("int8", "uint8", "binary", "ubinary"):
        np.testing.assert_array_equal(lam_model.encode(TEXTS, precision=precision),
                                      quantize_embeddings(embeddings, precision=precision))


def test_similarity_functions_match_sentence_transformers(teacher, lam_model):
    a, b = lam_model.encode(TEXTS[:3]), lam_model.encode(TEXTS[1:])
    for name in ("cosine", "dot", "euclidean", "manhattan"):
        teacher.similarity_fn_name = name
        lam_model.similarity_fn_name = name
        torch.testing.assert_close(lam_model.similarity(a, b), teacher.similarity(a, b), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(lam_model.similarity_pairwise(a, b), teacher.similarity_pairwise(a, b),
                                   atol=1e-5, rtol=1e-5)
    lam_model.similarity_fn_name = "cosine"
    with pytest.raises(ValueError, match="similarity_fn_name"):
        lam_model.similarity_fn_name = "maxsim"


def test_model_attributes(teacher, lam_model):
    assert lam_model.get_sentence_embedding_dimension() == teacher.get_sentence_embedding_dimension() == 384
    assert lam_model.get_embedding_dimension() == 384
    assert lam_model.device.type == "cpu"
    assert lam_model.tokenizer("a cat")["input_ids"] == teacher.tokenizer("a cat")["input_ids"]
    np.testing.assert_array_equal(lam_model("a cat"), lam_model.encode("a cat"))
    np.testing.assert_array_equal(lam_model.encode_query(["a cat"]), lam_model.encode(["a cat"]))
    np.testing.assert_array_equal(lam_model.encode_document(["a cat"]), lam_model.encode(["a cat"]))


def test_max_seq_length_truncates(lam_model):
    original = lam_model.max_seq_length
    try:
        lam_model.max_seq_length = 8
        tokens = lam_model.encode("word " * 50, output_value="token_embeddings")
        assert tokens.shape == (8, 384)
    finally:
        lam_model.max_seq_length = original


def test_bad_arguments_are_clear_errors(lam_model):
    with pytest.raises(ValueError, match="batch_size"):
        lam_model.encode(TEXTS, batch_size=0)
    with pytest.raises(TypeError, match="batch_size"):
        lam_model.encode(TEXTS, batch_size=2.5)
    with pytest.raises(ValueError, match="precision"):
        lam_model.encode(TEXTS, precision="float16")
    with pytest.raises(ValueError, match="output_value"):
        lam_model.encode(TEXTS, output_value="cls")
    with pytest.raises(ValueError, match="prompt_name"):
        lam_model.encode(TEXTS, prompt_name="query")
    with pytest.raises(ValueError, match="unexpected keyword"):
        lam_model.encode(TEXTS, not_an_argument=None)
    with pytest.raises(TypeError, match="item 1 is int"):
        lam_model.encode(["a", 3])
    with pytest.raises(TypeError, match="got None"):
        lam_model.encode(None)


def test_saved_lam_loads_in_sentence_transformers(lam_model, tmp_path):
    from sentence_transformers import SentenceTransformer

    path = lam_model.save(tmp_path / "saved")
    loaded = SentenceTransformer(str(path), device="cpu")
    np.testing.assert_allclose(loaded.encode(TEXTS), lam_model.encode(TEXTS), atol=1e-5)
    np.testing.assert_allclose(LAM(path, backend=lam_model.backend).encode(TEXTS), lam_model.encode(TEXTS), atol=1e-6)


def test_embedding_similarity_evaluator_scores_a_saved_lam(lam_model, tmp_path):
    from scipy.stats import spearmanr
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.evaluation import EmbeddingSimilarityEvaluator

    first, second, gold = stsb_pairs("dev")
    first, second, scores = first[:300], second[:300], list(gold[:300] / 5)
    evaluator = EmbeddingSimilarityEvaluator(first, second, scores, name="stsb-dev")
    metrics = evaluator(SentenceTransformer(str(lam_model.save(tmp_path / "saved")), device="cpu"))
    ours = (lam_model.encode(first) * lam_model.encode(second)).sum(-1)
    assert metrics["stsb-dev_spearman_cosine"] == pytest.approx(spearmanr(ours, scores).statistic, abs=1e-4)


def test_saved_lam_base_v1_loads_in_sentence_transformers(lam_cache, tmp_path):
    from sentence_transformers import SentenceTransformer

    model = LAM("LAM-base-v1", backend="torch")
    loaded = SentenceTransformer(str(model.save(tmp_path / "LAM-base-v1")), device="cpu")
    np.testing.assert_allclose(loaded.encode(TEXTS), model.encode(TEXTS), atol=1e-5)
