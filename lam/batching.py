"""Tokenising texts and grouping them into length-sorted, padded batches."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

# A WordPiece token spans at least one character, so texts are cut to this many characters
# per allowed token before tokenising: a 10 MB string is never tokenised whole.
CHARS_PER_TOKEN_BOUND = 16
_SURROGATE = re.compile("[\ud800-\udfff]")


class TextTokenizer:
    """WordPiece tokenisation with [CLS]/[SEP] and truncation to `max_seq_length` tokens."""

    def __init__(self, tokenizer_file: Path, max_seq_length: int):
        self.backend = Tokenizer.from_file(str(tokenizer_file))
        self.backend.no_padding()
        self.pad_id = self.backend.token_to_id("[PAD]") or 0
        self.max_seq_length = max_seq_length

    @property
    def max_seq_length(self) -> int:
        return self._max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 2:
            raise ValueError(f"max_seq_length must be an integer >= 2, got {value!r}")
        self._max_seq_length = value
        self.backend.enable_truncation(max_length=value)

    def __call__(self, texts: list[str]) -> list[np.ndarray]:
        """Token ids (one int64 array per text, [CLS] ... [SEP])."""
        limit = self.max_seq_length * CHARS_PER_TOKEN_BOUND
        encodings = self.backend.encode_batch([encodable(t[:limit]) for t in texts], add_special_tokens=True)
        return [np.asarray(e.ids, dtype=np.int64) for e in encodings]


def encodable(text: str) -> str:
    """`text` with lone surrogates (not representable in UTF-8) replaced by U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


@dataclass
class Batch:
    """Rows `indices` of the input, padded: input_ids and attention_mask (B, L)."""

    indices: np.ndarray
    input_ids: np.ndarray
    attention_mask: np.ndarray


def length_sorted_batches(token_ids: list[np.ndarray], batch_size: int, max_tokens: int, pad_id: int) -> list[Batch]:
    """Batches of texts of similar length (longest first), each at most `batch_size` texts and
    `max_tokens` padded tokens (a single longer text still gets a batch of its own)."""
    order = sorted(range(len(token_ids)), key=lambda i: -len(token_ids[i]))
    batches, start = [], 0
    while start < len(order):
        longest = len(token_ids[order[start]])
        size = max(1, min(batch_size, max_tokens // max(longest, 1)))
        rows = order[start:start + size]
        ids = np.full((len(rows), longest), pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), longest), dtype=np.int64)
        for r, i in enumerate(rows):
            ids[r, : len(token_ids[i])] = token_ids[i]
            mask[r, : len(token_ids[i])] = 1
        batches.append(Batch(np.asarray(rows), ids, mask))
        start += size
    return batches
