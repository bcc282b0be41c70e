"""`lam compare --long`: long-document retrieval of LAM models against the chunking workarounds.

Tasks (`lam.benchmarking.long_tasks`): passkey and needle retrieval at 256 ... 32,768 tokens
(accuracy@1), known-item retrieval over held-out books and Wikipedia articles (accuracy@1 and
nDCG@10 by query depth), and passage retrieval among the chunks of the same documents with
contextual (one pass over the document) against independently encoded chunks.

Systems: every LAM model and backend on the whole document; all-MiniLM-L6-v2 truncated to 256
and to 512 tokens; and its chunk mean (the normalised mean of its normalised 256-token chunk
embeddings), the usual workaround for long documents. Besides these one-vector-per-document
systems, two that keep one vector per chunk and score a document by its best chunk: each LAM's
contextual chunks (`encode_chunks`, one pass over the document) and MiniLM's independent
256-token chunks (those of the chunk mean).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .long_tasks import (DEPTH_BANDS, MAX_DOCUMENT_TOKENS, RetrievalTask, known_item_task, needle_task,
                         leading_tokens, passkey_task, plain_tokenizer, rank_of_relevant, retrieval_scores)

CHUNK_TOKENS = 256


@dataclass
class LongSettings:
    models: tuple[str, ...] = ("LAM-base-v1", "LAM-long-v1")
    backends: tuple[str, ...] = ("torch", "jax")
    lengths: tuple[int, ...] = (256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
    passkey_candidates: int = 20
    needle_candidates: int = 16
    books: int | None = None          # held-out books in the known-item task (None: all)
    articles: int | None = None       # held-out Wikipedia articles (None: all of >= 1,000 words)
    chunk_documents: int = 24         # documents whose chunks form the passage-retrieval pool
    document_tokens: int = MAX_DOCUMENT_TOKENS  # each held-out document is cut to its first this many tokens
    seed: int = 0

    @classmethod
    def short(cls, **overrides) -> "LongSettings":
        """The setting of the default `lam compare` run: about two minutes on 2 cores, not an hour
        (one book cut to 8,192 tokens and 10 articles: a small, noisy sample)."""
        fields = dict(backends=("torch",), lengths=(256, 2048), passkey_candidates=6, needle_candidates=6,
                      books=1, articles=10, chunk_documents=2, document_tokens=8192)
        fields.update(overrides)
        return cls(**fields)


class TeacherSystems:
    """all-MiniLM-L6-v2 through sentence-transformers: truncated at 256 or 512 tokens, or chunk-mean."""

    def __init__(self):
        from sentence_transformers import SentenceTransformer

        from ..teacher import teacher_dir

        self.model = SentenceTransformer(str(teacher_dir()), device="cpu")
        self.tokenizer = plain_tokenizer(teacher_dir() / "tokenizer.json")
        self._chunks: dict[tuple[str, int], np.ndarray] = {}

    def truncated(self, texts: list[str], tokens: int) -> np.ndarray:
        self.model.max_seq_length = tokens
        return np.asarray(self.model.encode(texts, batch_size=16, convert_to_numpy=True))

    def chunk_embeddings(self, texts: list[str], tokens: int = CHUNK_TOKENS) -> list[np.ndarray]:
        """Per text, the (chunks, d) normalised embeddings of its consecutive `tokens`-token pieces
        ([CLS] and [SEP] included in the count) of its first 32,768 tokens; memoised per text."""
        self.model.max_seq_length = tokens
        width = tokens - 2
        out = []
        for text in texts:
            if (text, tokens) not in self._chunks:
                encoding = self.tokenizer.encode(text, add_special_tokens=False)
                starts = [s for s, _ in encoding.offsets[:MAX_DOCUMENT_TOKENS]]
                ends = [e for _, e in encoding.offsets[:MAX_DOCUMENT_TOKENS]]
                pieces = [text[starts[i]:ends[min(i + width, len(ends)) - 1]]
                          for i in range(0, len(starts), width)] or [""]
                self._chunks[(text, tokens)] = np.asarray(self.model.encode(pieces, batch_size=32, convert_to_numpy=True))
            out.append(self._chunks[(text, tokens)])
        return out

    def chunk_mean(self, texts: list[str], tokens: int = CHUNK_TOKENS) -> np.ndarray:
        """Normalised mean of each text's `chunk_embeddings`."""
        means = np.stack([chunks.mean(0) for chunks in self.chunk_embeddings(texts, tokens)])
        return means / np.linalg.norm(means, axis=1, keepdims=True)


