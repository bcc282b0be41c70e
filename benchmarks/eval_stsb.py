"""STS-B dev Spearman (cosine x 1) of a sentence-transformers model and a LAM model, side by side.

    python benchmarks/eval_stsb.py                         # teacher vs LAM-base-v1 (torch)
    python benchmarks/eval_stsb.py --lam path/to/model --backend jax --json
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from lam.datasets import spearman_of_cosine, stsb_pairs


def spearman(encode, first: list[str], second: list[str], gold: np.ndarray) -> float:
    """Spearman correlation of cosine(encode(first), encode(second)) with the gold scores."""
    return spearman_of_cosine(np.asarray(encode(first)), np.asarray(encode(second)), gold)


def timed_score(encode, first, second, gold) -> dict:
    began = time.perf_counter()
    score = spearman(encode, first, second, gold)
    return {"spearman": round(score, 5), "seconds": round(time.perf_counter() - began, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lam", default="LAM-base-v1", help="LAM model name or directory ('' to skip)")
    parser.add_argument("--backend", choices=("torch", "jax"), default="torch")
    parser.add_argument("--teacher", default=None, help="sentence-transformers model dir (default all-MiniLM-L6-v2; '' to skip)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    first, second, gold = stsb_pairs("dev")
    results = {}
    if args.teacher != "":
        from sentence_transformers import SentenceTransformer

        from lam.teacher import teacher_dir

        teacher = SentenceTransformer(args.teacher or str(teacher_dir()), device="cpu")
        results["teacher"] = timed_score(lambda t: teacher.encode(t, batch_size=64), first, second, gold)
    if args.lam:
        from lam import LAM

        model = LAM(args.lam, backend=args.backend, fallback=False)
        results[f"lam ({args.backend})"] = timed_score(lambda t: model.encode(t, batch_size=64), first, second, gold)
    if args.json:
        print(json.dumps({"pairs": len(gold), **results}))
        return
    print(f"STS-B dev, {len(gold)} pairs, Spearman of cosine x 1")
    for name, result in results.items():
        print(f"  {name:<14} {result['spearman']:.4f}   ({result['seconds']} s)")


if __name__ == "__main__":
    main()
