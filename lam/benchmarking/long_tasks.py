"""Long-document retrieval tasks built from the shared data, deterministic and seeded.

- **Known item**: a 3-sentence passage from a held-out document is the query; every held-out
  document (Gutenberg books and Wikipedia articles, up to 32,768 tokens each) is a candidate;
  the passage's own document is the one relevant answer. Queries are grouped by depth: the
  token offset at which the passage starts.
- **Passkey** and **needle** (after the LongEmbed protocol, arXiv 2404.12096, built here from
  our own text): candidates are documents of one length that share a haystack and differ only
  in the fact inserted into them; each query asks for one document's fact.

No public benchmark file is read: every text comes from `shared/data` via `lam.training.data`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..chunking import best_chunk_scores, sentence_starts

DEPTH_BANDS = ((0, 1024), (1024, 4096), (4096, 16384), (16384, 32768))
MAX_DOCUMENT_TOKENS = 32768
PASSAGE_SENTENCES = 3
PASSAGE_WORDS = (20, 120)


@dataclass(frozen=True)
class Query:
    """A query text, the index of its relevant document, and the token depth it was drawn from."""

    text: str
    document: int
    depth: int


@dataclass
class RetrievalTask:
    """Candidates and queries of one retrieval task; `group` names the query groups (e.g. depth bands)."""

    name: str
    documents: list[str]
    queries: list[Query]

    def band_of(self, query: Query) -> str:
        for lo, hi in DEPTH_BANDS:
            if lo <= query.depth < hi:
                return f"{lo}-{hi}"
        return f"{DEPTH_BANDS[-1][1]}+"


def passage_at(text: str, starts: np.ndarray, char: int, sentences: int = PASSAGE_SENTENCES,
               words: tuple[int, int] = PASSAGE_WORDS, tries: int = 20) -> tuple[str, int] | None:
    """The first run of `sentences` sentences starting at or after `char` whose word count lies in
    `words`, as (whitespace-normalised text, start offset); None if none within `tries` starts."""
    first = int(np.searchsorted(starts, char))
    for i in range(first, min(first + tries, len(starts) - sentences)):
        passage = " ".join(text[starts[i]:starts[i + sentences]].split())
        if words[0] <= len(passage.split()) <= words[1]:
            return passage, int(starts[i])
    return None


def plain_tokenizer(tokenizer_file) -> "tokenizers.Tokenizer":  # noqa: F821
    """The WordPiece tokenizer of `tokenizer_file` without padding or truncation."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def token_offsets(tokenizer, text: str, max_tokens: int = MAX_DOCUMENT_TOKENS) -> np.ndarray:
    """Start character of each of the first `max_tokens` WordPiece tokens of `text` (no specials;
    `tokenizer` from `plain_tokenizer`)."""
    encoding = tokenizer.encode(text, add_special_tokens=False)
    return np.array([start for start, _ in encoding.offsets[:max_tokens]], dtype=np.int64)


def leading_tokens(tokenizer, text: str, max_tokens: int) -> str:
    """`text` up to the end of its `max_tokens`-th WordPiece token (all of it when shorter)."""
    ends = [end for _, end in tokenizer.encode(text, add_special_tokens=False).offsets]
    return text if len(ends) <= max_tokens else text[: ends[max_tokens - 1]]


def known_item_task(documents: list[str], tokenizer, queries_per_band: tuple[int, ...] = (2, 2, 4, 4),
                    seed: int = 0, bands=DEPTH_BANDS, max_tokens: int = MAX_DOCUMENT_TOKENS) -> RetrievalTask:
    """Known-item retrieval over `documents`: up to `queries_per_band[i]` passages per document in
    depth band i, drawn where the whole passage lies within the document's first `max_tokens` tokens."""
    rng = np.random.default_rng(seed)
    queries = []
    for index, text in enumerate(documents):
        offsets = token_offsets(tokenizer, text, max_tokens)
        # Characters readable within the token budget; a passage must end before this.
        readable = len(text) if len(offsets) < max_tokens else int(offsets[-1])
        starts = sentence_starts(text)
        for (lo, hi), count in zip(bands, queries_per_band):
            top = min(hi, len(offsets) - 200)
            if top <= lo:
                continue
            for depth in np.sort(rng.integers(lo, top, size=count)):
                found = passage_at(text, starts, int(offsets[depth]))
                if found is None:
                    continue
                passage, start = found
                end = start + len(passage)  # an upper bound: whitespace was collapsed
                if end > readable:
                    continue
                token_depth = int(np.searchsorted(offsets, start))
                if lo <= token_depth < hi:
                    queries.append(Query(passage, index, token_depth))
    return RetrievalTask("known_item", list(documents), queries)


# -- synthetic tasks (LongEmbed protocol, own text) ----------------------------------------

