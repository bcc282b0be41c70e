"""Embedding quantisation with sentence-transformers' semantics (precision= in `encode`)."""

from __future__ import annotations

import numpy as np

PRECISIONS = ("float32", "int8", "uint8", "binary", "ubinary")


def quantize(embeddings: np.ndarray, precision: str) -> np.ndarray:
    """Quantise float embeddings (N, d): int8/uint8 by per-dimension min-max buckets over the
    batch; binary/ubinary pack the sign bits (d/8 bytes, binary shifted by -128)."""
    if precision == "float32":
        return embeddings.astype(np.float32)
    if precision in ("int8", "uint8"):
        if embeddings.ndim == 1 or embeddings.shape[0] == 1:
            raise ValueError(f"cannot compute {precision} quantisation ranges from a single embedding")
        low, high = embeddings.min(axis=0), embeddings.max(axis=0)
        steps = (high - low) / 255
        steps = np.where(steps == 0, 1, steps)
        buckets = np.clip(np.floor((embeddings - low) / steps), 0, 255)
        return buckets.astype(np.uint8) if precision == "uint8" else (buckets - 128).astype(np.int8)
    if precision in ("binary", "ubinary"):
        packed = np.packbits(embeddings > 0, axis=-1)
        return packed if precision == "ubinary" else (packed.astype(np.int16) - 128).astype(np.int8)
    raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
