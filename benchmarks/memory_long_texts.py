"""Peak memory (RSS) while encoding many very long texts: batches are bounded by a token budget.

    python benchmarks/memory_long_texts.py --texts 1000 --tokens 32768 --backend torch

Each text is `lam.benchmarking.workloads.synthetic_document`: exactly `--tokens` tokens. The
process's peak RSS (VmHWM) is reported after model load and after encoding.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np

from lam.benchmarking.peak_memory import peak_rss_mib
from lam.benchmarking.workloads import synthetic_document

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--tokens", type=int, default=32768)
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--model", default="LAM-base-v1")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args()

    from lam import LAM

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LAM(args.model, backend=args.backend)
    after_load = peak_rss_mib()
    texts = [synthetic_document(args.tokens, seed=i) for i in range(args.texts)]
    after_texts = peak_rss_mib()
    start = time.perf_counter()
    embeddings = model.encode(texts, show_progress_bar=True)
    elapsed = time.perf_counter() - start
    result = {
        "backend": model.backend, "texts": args.texts, "tokens_per_text": args.tokens,
        "max_tokens_per_batch": model.max_tokens_per_batch,
        "peak_rss_mib_after_load": round(after_load, 1), "peak_rss_mib_after_making_texts": round(after_texts, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1), "seconds": round(elapsed, 1),
        "tokens_per_second": round(args.texts * args.tokens / elapsed),
        "all_finite": bool(np.isfinite(embeddings).all()),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
