"""Cutting documents into sentence-aligned chunks within a token budget, and contextual
("late") chunk embeddings: one pass over the whole document, each chunk's token states pooled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

# A sentence ends at . ! or ? (and closing quotes or brackets) before whitespace and a capital;
# common abbreviations and initials ("Mr.", "J. Smith") do not end one.
_SENTENCE_END = re.compile(r"(?<!\bMr)(?<!\bMrs)(?<!\bMs)(?<!\bDr)(?<!\bSt)(?<!\bvs)(?<![A-Z])"
                           r"[.!?][\"'\u201d\u2019)\]]*\s+(?=[\"'\u201c\u2018(\[]?[A-Z])")


def sentence_starts(text: str) -> np.ndarray:
    """Character offsets at which the sentences of `text` start (0 included), increasing."""
    return np.array([0] + [m.end() for m in _SENTENCE_END.finditer(text)], dtype=np.int64)


@dataclass(frozen=True)
class Chunk:
    """text[start:end] of a document."""

    start: int
    end: int


def sentence_chunks(text: str, token_starts: np.ndarray, max_tokens: int = 256, overlap_tokens: int = 0,
                    readable: int | None = None) -> list[Chunk]:
    """Consecutive chunks of whole sentences of at most `max_tokens` tokens each.

    token_starts: (T,) increasing start character of each token of `text`. A sentence longer
    than the budget is cut between tokens. Without overlap, the chunks tile text[0:readable]
    (default: all of it) exactly; with `overlap_tokens`, each chunk after the first also
    repeats the last whole sentences of the previous one, up to that many tokens.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    if not 0 <= overlap_tokens < max_tokens:
        raise ValueError(f"overlap_tokens must lie in [0, max_tokens), got {overlap_tokens}")
    readable = len(text) if readable is None else readable
    if readable == 0 or len(token_starts) == 0:
        return [Chunk(0, readable)] if readable else []
    # Cut points: sentence starts, plus token starts inside sentences longer than the budget.
    token_starts = token_starts[token_starts < readable]
    sentence_at = sentence_starts(text[:readable])
    cuts = [0]
    for start, stop in zip(sentence_at, [*sentence_at[1:], readable]):
        first, last = np.searchsorted(token_starts, [start, stop])
        cuts.extend(int(token_starts[t]) for t in range(first + max_tokens, last, max_tokens))
        cuts.append(int(stop))
    cuts = sorted(set(cuts))
    tokens_before = np.searchsorted(token_starts, cuts)  # tokens starting before each cut

    chunks, begin = [], 0
    while begin < len(cuts) - 1:
        end = begin + 1
        while end + 1 < len(cuts) and tokens_before[end + 1] - tokens_before[begin] <= max_tokens:
            end += 1
        chunks.append(Chunk(cuts[begin], cuts[end]))
        if end == len(cuts) - 1:
            break
        following = end
        # Step back over whole pieces while they fit the overlap and the next chunk can still grow.
        while (overlap_tokens and following - 1 > begin
               and tokens_before[end] - tokens_before[following - 1] <= overlap_tokens
               and tokens_before[end + 1] - tokens_before[following - 1] <= max_tokens):
            following -= 1
        begin = following
    return chunks


def pooled_spans(token_embeddings: np.ndarray, token_starts: np.ndarray, chunks: list[Chunk]) -> np.ndarray:
    """(len(chunks), d) L2-normalised means of the token embeddings (T, d) whose start lies in each
    chunk; token_starts (T,) are the tokens' start characters (special tokens excluded)."""
    out = np.zeros((len(chunks), token_embeddings.shape[1]), dtype=np.float32)
    for row, chunk in enumerate(chunks):
        lo, hi = np.searchsorted(token_starts, [chunk.start, chunk.end])
        if hi > lo:
            mean = token_embeddings[lo:hi].mean(0)
            out[row] = mean / max(float(np.linalg.norm(mean)), 1e-12)
    return out


@dataclass
class ChunkedDocument:
    """A document's chunks: their character spans, texts and (len(spans), d) embeddings."""

    spans: list[tuple[int, int]]
    texts: list[str]
    embeddings: np.ndarray


def contextual_chunks(text: str, token_spans: np.ndarray, token_embeddings: np.ndarray, truncated: bool,
                      chunk_tokens: int, overlap_tokens: int) -> ChunkedDocument:
    """Chunks of one document and their embeddings, pooled from its whole-document token
    embeddings (T, d); token_spans (T, 2): each token's (start, end) character, special tokens
    excluded. `truncated`: the model read only these T tokens, so chunks end with the last."""
    starts = token_spans[:, 0]
    readable = int(token_spans[-1, 1]) if truncated and len(token_spans) else len(text)
    chunks = sentence_chunks(text, starts, chunk_tokens, overlap_tokens, readable=readable)
    return ChunkedDocument([(c.start, c.end) for c in chunks], [text[c.start:c.end] for c in chunks],
                           pooled_spans(token_embeddings, starts, chunks))


def best_chunk_scores(queries: np.ndarray, chunk_embeddings: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(Q, N) best dot product of each query (Q, d) with each document's chunk rows (chunks_i, d),
    -inf for a document without chunks, and (Q, N) the chunk row that gives it."""
    best = np.full((len(queries), len(chunk_embeddings)), -np.inf)
    where = np.zeros((len(queries), len(chunk_embeddings)), dtype=np.int64)
    for column, chunks in enumerate(chunk_embeddings):
        if len(chunks):
            scores = queries @ chunks.T
            where[:, column] = scores.argmax(1)
            best[:, column] = scores[np.arange(len(queries)), where[:, column]]
    return best, where


def search_documents(query_embeddings, documents: list[ChunkedDocument], top_k: int = 10) -> list[list[dict]]:
    """Rank documents for each query by their best chunk, as `sentence_transformers.util.semantic_search`
    ranks texts: per query, up to `top_k` hits {"corpus_id", "score", "chunk", "span"}, best first,
    where score is the cosine similarity of the query to the document's best chunk, and chunk and
    span locate that chunk. query_embeddings: (Q, d) or one (d,) query; documents: the
    `encode_chunks` results (a single one is a corpus of one). Documents without chunks (empty
    texts) are never hits.
    """
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
    documents = [documents] if isinstance(documents, ChunkedDocument) else list(documents)
    if not all(isinstance(d, ChunkedDocument) for d in documents):
        raise TypeError("documents must be a list of ChunkedDocument (from LAM.encode_chunks on a list of texts)")
    queries = np.atleast_2d(np.asarray(query_embeddings, dtype=np.float32))
    if queries.ndim != 2:
        raise ValueError(f"query_embeddings must be (queries, d) or (d,), got shape {np.shape(query_embeddings)}")
    queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    for column, document in enumerate(documents):
        if len(document.spans) and document.embeddings.shape[1] != queries.shape[1]:
            raise ValueError(f"document {column} has {document.embeddings.shape[1]}-dimensional chunk embeddings, "
                             f"the queries {queries.shape[1]}")
    best, where = best_chunk_scores(queries, [np.asarray(d.embeddings, dtype=np.float32) for d in documents])
    hits = []
    for row in range(len(queries)):
        order = [int(c) for c in np.argsort(-best[row], kind="stable")[:top_k] if np.isfinite(best[row, c])]
        hits.append([{"corpus_id": c, "score": float(best[row, c]), "chunk": int(where[row, c]),
                      "span": documents[c].spans[where[row, c]]} for c in order])
    return hits
