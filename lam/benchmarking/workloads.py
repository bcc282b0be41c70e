"""Inputs of the comparison: STS-B dev sentences and synthetic documents of exact token counts."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

# Common English words that WordPiece keeps whole: a text of n of them is n + 2 tokens.
SINGLE_TOKEN_WORDS = ("time person year way day thing man world life hand part child eye woman place work "
                      "week case point government company number group problem fact river mountain language "
                      "music history city water story light house night family").split()


def data_dir() -> Path:
    """`$LAM_DATA_DIR`, else the `shared/data` folder beside the repository."""
    if os.environ.get("LAM_DATA_DIR"):
        return Path(os.environ["LAM_DATA_DIR"])
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def stsb_pairs(split: str = "dev", directory: Path | None = None) -> tuple[list[str], list[str], np.ndarray]:
    """(first sentences, second sentences, gold scores 0-5) of STS-B train or dev."""
    if split not in ("train", "dev"):
        raise ValueError("only STS-B train and dev are read here; STS-B test is reserved for independent evaluation")
    path = (directory or data_dir()) / "stsb" / f"{split}.tsv"
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    return [r[1] for r in rows], [r[2] for r in rows], np.array([float(r[0]) for r in rows])


def synthetic_document(tokens: int, seed: int = 0) -> str:
    """A text of exactly `tokens` tokens ([CLS] and [SEP] included) for LAM's and the teacher's tokenizer."""
    rng = np.random.default_rng(seed + tokens)
    return " ".join(rng.choice(SINGLE_TOKEN_WORDS, size=max(tokens - 2, 0)))
