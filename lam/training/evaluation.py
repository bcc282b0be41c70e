"""STS-B dev scoring of an in-training student (Spearman of cosine similarity x 1)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from .._torch_model import LAMModel
from .data import DEFAULT_DATA_DIR
from .teacher import TextTokens, pad_token_ids


def stsb_pairs(split: str = "dev", data_dir: Path = DEFAULT_DATA_DIR) -> tuple[list[str], list[str], np.ndarray]:
    """(first sentences, second sentences, gold scores) of an STS-B split (train or dev only)."""
    if split not in ("train", "dev"):
        raise ValueError("only STS-B train and dev may be used here; test is reserved for evaluation")
    with open(data_dir / "stsb" / f"{split}.tsv", encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    return [r[1] for r in rows], [r[2] for r in rows], np.array([float(r[0]) for r in rows])


def spearman_of_embeddings(first: np.ndarray, second: np.ndarray, gold: np.ndarray) -> float:
    """Spearman correlation of the row-wise cosine similarities with the gold scores."""
    first = first / np.linalg.norm(first, axis=1, keepdims=True)
    second = second / np.linalg.norm(second, axis=1, keepdims=True)
    return float(spearmanr((first * second).sum(1), gold).statistic)


@torch.no_grad()
def student_embeddings(model: LAMModel, tokens: TextTokens, texts: list[str], batch_size: int = 64,
                       max_tokens: int = 512) -> np.ndarray:
    """(N, d) normalised embeddings, in input order; batches of similar length."""
    ids = tokens(texts, max_tokens)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = np.zeros((len(ids), model.config.hidden_size), dtype=np.float32)
    was_training, kernel = model.training, model.kernel
    model.eval()
    model.kernel = "auto"
    try:
        for s in range(0, len(order), batch_size):
            rows = order[s:s + batch_size]
            out[rows] = model.embed(*pad_token_ids([ids[i] for i in rows])).numpy()
    finally:
        model.train(was_training)
        model.kernel = kernel
    return out


def student_stsb_spearman(model: LAMModel, tokens: TextTokens, split: str = "dev") -> float:
    first, second, gold = stsb_pairs(split)
    return spearman_of_embeddings(student_embeddings(model, tokens, first), student_embeddings(model, tokens, second), gold)
