"""Training text: sentences, Wikipedia paragraphs and long passages from the shared data folder.

Batch n of a run depends only on (seed, n), so a resumed run sees exactly the batches an
uninterrupted one would, with no loader state to checkpoint.
"""

from __future__ import annotations

import csv
import gzip
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import datasets

# Every tenth Gutenberg book (by sorted title) is kept out of training for the long-document check.
HELDOUT_BOOK_EVERY = 10
MIN_PARAGRAPH_WORDS = 20


def _tsv_rows(path: Path, skip_header: bool) -> list[list[str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    return rows[1:] if skip_header else rows


def _jsonl(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def load_sentences(data_dir: Path | None = None) -> list[str]:
    """Unique sentences of Flickr30k captions, SNLI, Quora, MSRP train and STS-B train, sorted."""
    data_dir = datasets.data_dir(data_dir)
    texts = set()
    for row in _tsv_rows(data_dir / "corpus" / "captions_train.tsv.gz", skip_header=False):
        texts.update(row)
    for name, columns in (("snli_devtest.tsv", (0, 1)), ("quora_dev.tsv", (0, 1)), ("msrp_train.tsv", (3, 4))):
        for row in _tsv_rows(data_dir / "pairs" / name, skip_header=name != "quora_dev.tsv"):
            texts.update(row[c] for c in columns if c < len(row))
    for row in _tsv_rows(data_dir / "stsb" / "train.tsv", skip_header=True):
        texts.update(row[1:3])
    return sorted(t.strip() for t in texts if t.strip())


def load_wikipedia(data_dir: Path | None = None) -> list[str]:
    """Article texts of the Wikipedia extract, in file order."""
    data_dir = datasets.data_dir(data_dir)
    return [article["text"] for article in _jsonl(data_dir / "corpus" / "wikipedia.jsonl.gz")]


def wikipedia_paragraphs(articles: list[str]) -> list[str]:
    """Paragraphs of at least MIN_PARAGRAPH_WORDS words (section headings are dropped)."""
    return [line.strip() for text in articles for line in text.split("\n")
            if len(line.split()) >= MIN_PARAGRAPH_WORDS]


def load_books(data_dir: Path | None = None, heldout: bool = False) -> list[str]:
    """Gutenberg book texts sorted by title: the training ones, or with `heldout` the evaluation ones."""
    data_dir = datasets.data_dir(data_dir)
    books = sorted(_jsonl(data_dir / "longdocs" / "gutenberg.jsonl.gz"), key=lambda b: b["title"])
    return [b["text"] for i, b in enumerate(books) if (i % HELDOUT_BOOK_EVERY == HELDOUT_BOOK_EVERY - 1) == heldout]


def word_window(text: str, rng: np.random.Generator, min_words: int, max_words: int) -> str:
    """A random run of min_words..max_words consecutive words of `text` (all of it if shorter)."""
    words = text.split()
    size = int(rng.integers(min_words, max_words + 1))
    start = int(rng.integers(0, max(1, len(words) - size + 1)))
    return " ".join(words[start:start + size])


@dataclass
class TextMix:
    """Short texts (sentences, paragraphs) and long sources (articles, books) to draw batches from."""

    sentences: list[str]
    paragraphs: list[str]
    long_sources: list[str]

    @classmethod
    def load(cls, data_dir: Path | None = None, min_long_words: int = 400) -> "TextMix":
        articles = load_wikipedia(data_dir)
        long_articles = [a for a in articles if len(a.split()) >= min_long_words]
        return cls(load_sentences(data_dir), wikipedia_paragraphs(articles), long_articles + load_books(data_dir))

    @classmethod
    def short_texts(cls, data_dir: Path | None = None) -> "TextMix":
        """Sentences and the paragraphs of the training side of the long-document split only."""
        _, articles = long_split(data_dir, "train")
        return cls(load_sentences(data_dir), wikipedia_paragraphs(articles), [])

    def batch(self, seed: int, step: int, batch_size: int, long_fraction: float = 0.0,
              paragraph_fraction: float = 0.3, long_batch_size: int = 2,
              long_words: tuple[int, int] = (200, 2500)) -> tuple[list[str], bool]:
        """(texts, whether they are long passages) of batch `step`: a whole batch is long passages
        with probability `long_fraction`, otherwise each text is a paragraph with probability
        `paragraph_fraction`, else a sentence."""
        rng = np.random.default_rng([seed, step])
        if rng.random() < long_fraction:
            sources = rng.integers(0, len(self.long_sources), long_batch_size)
            return [word_window(self.long_sources[i], rng, *long_words) for i in sources], True
        is_paragraph = rng.random(batch_size) < paragraph_fraction
        return [self.paragraphs[rng.integers(len(self.paragraphs))] if p else self.sentences[rng.integers(len(self.sentences))]
                for p in is_paragraph], False


# The long-document split, by index in title order. Test: every fifth book (a superset of the
# tenth held out above) and every tenth Wikipedia article, for `lam compare --long`. Validation
# (checkpoint choice during training): books 2 mod 5 and articles 4 mod 10. Train: the rest.
LONG_SPLITS = ("train", "validation", "test")
_BOOK_SPLIT = {4: "test", 2: "validation"}
_ARTICLE_SPLIT = {9: "test", 4: "validation"}


def load_titled(path: Path) -> list[dict]:
    """Records of a {"title", "text"} JSON-lines file, sorted by title."""
    return sorted(_jsonl(path), key=lambda record: record["title"])


def long_split(data_dir: Path | None = None, split: str = "train") -> tuple[list[str], list[str]]:
    """(books, Wikipedia articles) of one side ("train", "validation" or "test") of the long-document split."""
    data_dir = datasets.data_dir(data_dir)
    if split not in LONG_SPLITS:
        raise ValueError(f"split must be one of {LONG_SPLITS}, got {split!r}")
    books = load_titled(data_dir / "longdocs" / "gutenberg.jsonl.gz")
    articles = load_titled(data_dir / "corpus" / "wikipedia.jsonl.gz")
    return ([b["text"] for i, b in enumerate(books) if _BOOK_SPLIT.get(i % 5, "train") == split],
            [a["text"] for i, a in enumerate(articles) if _ARTICLE_SPLIT.get(i % 10, "train") == split])


def long_eval_documents(data_dir: Path | None = None, split: str = "test", min_article_words: int = 1000) -> list[str]:
    """Candidates of the known-item task: the split's books, then its articles of at least
    `min_article_words` words."""
    books, articles = long_split(data_dir, split)
    return books + [a for a in articles if len(a.split()) >= min_article_words]
