"""Sentence-aligned chunks within a token budget, and contextual chunk embeddings (`LAM.encode_chunks`)."""

from __future__ import annotations

import numpy as np
import pytest

from lam import LAM
from lam.chunking import Chunk, ChunkedDocument, search_documents, sentence_chunks, sentence_starts

DOCUMENT = " ".join(
    f"Sentence number {i} talks about {topic}, which Mr. Jones found {mood}." + ("\n\n" if i % 7 == 6 else "")
    for i, (topic, mood) in enumerate(zip(["rivers", "music", "trains", "bread", "the sea", "old maps"] * 12,
                                         ["dull", "lovely", "odd", "fine", "strange"] * 15)))


def token_starts_of(text: str) -> np.ndarray:
    """Start offsets of whitespace-separated words: a stand-in tokenizer for the pure chunker."""
    return np.array([i for i, c in enumerate(text) if not c.isspace() and (i == 0 or text[i - 1].isspace())])


def test_sentence_starts_skip_abbreviations():
    text = "Mr. Smith met Dr. Who. Then J. R. Hartley left! \"Why?\" Nobody knew."
    starts = sentence_starts(text)
    assert [text[s:s + 4] for s in starts] == ["Mr. ", "Then", "\"Why", "Nobo"]


@pytest.mark.parametrize("budget", [5, 12, 40, 1000])
def test_chunks_tile_the_document_within_the_budget(budget):
    starts = token_starts_of(DOCUMENT)
    chunks = sentence_chunks(DOCUMENT, starts, budget)
    assert chunks[0].start == 0 and chunks[-1].end == len(DOCUMENT)
    assert all(a.end == b.start for a, b in zip(chunks, chunks[1:]))
    counts = [np.searchsorted(starts, c.end) - np.searchsorted(starts, c.start) for c in chunks]
    assert max(counts) <= budget and min(counts) >= 1
    if budget >= 12:  # every sentence fits: chunks end on sentence boundaries
        boundaries = set(sentence_starts(DOCUMENT).tolist()) | {len(DOCUMENT)}
        assert all(c.end in boundaries for c in chunks)


def test_overlapping_chunks_repeat_whole_sentences_and_cover_everything():
    starts = token_starts_of(DOCUMENT)
    chunks = sentence_chunks(DOCUMENT, starts, 40, overlap_tokens=15)
    assert chunks[0].start == 0 and chunks[-1].end == len(DOCUMENT)
    boundaries = set(sentence_starts(DOCUMENT).tolist())
    for before, after in zip(chunks, chunks[1:]):
        assert before.start < after.start <= before.end < after.end
        assert after.start in boundaries
        repeated = np.searchsorted(starts, before.end) - np.searchsorted(starts, after.start)
        assert repeated <= 15


def test_chunker_rejects_bad_budgets():
    with pytest.raises(ValueError):
        sentence_chunks(DOCUMENT, token_starts_of(DOCUMENT), 0)
    with pytest.raises(ValueError):
        sentence_chunks(DOCUMENT, token_starts_of(DOCUMENT), 10, overlap_tokens=10)
    assert sentence_chunks("", np.array([], dtype=np.int64), 10) == []
    assert sentence_chunks("word", np.array([0]), 10) == [Chunk(0, 4)]


@pytest.fixture(scope="module")
def models(small_lam_dir):
    return {backend: LAM(small_lam_dir, backend=backend, fallback=False) for backend in ("torch", "jax")}


def test_chunk_embedding_is_the_mean_of_its_token_embeddings(models):
    model = models["torch"]
    result = model.encode_chunks(DOCUMENT, chunk_tokens=48)
    tokens = model.encode(DOCUMENT, output_value="token_embeddings").numpy()[1:-1]
    spans, truncated = model._tokenize.spans([DOCUMENT])[0]
    assert not truncated and len(spans) == len(tokens)
    assert result.spans[0][0] == 0 and result.spans[-1][1] == len(DOCUMENT)
    assert all(a[1] == b[0] for a, b in zip(result.spans, result.spans[1:]))
    assert result.texts == [DOCUMENT[s:e] for s, e in result.spans]
    for (start, end), embedding in zip(result.spans, result.embeddings):
        inside = (spans[:, 0] >= start) & (spans[:, 0] < end)
        assert 1 <= inside.sum() <= 48
        mean = tokens[inside].mean(0)
        np.testing.assert_allclose(embedding, mean / np.linalg.norm(mean), atol=1e-6)


