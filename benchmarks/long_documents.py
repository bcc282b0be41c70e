"""Long-document checks of a LAM model (torch backend by default):

1. a 32,768-token document encodes to a finite, unit-norm embedding;
2. the embedding of a 2,000-token document is closer (cosine) to the teacher's normalised mean
   of its 256-token chunk embeddings than the embedding of a random other document is.

Documents are windows of held-out Gutenberg books (never trained on).

    python benchmarks/long_documents.py [--lam LAM-base-v1] [--backend torch] [--json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from lam.teacher import teacher_dir
from lam.training.evaluation import chunk_agreement, heldout_documents
from lam.training.teacher import Teacher, TextTokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lam", default="LAM-base-v1")
    parser.add_argument("--backend", choices=("torch", "jax"), default="torch")
    parser.add_argument("--documents", type=int, default=12)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from lam import LAM

    model = LAM(args.lam, backend=args.backend, fallback=False)
    began = time.perf_counter()
    tokens = TextTokens(teacher_dir() / "tokenizer.json")
    huge_text = " ".join(heldout_documents(1, 40000, seed=1))
    huge = model.encode(huge_text)
    results = {"long_document": {"tokens": len(tokens([huge_text], model.max_seq_length)[0]),
                                 "finite": bool(np.isfinite(huge).all()), "norm": round(float(np.linalg.norm(huge)), 6),
                                "seconds": round(time.perf_counter() - began, 1)}}
    model.max_seq_length = 2000
    results["chunk_agreement_2000"] = chunk_agreement(lambda texts: model.encode(texts, batch_size=4),
                                                      heldout_documents(args.documents, 2000),
                                                      Teacher(teacher_dir()), tokens)
    if args.json:
        print(json.dumps(results))
        return
    for name, values in results.items():
        print(name, values)


if __name__ == "__main__":
    main()