def lam_systems(settings: LongSettings) -> tuple[dict, dict]:
    """'<model>/<backend>' -> LAM, and the load errors of those that failed."""
    import warnings

    from .. import LAM

    systems, errors = {}, {}
    for model in settings.models:
        for backend in settings.backends:
            name = f"{model}/{backend}"
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    systems[name] = LAM(model, backend=backend, fallback=False)
            except Exception as err:  # noqa: BLE001 - reported, the run goes on
                errors[name] = f"{type(err).__name__}: {err}"
    return systems, errors


def document_encoders(lams: dict, teacher: TeacherSystems | None) -> dict:
    """System name -> (encode documents, encode queries). Queries: texts -> (N, d); documents:
    texts -> (N, d), or a list of N (chunks, d) arrays for the best-chunk systems."""
    encoders = {}
    for name, model in lams.items():
        def query(texts, model=model):
            return np.asarray(model.encode(texts, batch_size=32))

        def whole(texts, model=model):
            return np.asarray(model.encode(texts, batch_size=4))

        def chunks(texts, model=model):
            return [doc.embeddings for doc in model.encode_chunks(texts, chunk_tokens=CHUNK_TOKENS, batch_size=1)]
        encoders[name] = (whole, query)
        encoders[f"{name} best chunk"] = (chunks, query)
    if teacher is not None:
        def teacher_query(texts):
            return teacher.truncated(texts, 512)
        encoders["minilm-trunc256"] = (lambda texts: teacher.truncated(texts, 256), teacher_query)
        encoders["minilm-trunc512"] = (lambda texts: teacher.truncated(texts, 512), teacher_query)
        encoders["minilm-chunkmean256"] = (teacher.chunk_mean, teacher_query)
        encoders["minilm-chunkmax256"] = (teacher.chunk_embeddings, teacher_query)
    return encoders


def score_task(task: RetrievalTask, encoders: dict, by_band: bool) -> dict:
    """Per system: overall scores, per-band scores if `by_band`, and seconds spent encoding."""
    relevant = np.array([q.document for q in task.queries])
    bands = np.array([task.band_of(q) for q in task.queries])
    result = {}
    for name, (encode_documents, encode_queries) in encoders.items():
        began = time.perf_counter()
        documents = encode_documents(task.documents)
        queries = encode_queries([q.text for q in task.queries])
        ranks = rank_of_relevant(queries, documents, relevant)
        row = {"all": retrieval_scores(ranks), "seconds": round(time.perf_counter() - began, 1)}
        if by_band:
            row["bands"] = {band: retrieval_scores(ranks[bands == band]) for band in _band_names() if (bands == band).any()}
        result[name] = row
    return result


def _band_names() -> list[str]:
    return [f"{lo}-{hi}" for lo, hi in DEPTH_BANDS]


def synthetic_scores(encoders: dict, settings: LongSettings, filler: list[str], tokenizer) -> dict:
    """{"passkey"|"needle": {str(length): {system: accuracy@1}}}."""
    out = {"passkey": {}, "needle": {}}
    for length in settings.lengths:
        for kind, build, candidates in (("passkey", passkey_task, settings.passkey_candidates),
                                        ("needle", needle_task, settings.needle_candidates)):
            task = build(filler, tokenizer, length, candidates, settings.seed)
            scores = score_task(task, encoders, by_band=False)
            out[kind][str(length)] = {name: row["all"]["accuracy_at_1"] for name, row in scores.items()}
    return out


