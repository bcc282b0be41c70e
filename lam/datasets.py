"""Where the development data lives, and STS-B (train and dev only)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np


def data_dir(directory: str | os.PathLike | None = None) -> Path:
    """`directory` if given, else `$LAM_DATA_DIR`, else the `shared/data` folder beside the repository
    checkout; read when called (training and benchmarks take the directory as an argument)."""
    if directory is not None:
        return Path(directory)
    if os.environ.get("LAM_DATA_DIR"):
        return Path(os.environ["LAM_DATA_DIR"])
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def stsb_pairs(split: str = "dev", directory: Path | None = None) -> tuple[list[str], list[str], np.ndarray]:
    """(first sentences, second sentences, gold scores 0-5) of STS-B train or dev."""
    if split not in ("train", "dev"):
        raise ValueError("only STS-B train and dev are read here; STS-B test is reserved for independent evaluation")
    path = (directory or data_dir()) / "stsb" / f"{split}.tsv"
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    return [r[1] for r in rows], [r[2] for r in rows], np.array([float(r[0]) for r in rows])


def spearman_of_cosine(first: np.ndarray, second: np.ndarray, gold: np.ndarray) -> float:
    """Spearman correlation of the cosine similarities of rows first[i], second[i] (N, d) with gold (N,)."""
    from scipy.stats import spearmanr

    cosine = (first * second).sum(1) / (np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1))
    return float(spearmanr(cosine, gold).statistic)
