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
TOKENIZE_SLICE = 64
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
        """Token ids (one int32 array per text, [CLS] ... [SEP])."""
        return self.tokenize(texts)[0]

    def tokenize(self, texts: list[str]) -> tuple[list[np.ndarray], int]:
        """Token ids as `__call__`, and how many texts were cut to fit `max_seq_length`."""
        limit = self.max_seq_length * CHARS_PER_TOKEN_BOUND
        ids, truncated = [], 0
        # Slices bound the memory held by the tokenizer's per-token Encoding objects.
        for start in range(0, len(texts), TOKENIZE_SLICE):
            chunk = texts[start:start + TOKENIZE_SLICE]
            encodings = self.backend.encode_batch([encodable(t[:limit]) for t in chunk], add_special_tokens=True)
            ids.extend(np.asarray(e.ids, dtype=np.int32) for e in encodings)
            truncated += sum(len(t) > limit or bool(e.overflowing) for t, e in zip(chunk, encodings))
        return ids, truncated

    def spans(self, texts: list[str]) -> list[tuple[np.ndarray, bool]]:
        """Per text: (T, 2) start and end characters of its tokens, [CLS] and [SEP] excluded, and
        whether the text was truncated (tokens were left out)."""
        limit = self.max_seq_length * CHARS_PER_TOKEN_BOUND
        out = []
        for start in range(0, len(texts), TOKENIZE_SLICE):
            batch = texts[start:start + TOKENIZE_SLICE]
            encodings = self.backend.encode_batch([encodable(t[:limit]) for t in batch], add_special_tokens=True)
            for text, encoding in zip(batch, encodings):
                body = np.asarray(encoding.offsets[1:-1], dtype=np.int64).reshape(-1, 2)
                out.append((body, bool(encoding.overflowing) or len(text) > limit))
        return out


def encodable(text: str) -> str:
    """`text` with lone surrogates (not representable in UTF-8) replaced by U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


@dataclass
class Batch:
    """Rows `indices` of the input, padded: input_ids and attention_mask (B, L)."""

    indices: np.ndarray
    input_ids: np.ndarray
    attention_mask: np.ndarray


def plan_batches(lengths: list[int], batch_size: int, max_tokens: int) -> list[np.ndarray]:
    """Row indices of each batch: texts of similar length (longest first), each batch at most
    `batch_size` texts and `max_tokens` padded tokens (a longer text gets a batch of its own)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches, start = [], 0
    while start < len(order):
        size = max(1, min(batch_size, max_tokens // max(lengths[order[start]], 1)))
        batches.append(np.asarray(order[start:start + size]))
        start += size
    return batches


def pad_batch(token_ids: list[np.ndarray], rows: np.ndarray, pad_id: int) -> Batch:
    """Right-pad the texts `rows` to the longest of them."""
    longest = max(len(token_ids[i]) for i in rows)
    ids = np.full((len(rows), longest), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), longest), dtype=np.int64)
    for r, i in enumerate(rows):
        ids[r, : len(token_ids[i])] = token_ids[i]
        mask[r, : len(token_ids[i])] = 1
    return Batch(rows, ids, mask)


def pad_to(input_ids: np.ndarray, attention_mask: np.ndarray, shape: tuple[int, int], pad_id: int,
           dtype=np.int32) -> tuple[np.ndarray, np.ndarray]:
    """input_ids and attention_mask (B, L) padded at the bottom and right to `shape` (at least (B, L)):
    `pad_id` and 0 in the new rows and columns."""
    batch, length = np.shape(input_ids)
    ids = np.full(shape, pad_id, dtype=dtype)
    mask = np.zeros(shape, dtype=dtype)
    ids[:batch, :length] = input_ids
    mask[:batch, :length] = attention_mask
    return ids, mask