def chunk_retrieval(lams: dict, teacher: TeacherSystems | None, task: RetrievalTask, documents: int) -> dict:
    """Passage retrieval among all chunks (whole sentences, at most 256 tokens) of the first
    `documents` documents; the relevant chunk is the one holding the middle of the query passage.
    Each LAM model's chunks come from `encode_chunks`, and the same character spans are then
    encoded one by one, so contextual and independent embeddings differ only in what they read."""
    docs = task.documents[:documents]
    wanted = [(q.text, q.document) for q in task.queries if q.document < documents]
    result = {"documents": len(docs), "systems": {}}
    teacher_rows = None
    for name, model in lams.items():
        chunked = model.encode_chunks(docs, chunk_tokens=CHUNK_TOKENS, batch_size=1)
        spans = [(owner, start, end) for owner, doc in enumerate(chunked) for start, end in doc.spans]
        queries, relevant = _relevant_chunks(wanted, docs, spans)
        texts = [docs[owner][start:end] for owner, start, end in spans]
        query_embeddings = np.asarray(model.encode(queries, batch_size=32))
        contextual = np.concatenate([doc.embeddings for doc in chunked])
        independent = np.asarray(model.encode(texts, batch_size=32))
        result["systems"][f"{name} contextual"] = retrieval_scores(rank_of_relevant(query_embeddings, contextual, relevant))
        result["systems"][f"{name} independent"] = retrieval_scores(rank_of_relevant(query_embeddings, independent, relevant))
        result.update(chunks=len(spans), queries=len(queries))
        teacher_rows = teacher_rows or (queries, relevant, texts)
    if teacher is not None and teacher_rows is not None:
        queries, relevant, texts = teacher_rows
        independent = teacher.truncated(texts, CHUNK_TOKENS)
        result["systems"]["minilm independent"] = retrieval_scores(
            rank_of_relevant(teacher.truncated(queries, 512), independent, relevant))
    return result


def _relevant_chunks(wanted: list[tuple[str, int]], docs: list[str], spans: list[tuple[int, int, int]]):
    """The queries whose passage middle falls inside a chunk, and that chunk's row in `spans`."""
    queries, relevant = [], []
    for text, owner in wanted:
        # Passages are whitespace-normalised: find them in the document with any whitespace between words.
        found = re.search(r"\s+".join(map(re.escape, text.split())), docs[owner])
        if found is None:
            continue
        middle = (found.start() + found.end()) // 2
        hits = [row for row, (o, start, end) in enumerate(spans) if o == owner and start <= middle < end]
        if hits:
            queries.append(text)
            relevant.append(hits[0])
    return queries, np.array(relevant, dtype=int)


def run_long(settings: LongSettings, progress=print) -> dict:
    """Every long-document task for every system; a JSON-ready report."""
    from ..teacher import teacher_dir
    from ..training.data import long_split

    tokenizer = plain_tokenizer(teacher_dir() / "tokenizer.json")
    lams, errors = lam_systems(settings)
    try:
        teacher = TeacherSystems()
    except Exception as err:  # noqa: BLE001
        teacher, errors["minilm"] = None, f"{type(err).__name__}: {err}"
    encoders = document_encoders(lams, teacher)
    books, articles = long_split(split="test")
    long_articles = [a for a in articles if len(a.split()) >= 1000]
    books, long_articles = books[: settings.books], long_articles[: settings.articles]
    documents = [leading_tokens(tokenizer, text, settings.document_tokens) for text in books + long_articles]
    report = {"settings": {k: str(v) for k, v in vars(settings).items()}, "load_errors": errors}

    progress(f"known-item retrieval: {len(documents)} held-out documents")
    task = known_item_task(documents, tokenizer, seed=settings.seed, max_tokens=settings.document_tokens)
    report["known_item"] = {"documents": len(documents), "books": len(books), "document_tokens": settings.document_tokens,
                            "queries": len(task.queries), "systems": score_task(task, encoders, by_band=True)}
    progress("passkey and needle retrieval")
    filler = [p for a in articles for p in a.split("\n") if len(p.split()) >= 20]
    report["synthetic"] = synthetic_scores(encoders, settings, filler, tokenizer)
    progress("contextual against independent chunks")
    report["chunks"] = chunk_retrieval(lams, teacher, task, settings.chunk_documents)
    return report


