"""Throughput of `lam embed-corpus`: local pool with 1 and 2 workers, Ray with 1 and 2 actors, in one run.

Two corpora: the STS-B train sentences (both columns) and long documents (windows of
`--document-words` words from Gutenberg books). Every worker and actor computes on one thread,
so "2 workers" uses two cores and parallel efficiency = rate(2) / (2 x rate(1)), from end-to-end
rates (worker start-up and model loading included, so small corpora understate it). Local
runs also report a steady rate (after the first rows came back), the per-core throughput that
docs/corpus-scaling.md sizes from. Not a test: run it on a quiet machine.

    python benchmarks/embed_corpus_scaling.py --out out/corpus-scaling
    python benchmarks/embed_corpus_scaling.py --out /tmp/cs --sentences 2000 --documents 20   # a quick check
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

CONFIGURATIONS = [("local", 1), ("local", 2), ("ray", 1), ("ray", 2)]


def write_corpora(folder: Path, sentences: int | None, documents: int, words: int) -> dict[str, Path]:
    """stsb.jsonl and long.jsonl ({"text": ...} per line) in `folder`."""
    from lam.datasets import stsb_pairs
    from lam.training.data import load_books, word_window

    first, second, _ = stsb_pairs("train")
    texts = {"stsb-train": (first + second)[:sentences]}
    books = load_books()
    rng = np.random.default_rng(0)
    texts["long-documents"] = [word_window(books[i % len(books)], rng, words, words) for i in range(documents)]
    paths = {}
    for name, rows in texts.items():
        paths[name] = folder / f"{name}.jsonl"
        paths[name].write_text("".join(json.dumps({"text": t}) + "\n" for t in rows))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for the inputs, outputs and results.json")
    parser.add_argument("--model", default="LAM-base-v1")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--sentences", type=int, default=None, help="first N STS-B train sentences (default: all)")
    parser.add_argument("--documents", type=int, default=200)
    parser.add_argument("--document-words", type=int, default=2000)
    parser.add_argument("--shard-size", type=int, default=1000)
    args = parser.parse_args()

    import ray

    from lam.corpus import embed_corpus
    from lam.multiprocess import usable_cores

    args.out.mkdir(parents=True, exist_ok=True)
    corpora = write_corpora(args.out, args.sentences, args.documents, args.document_words)
    ray.init(num_cpus=len(usable_cores()), include_dashboard=False, logging_level="WARNING")
    results = []
    for corpus, path in corpora.items():
        for engine, workers in CONFIGURATIONS:
            output = args.out / f"{corpus}-{engine}-{workers}"
            shutil.rmtree(output, ignore_errors=True)
            began = time.perf_counter()
            summary = embed_corpus(path, output, model=args.model, backend=args.backend, shard_size=args.shard_size,
                                   workers=workers, cpus_per_worker=1, progress=False,
                                   ray_address="auto" if engine == "ray" else None)
            row = {"corpus": corpus, "engine": engine, "workers": workers, "rows": summary["rows"],
                   "tokens": summary["tokens"], "seconds": round(time.perf_counter() - began, 2),
                   "rows_per_second": round(summary["rows_per_second"], 1),
                   "tokens_per_second": round(summary["tokens_per_second"]),
                   "first_rows_seconds": round(summary["first_rows_seconds"], 2)}
            if engine == "local":  # local results stream back per chunk; Ray's in bursts, so no steady rate
                row["steady_tokens_per_second"] = round(summary["steady_tokens_per_second"])
            results.append(row)
            print(json.dumps(row), flush=True)
    ray.shutdown()
    for row in results:
        single = next(r for r in results if (r["corpus"], r["engine"], r["workers"]) == (row["corpus"], row["engine"], 1))
        row["efficiency"] = round(row["tokens_per_second"] / (row["workers"] * single["tokens_per_second"]), 3)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print("\n| corpus | engine | workers | rows | tokens | s | rows/s | tokens/s | efficiency | steady tokens/s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['corpus']} | {r['engine']} | {r['workers']} | {r['rows']:,} | {r['tokens']:,} | {r['seconds']} | "
              f"{r['rows_per_second']:,} | {r['tokens_per_second']:,} | {r['efficiency']} | "
              f"{r.get('steady_tokens_per_second', '-')} |")


if __name__ == "__main__":
    main()
