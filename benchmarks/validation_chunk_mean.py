"""The teacher's bar on the validation side of the long-document split, for stage 3.

    python benchmarks/validation_chunk_mean.py --features runs/long-features-validation

Rebuilds the documents and known-item queries that `python -m lam.training features --split
validation` cached (checking they are the cached ones), cuts each document to the cached length,
and prints accuracy@1 by depth band for all-MiniLM-L6-v2's mean over 256-token chunks, its best
chunk (a document scored by its best-matching chunk) and its 512-token truncation: the numbers
`lam distill stage3 --validation` (eval.json) is compared with.
Uses only the validation side; the test side stays for `benchmarks/long_retrieval.py`.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=Path, required=True, help="the validation feature directory")
    parser.add_argument("--articles", type=int, default=60, help="as given to `features` (default: %(default)s)")
    parser.add_argument("--queries-per-band", default="2,2,4,4", help="as given to `features`")
    parser.add_argument("--seed", type=int, default=0, help="as given to `features`")
    parser.add_argument("--max-document-tokens", type=int, default=16384, help="as given to `features`")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    from lam.benchmarking.long_compare import TeacherSystems
    from lam.benchmarking.long_tasks import DEPTH_BANDS, known_item_task, leading_tokens, plain_tokenizer, similarity
    from lam.teacher import teacher_dir
    from lam.training.data import long_split

    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    cached = np.array(json.loads((args.features / "queries.json").read_text()), dtype=np.int64).reshape(-1, 2)
    books, articles = long_split(None, "validation")
    documents = books + [a for a in articles if len(a.split()) >= 1000][: args.articles]
    tokenizer = plain_tokenizer(teacher_dir() / "tokenizer.json")
    task = known_item_task(documents, tokenizer, tuple(int(x) for x in args.queries_per_band.split(",")),
                           seed=args.seed, max_tokens=args.max_document_tokens)
    pairs = np.array([[q.document, q.depth] for q in task.queries], dtype=np.int64).reshape(-1, 2)
    if pairs.shape != cached.shape or not (pairs == cached).all():
        raise SystemExit(f"these are not the cached queries of {args.features}: pass the `features` arguments used")
    print(f"{len(documents)} documents, {len(pairs)} queries (the cached ones)")
    documents = [leading_tokens(tokenizer, d, args.max_document_tokens) for d in documents]
    teacher = TeacherSystems()
    queries = teacher.truncated([q.text for q in task.queries], 512)
    systems = {"MiniLM chunk mean (256-token chunks)": teacher.chunk_mean(documents),
               "MiniLM best chunk (the same chunks)": teacher.chunk_embeddings(documents),
               "MiniLM truncated to 512 tokens": teacher.truncated(documents, 512)}
    depth = pairs[:, 1]
    for name, embedded in systems.items():
        scores = similarity(queries, embedded)
        first = (scores > scores[np.arange(len(queries)), pairs[:, 0]][:, None]).sum(1) == 0
        bands = [f"{lo}-{hi}: {100 * first[(depth >= lo) & (depth < hi)].mean():.1f}" for lo, hi in DEPTH_BANDS
                 if ((depth >= lo) & (depth < hi)).any()]
        print(f"{name}: " + " / ".join(bands) + f" / all: {100 * first.mean():.1f}")


if __name__ == "__main__":
    main()