def format_long_table(report: dict) -> str:
    """The long-document report as plain-text tables."""
    lines = []
    if report.get("load_errors"):
        lines.append(f"could not load: {report['load_errors']}")
    known = report["known_item"]
    bands = _band_names()
    lines.append(f"\nknown-item retrieval: {known['queries']} passages as queries, {known['documents']} held-out "
                 f"documents ({known['books']} books; first {known.get('document_tokens', MAX_DOCUMENT_TOKENS):,} tokens) "
                 "as candidates; accuracy@1 x 100 by query depth (tokens)")
    lines.append(f"  {'system':<30}" + "".join(f"{b:>13}" for b in bands) + f"{'all':>8}{'nDCG@10':>9}{'seconds':>9}")
    for name, row in known["systems"].items():
        cells = "".join(f"{row['bands'][b]['accuracy_at_1']:>13.1f}" if b in row["bands"] else f"{'-':>13}" for b in bands)
        lines.append(f"  {name:<30}{cells}{row['all']['accuracy_at_1']:>8.1f}{row['all']['ndcg_at_10']:>9.1f}"
                     f"{row['seconds']:>9.0f}")
    if "minilm-chunkmax256" in known["systems"]:
        lines.append("  (minilm-chunkmax256 scores the chunks embedded for minilm-chunkmean256: its seconds are scoring only)")
    for kind in ("passkey", "needle"):
        table = report["synthetic"][kind]
        lengths = list(table)
        lines.append(f"\n{kind} retrieval, accuracy@1 x 100 by document length (tokens)")
        lines.append(f"  {'system':<30}" + "".join(f"{length:>8}" for length in lengths))
        for name in next(iter(table.values())):
            lines.append(f"  {name:<30}" + "".join(f"{table[length][name]:>8.1f}" for length in lengths))
    chunks = report["chunks"]
    lines.append(f"\npassage retrieval among {chunks.get('chunks', 0)} chunks of {chunks['documents']} documents "
                 f"({chunks.get('queries', 0)} queries): contextual (one pass over the document) vs independent chunks")
    for name, row in chunks["systems"].items():
        lines.append(f"  {name:<36} accuracy@1 {row['accuracy_at_1']:6.1f}   nDCG@10 {row['ndcg_at_10']:6.1f}")
    return "\n".join(lines)


def plot_long(report: dict, path: Path) -> None:
    """Two panels: known-item accuracy@1 by depth band; passkey and needle accuracy@1 by length."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (depth_axes, length_axes) = plt.subplots(1, 2, figsize=(12, 4.5))
    bands = _band_names()
    systems = list(report["known_item"]["systems"])
    palette = plt.get_cmap("tab10" if len(systems) <= 10 else "tab20")
    color = {name: palette(i % palette.N) for i, name in enumerate(systems)}  # one colour per system, both panels
    for name, row in report["known_item"]["systems"].items():
        present = [b for b in bands if b in row["bands"]]
        depth_axes.plot([bands.index(b) for b in present], [row["bands"][b]["accuracy_at_1"] for b in present],
                        marker="o", label=name, color=color[name])
    depth_axes.set_xticks(range(len(bands)), bands)
    depth_axes.set_xlabel("depth of the query passage in its document (tokens)")
    depth_axes.set_ylabel("accuracy@1 (%)")
    depth_axes.set_title("Known-item retrieval over held-out long documents")
    for kind, style in (("passkey", "-"), ("needle", "--")):
        table = report["synthetic"][kind]
        lengths = [int(x) for x in table]
        for name in next(iter(table.values())):
            length_axes.plot(lengths, [table[str(x)][name] for x in lengths], style, marker="o",
                             label=f"{name} {kind}", color=color.get(name))
    length_axes.set_xscale("log", base=2)
    length_axes.set_xlabel("document length (tokens)")
    length_axes.set_ylabel("accuracy@1 (%)")
    length_axes.set_title("Passkey (solid) and needle (dashed) retrieval")
    for axes in (depth_axes, length_axes):
        axes.grid(True, alpha=0.3)
        axes.set_ylim(-2, 102)
    depth_axes.legend(fontsize=7)
    length_axes.legend(fontsize=6, ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
