"""Long-document retrieval (the tasks of `lam compare --long`) at a chosen size, for the README.

    python benchmarks/long_retrieval.py --out out/long            # the README's table (about 40 min, 2 cores)
    python benchmarks/long_retrieval.py --books 4 --articles 8 --lengths 256,1024   # a quick look

Known-item retrieval over the held-out (test) side of the long-document split, passkey and
needle retrieval by length, and contextual against independent chunks; table, JSON and plot.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from lam.benchmarking.long_compare import LongSettings, format_long_table, plot_long, run_long


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="LAM-base-v1,LAM-long-v1")
    parser.add_argument("--backends", default="torch")
    parser.add_argument("--books", type=int, default=None, help="held-out books (default: all 48)")
    parser.add_argument("--articles", type=int, default=None, help="held-out articles of >= 1,000 words (default: all)")
    parser.add_argument("--lengths", default="256,1024,4096,16384,32768")
    parser.add_argument("--passkey-candidates", type=int, default=10)
    parser.add_argument("--needle-candidates", type=int, default=8)
    parser.add_argument("--chunk-documents", type=int, default=12)
    parser.add_argument("--document-tokens", type=int, default=32768, help="cut each document to its first N tokens")
    parser.add_argument("--out", type=Path, default=Path("out/long"))
    args = parser.parse_args()
    settings = LongSettings(models=tuple(args.models.split(",")), backends=tuple(args.backends.split(",")),
                            lengths=tuple(int(x) for x in args.lengths.split(",")),
                            passkey_candidates=args.passkey_candidates, needle_candidates=args.needle_candidates,
                            books=args.books, articles=args.articles, chunk_documents=args.chunk_documents,
                            document_tokens=args.document_tokens)
    began = time.perf_counter()
    report = run_long(settings, progress=lambda message: print(
        f"[{time.perf_counter() - began:7.1f} s] {message}", file=sys.stderr, flush=True))
    report["seconds"] = round(time.perf_counter() - began, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "long.json").write_text(json.dumps(report, indent=2))
    plot_long(report, args.out / "long.png")
    print(format_long_table(report))
    print(f"\n{report['seconds']:.0f} s; wrote {args.out / 'long.json'} and {args.out / 'long.png'}")


if __name__ == "__main__":
    main()