def test_chunks_see_their_context(models):
    """The same sentence gets a different chunk embedding in a different document."""
    model = models["torch"]
    shared = "The lighthouse keeper counted the ships every night."
    first = model.encode_chunks(["Storms broke over the harbour. " * 3 + shared], chunk_tokens=12)
    second = model.encode_chunks(["Children played in the meadow. " * 3 + shared], chunk_tokens=12)
    assert first[0].texts[-1] == second[0].texts[-1] == shared
    assert np.abs(first[0].embeddings[-1] - second[0].embeddings[-1]).max() > 1e-3


def test_backends_agree_on_chunk_embeddings(models):
    documents = [DOCUMENT, DOCUMENT[:700], "One short line."]
    torch_chunks = models["torch"].encode_chunks(documents, chunk_tokens=32, chunk_overlap=8)
    jax_chunks = models["jax"].encode_chunks(documents, chunk_tokens=32, chunk_overlap=8)
    for a, b in zip(torch_chunks, jax_chunks):
        assert a.spans == b.spans
        np.testing.assert_allclose(a.embeddings, b.embeddings, atol=1e-5)


def test_truncated_documents_are_chunked_up_to_what_was_read(models):
    model = LAM(models["torch"].model_dir, backend="torch")
    model.max_seq_length = 64
    result = model.encode_chunks(DOCUMENT, chunk_tokens=20)
    spans, truncated = model._tokenize.spans([DOCUMENT])[0]
    assert truncated and len(spans) == 62
    assert result.spans[-1][1] == spans[-1, 1] < len(DOCUMENT)
    assert np.isfinite(result.embeddings).all()


def test_encode_chunks_rejects_bad_arguments(models):
    model = models["torch"]
    with pytest.raises(ValueError):
        model.encode_chunks(DOCUMENT, chunk_tokens=0)
    with pytest.raises(ValueError):
        model.encode_chunks(DOCUMENT, chunk_tokens=16, chunk_overlap=16)
    with pytest.raises(TypeError):
        model.encode_chunks([DOCUMENT, None])


def _chunked(embeddings: np.ndarray) -> ChunkedDocument:
    spans = [(10 * i, 10 * i + 10) for i in range(len(embeddings))]
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True) if len(embeddings) else embeddings
    return ChunkedDocument(spans, ["x" * 10] * len(spans), unit.astype(np.float32))


def test_search_documents_ranks_documents_by_their_best_chunk():
    rng = np.random.default_rng(0)
    documents = [_chunked(rng.normal(size=(n, 16))) for n in (3, 1, 5, 2)] + [_chunked(np.zeros((0, 16)))]
    queries = rng.normal(size=(4, 16)) * 5.0
    hits = search_documents(queries, documents, top_k=3)
    unit = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    for query, found in zip(unit, hits):
        best = [(d.embeddings @ query).max() for d in documents[:4]]
        assert [h["corpus_id"] for h in found] == list(np.argsort(best)[::-1][:3])
        for hit in found:
            chunk_scores = documents[hit["corpus_id"]].embeddings @ query
            assert hit["chunk"] == chunk_scores.argmax() and hit["score"] == pytest.approx(chunk_scores.max(), abs=1e-6)
            assert hit["span"] == documents[hit["corpus_id"]].spans[hit["chunk"]]
    assert len(search_documents(queries[0], documents, top_k=50)) == 1      # one (d,) query: one list
    assert len(search_documents(queries[0], documents, top_k=50)[0]) == 4   # the chunkless document never hits
    assert search_documents(queries, iter(documents)) == search_documents(queries, documents)  # any iterable
    assert search_documents(queries[0], documents[2])[0][0]["corpus_id"] == 0  # one ChunkedDocument: a list of one


def test_search_documents_finds_a_passage_in_its_document(models):
    model = models["torch"]
    documents = [DOCUMENT, "The harbour froze in winter. Fishermen waited for the thaw. " * 6,
                 "A recipe for bread: flour, water, salt and patience. " * 6]
    chunked = model.encode_chunks(documents, chunk_tokens=24)
    query = chunked[0].texts[3]
    hit = search_documents(model.encode(query), chunked, top_k=1)[0][0]
    assert hit["corpus_id"] == 0


def test_search_documents_rejects_bad_inputs():
    document = _chunked(np.eye(4)[:2])
    with pytest.raises(ValueError, match="top_k"):
        search_documents(np.ones(4), [document], top_k=0)
    with pytest.raises(TypeError, match="ChunkedDocument"):
        search_documents(np.ones(4), [document, "a text"])
    with pytest.raises(ValueError, match="dimensional"):
        search_documents(np.ones(3), [document])
