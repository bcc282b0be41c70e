"""STS-B dev scoring of an in-training student (Spearman of cosine similarity x 1)."""

from __future__ import annotations

import numpy as np
import torch

from .._torch_model import LAMModel
from ..datasets import spearman_of_cosine, stsb_pairs
from .data import load_books, word_window
from .teacher import Teacher, TextTokens, pad_token_ids


@torch.no_grad()
def student_embeddings(model: LAMModel, tokens: TextTokens, texts: list[str], batch_size: int = 64,
                       max_tokens: int = 512) -> np.ndarray:
    """(N, d) normalised embeddings, in input order; batches of similar length."""
    ids = tokens(texts, max_tokens)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = np.zeros((len(ids), model.config.hidden_size), dtype=np.float32)
    was_training, form = model.training, model.form
    model.eval()
    model.form = "auto"
    try:
        for s in range(0, len(order), batch_size):
            rows = order[s:s + batch_size]
            out[rows] = model.embed(*pad_token_ids([ids[i] for i in rows])).numpy()
    finally:
        model.train(was_training)
        model.form = form
    return out


def student_stsb_spearman(model: LAMModel, tokens: TextTokens, split: str = "dev") -> float:
    first, second, gold = stsb_pairs(split)
    return spearman_of_cosine(student_embeddings(model, tokens, first), student_embeddings(model, tokens, second), gold)


def heldout_documents(count: int, words: int, seed: int = 0) -> list[str]:
    """`count` windows of `words` words from distinct held-out Gutenberg books."""
    rng = np.random.default_rng(seed)
    books = [b for b in load_books(heldout=True) if len(b.split()) > words]
    picks = rng.choice(len(books), size=count, replace=False)
    return [word_window(books[i], rng, words, words) for i in picks]


def chunk_agreement(encode, documents: list[str], teacher: Teacher, tokens: TextTokens, doc_tokens: int = 2000,
                    chunk_tokens: int = 256, seed: int = 0) -> dict:
    """Cosine of each document's embedding (encode: texts -> (N, d), truncating to doc_tokens) with
    the teacher's normalised mean of its chunk embeddings, against a random other document's."""
    targets = torch.stack([teacher.embed_long(ids, chunk_tokens) for ids in tokens(documents, doc_tokens)]).numpy()
    embeddings = np.asarray(encode(documents))
    embeddings = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    others = [(i + int(rng.integers(1, len(documents)))) % len(documents) for i in range(len(documents))]
    own = (embeddings * targets).sum(1)
    other = (embeddings * targets[others]).sum(1)
    return {"documents": len(documents), "own_cosine_mean": round(float(own.mean()), 4),
            "other_cosine_mean": round(float(other.mean()), 4), "own_closer_fraction": float((own > other).mean())}


def evaluate_student(model: LAMModel, teacher: Teacher, tokens: TextTokens, documents: int = 8) -> dict:
    """STS-B dev Spearman and the 2,000-token chunk agreement of an in-training student."""
    encode_long = lambda texts: student_embeddings(model, tokens, texts, batch_size=2, max_tokens=2000)  # noqa: E731
    return {"stsb_dev_spearman": round(student_stsb_spearman(model, tokens), 5),
            "chunk_agreement_2000": chunk_agreement(encode_long, heldout_documents(documents, 2000), teacher, tokens)}
