"""Stage 3, long documents: a document's embedding is found by passages from any part of it.

Each step draws documents from the training side of the long-document split (windows of
Gutenberg books, Wikipedia articles) and, for each, a 3-sentence passage: from inside the
document view, or (for books) from elsewhere in the same book, so that the embedding has to
carry what identifies the book (its people, places and style), not only the words it shares
with the passage. Loss: symmetric InfoNCE over the batch's passages and documents (every other
document is a negative), plus stage 2's distillation loss on short texts so that short-text
quality is kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..benchmarking.long_tasks import passage_at
from ..chunking import sentence_starts
from .data import TextMix, long_split
from .stage2 import embedding_loss
from .teacher import Teacher, TextTokens, pad_token_ids

_WORD = re.compile(r"\S+")
WORDS_PER_TOKEN = 0.75  # about 1.3 WordPiece tokens per English word in this data


@dataclass
class LongDocuments:
    """Training-side books and Wikipedia articles of at least `min_article_words` words."""

    books: list[str]
    articles: list[str]

    @classmethod
    def load(cls, data_dir, min_article_words: int = 400) -> "LongDocuments":
        books, articles = long_split(data_dir, "train")
        return cls(books, [a for a in articles if len(a.split()) >= min_article_words])

    def pairs(self, seed: int, step: int, count: int, doc_tokens: int, book_fraction: float = 0.5,
              outside_fraction: float = 0.5) -> tuple[list[str], list[str]]:
        """(documents, passages) of step `step`: `count` distinct sources, each a view of about
        `doc_tokens` tokens and a passage from it (or, for books, with probability
        `outside_fraction`, from elsewhere in the same book)."""
        rng = np.random.default_rng([seed, step, 3])
        documents, passages = [], []
        used = set()
        while len(documents) < count:
            is_book = rng.random() < book_fraction
            pool = self.books if is_book else self.articles
            index = int(rng.integers(len(pool)))
            if (is_book, index) in used:
                continue
            text = pool[index]
            words = int(doc_tokens * WORDS_PER_TOKEN)
            view = _word_span(text, rng, words)
            outside = is_book and rng.random() < outside_fraction
            source = _outside(text, view, rng) if outside else view
            passage = _random_passage(text, source, rng)
            if passage is None:
                continue
            used.add((is_book, index))
            documents.append(text[view[0]:view[1]])
            passages.append(passage)
        return documents, passages


def _word_span(text: str, rng: np.random.Generator, words: int) -> tuple[int, int]:
    """Character span of a random run of `words` whitespace-separated words (all of a shorter text)."""
    starts = [m.start() for m in _WORD.finditer(text)]
    if len(starts) <= words:
        return 0, len(text)
    first = int(rng.integers(0, len(starts) - words))
    return starts[first], starts[first + words]


def _outside(text: str, view: tuple[int, int], rng: np.random.Generator) -> tuple[int, int]:
    """The longer of the parts of `text` before and after `view` (the view itself if neither is long)."""
    before, after = (0, view[0]), (view[1], len(text))
    part = max(before, after, key=lambda span: span[1] - span[0])
    return part if part[1] - part[0] > 2000 else view


def _random_passage(text: str, span: tuple[int, int], rng: np.random.Generator) -> str | None:
    """A 3-sentence passage starting at a random place within text[span], ending inside it."""
    starts = sentence_starts(text[span[0]:span[1]])
    if len(starts) < 5:
        return None
    char = int(rng.integers(0, max(1, int(starts[-4]))))
    found = passage_at(text[span[0]:span[1]], starts, char)
    return None if found is None else found[0]


def info_nce(queries: torch.Tensor, documents: torch.Tensor, temperature: float) -> tuple[torch.Tensor, dict]:
    """Symmetric InfoNCE of normalised (B, d) queries and documents; pair i is the positive of row i."""
    logits = queries @ documents.T / temperature
    labels = torch.arange(len(queries))
    loss = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
    accuracy = (logits.argmax(1) == labels).float().mean().item()
    return loss, {"in_batch_accuracy": round(accuracy, 3)}


@dataclass
class LongCurriculum:
    """Document length in tokens and documents per batch, by step: lengths double at each stage."""

    stages: tuple[tuple[int, int, int], ...]  # (first step, tokens per document, documents per batch)

    @classmethod
    def parse(cls, text: str) -> "LongCurriculum":
        """'0:512:16,200:2048:8' -> stages from step 0 at 512 tokens x 16, from step 200 at 2048 x 8."""
        stages = tuple(tuple(int(x) for x in part.split(":")) for part in text.split(","))
        if not stages or stages[0][0] != 0 or any(len(s) != 3 for s in stages):
            raise ValueError(f"curriculum must look like '0:512:16,200:2048:8', got {text!r}")
        return cls(stages)

    def at(self, step: int) -> tuple[int, int]:
        current = self.stages[0]
        for stage in self.stages:
            if step >= stage[0]:
                current = stage
        return current[1], current[2]


def long_contrastive_loss(model, teacher: Teacher, tokens: TextTokens, documents: LongDocuments, mix: TextMix,
                          seed: int, curriculum: LongCurriculum, temperature: float, short_batch_size: int,
                          max_tokens: int, distill_weight: float, similarity_weight: float):
    """step -> (loss, log numbers): InfoNCE of passages against documents plus short-text distillation."""
    def step_loss(step: int):
        doc_tokens, count = curriculum.at(step)
        texts, passages = documents.pairs(seed, step, count, doc_tokens)
        doc_ids = tokens(texts, doc_tokens)
        passage_embeddings = model.embed(*pad_token_ids(tokens(passages, max_tokens)))
        document_embeddings = model.embed(*pad_token_ids(doc_ids))
        contrastive, extra = info_nce(passage_embeddings, document_embeddings, temperature)
        short, _ = mix.batch(seed, step, short_batch_size)
        short_ids = tokens(short, max_tokens)
        distill, distill_extra = embedding_loss(model.embed(*pad_token_ids(short_ids)), teacher.targets(short_ids),
                                                similarity_weight)
        loss = contrastive + distill_weight * distill
        return loss, {"contrastive": round(contrastive.item(), 4), "distill": round(distill.item(), 5), **extra,
                      **distill_extra, "doc_tokens": int(sum(len(i) for i in doc_ids))}
    return step_loss