_FIRST_NAMES = ("Alice Bruno Carmen Dmitri Elena Farid Greta Hiro Ines Jonas Kofi Lena Marco Nadia Oskar Priya "
                "Quentin Rosa Sven Tamar Umberto Vera Wes Ximena Yusuf Zoe").split()


def _haystack(filler: list[str], tokenizer, tokens: int, rng: np.random.Generator) -> list[str]:
    """Paragraphs of `filler` in a random order, as many as fit in `tokens` tokens."""
    parts, count = [], 0
    for i in rng.permutation(len(filler)):
        n = len(tokenizer.encode(filler[i], add_special_tokens=False).ids)
        if count + n > tokens:
            break
        parts.append(filler[i])
        count += n
    return parts


def _insert(parts: list[str], sentence: str, fraction: float) -> str:
    position = int(round(fraction * len(parts)))
    return " ".join(parts[:position] + [sentence] + parts[position:])


def passkey_task(filler: list[str], tokenizer, length: int, candidates: int = 20, seed: int = 0) -> RetrievalTask:
    """`candidates` documents of about `length` tokens: one haystack, each with a different
    person's five-digit pass key inserted at a random depth. Query: that person's pass key."""
    rng = np.random.default_rng([seed, length])
    parts = _haystack(filler, tokenizer, max(length - 40, 8), rng)
    names = rng.choice(_FIRST_NAMES, size=candidates, replace=False)
    documents, queries = [], []
    for index, name in enumerate(names):
        key = int(rng.integers(10000, 100000))
        fact = f"{name}'s pass key is {key}. Remember it. {key} is the pass key of {name}."
        documents.append(_insert(parts, fact, float(rng.random())))
        queries.append(Query(f"What is the pass key of {name}?", index, length))
    return RetrievalTask(f"passkey_{length}", documents, queries)


_NEEDLES = (
    ("The best thing to do in {city} is to eat a {food} sandwich while sitting in {park} on a sunny day.",
     "What is the best thing to do in {city}?"),
)
_CITIES = "Lisbon Oslo Nairobi Lima Hanoi Quebec Tbilisi Porto Dakar Cusco Bergen Kyoto Tallinn Seville Accra Perth".split()
_FOODS = "mango fig lentil pickle walnut pumpkin radish apricot olive cucumber".split()
_PARKS = "Dolores Park,the Botanic Garden,Central Square,the Old Harbour,Riverside Park,the Castle Gardens".split(",")


def needle_task(filler: list[str], tokenizer, length: int, candidates: int = 16, seed: int = 0) -> RetrievalTask:
    """`candidates` documents of about `length` tokens: one haystack, each with a needle sentence
    about a different city inserted at a random depth. Query: the question the needle answers."""
    rng = np.random.default_rng([seed, length, 1])
    parts = _haystack(filler, tokenizer, max(length - 40, 8), rng)
    cities = rng.choice(_CITIES, size=candidates, replace=False)
    template, question = _NEEDLES[0]
    documents, queries = [], []
    for index, city in enumerate(cities):
        needle = template.format(city=city, food=rng.choice(_FOODS), park=rng.choice(_PARKS))
        documents.append(_insert(parts, needle, float(rng.random())))
        queries.append(Query(question.format(city=city), index, length))
    return RetrievalTask(f"needle_{length}", documents, queries)


# -- scoring --------------------------------------------------------------------------------

def similarity(query_embeddings: np.ndarray, documents) -> np.ndarray:
    """(Q, N) cosine similarity of each query to each document. `documents` is an (N, d) array of
    one vector per document, or a list of N (chunks, d) arrays: a document then scores its best chunk."""
    q = query_embeddings / np.linalg.norm(query_embeddings, axis=1, keepdims=True)
    if isinstance(documents, np.ndarray):
        return q @ (documents / np.linalg.norm(documents, axis=1, keepdims=True)).T
    return best_chunk_scores(q, [c / np.linalg.norm(c, axis=1, keepdims=True) for c in documents])[0]


def rank_of_relevant(query_embeddings: np.ndarray, documents, relevant: np.ndarray) -> np.ndarray:
    """1-based rank of each query's relevant document under `similarity` (ties count against)."""
    scores = similarity(query_embeddings, documents)
    own = scores[np.arange(len(scores)), relevant]
    return (scores >= own[:, None]).sum(1)


def retrieval_scores(ranks: np.ndarray) -> dict:
    """accuracy@1 and nDCG@10 (one relevant document per query), both x 100."""
    ndcg = np.where(ranks <= 10, 1.0 / np.log2(ranks + 1), 0.0)
    return {"queries": int(len(ranks)), "accuracy_at_1": round(100 * float((ranks == 1).mean()), 2),
            "ndcg_at_10": round(100 * float(ndcg.mean()), 2)}
