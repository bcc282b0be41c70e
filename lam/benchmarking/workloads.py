"""Synthetic documents of exact token counts for the speed comparison."""

from __future__ import annotations

import numpy as np

# Common English words that WordPiece keeps whole: a text of n of them is n + 2 tokens.
SINGLE_TOKEN_WORDS = ("time person year way day thing man world life hand part child eye woman place work "
                      "week case point government company number group problem fact river mountain language "
                      "music history city water story light house night family").split()


def synthetic_document(tokens: int, seed: int = 0) -> str:
    """A text of exactly `tokens` tokens ([CLS] and [SEP] included) for LAM's and the teacher's tokenizer."""
    rng = np.random.default_rng(seed + tokens)
    return " ".join(rng.choice(SINGLE_TOKEN_WORDS, size=max(tokens - 2, 0)))
