"""Dynamic batching: texts of concurrent requests merged into one encode call per batch.

One worker thread takes texts in arrival order (FIFO, so a long text is never overtaken) until
the batch holds `max_batch_requests` texts or the next text would pass `max_batch_tokens`; a
text longer than the budget runs alone. A batch that is not full waits at most `max_wait_s`
for more texts. Each request's rows come back in its own order through a future.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

logger = logging.getLogger("lam.serve")

# encode(texts) -> (N, d) float32 rows, one per text, in order
EncodeFn = Callable[[list[str]], np.ndarray]
# on_batch(texts, tokens, seconds, ok): called after every batch
BatchObserver = Callable[[int, int, float, bool], None]


@dataclass
class _Request:
    texts: list[str]
    token_counts: list[int]
    future: Future
    rows: list = field(default_factory=list)
    remaining: int = 0


class DynamicBatcher:
    """Merges the texts of `submit` calls into batches for `encode`, run on one worker thread."""

    def __init__(self, encode: EncodeFn, max_batch_tokens: int, max_batch_requests: int, max_wait_s: float,
                 on_batch: BatchObserver | None = None):
        self._encode = encode
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_requests = max_batch_requests
        self.max_wait_s = max_wait_s
        self._on_batch = on_batch
        self._pending: deque[tuple[_Request, int]] = deque()  # (request, index of one of its texts)
        self._cond = threading.Condition()
        self._closing = False
        self._worker = threading.Thread(target=self._run, name="lam-batcher", daemon=True)

    def start(self) -> None:
        self._worker.start()

    def close(self) -> None:
        """Finish every text already submitted, then stop the worker."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._worker.is_alive():
            self._worker.join()

    @property
    def alive(self) -> bool:
        return self._worker.is_alive()

    @property
    def queue_depth(self) -> int:
        """Texts waiting for a batch."""
        return len(self._pending)

    def submit(self, texts: list[str], token_counts: list[int]) -> Future:
        """A future of the (N, d) rows of `texts`; it fails with the encoder's exception if a batch fails."""
        if len(texts) != len(token_counts) or not texts:
            raise ValueError("submit needs one token count per text and at least one text")
        request = _Request(list(texts), list(token_counts), Future(), [None] * len(texts), len(texts))
        with self._cond:
            if self._closing:
                raise RuntimeError("the batcher is closed")
            self._pending.extend((request, index) for index in range(len(texts)))
            self._cond.notify()
        return request.future

    # -- worker ---------------------------------------------------------------------------
    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            texts = [request.texts[index] for request, index in batch]
            tokens = sum(request.token_counts[index] for request, index in batch)
            start = time.perf_counter()
            try:
                rows = self._encode(texts)
                if len(rows) != len(texts):
                    raise RuntimeError(f"the encoder returned {len(rows)} rows for {len(texts)} texts")
            except Exception as err:  # noqa: BLE001 - the failure belongs to this batch's requests only
                logger.exception("a batch of %d texts failed", len(batch))
                ok = False
                for request in {id(r): r for r, _ in batch}.values():
                    _settle(request.future, exception=err)
            else:
                ok = True
                for (request, index), row in zip(batch, rows):
                    request.rows[index] = row
                    request.remaining -= 1
                    if request.remaining == 0:
                        _settle(request.future, result=np.stack(request.rows))
            if self._on_batch is not None:
                self._on_batch(len(batch), tokens, time.perf_counter() - start, ok)

    def _next_batch(self) -> list[tuple[_Request, int]] | None:
        """The next batch in arrival order; None once closing and nothing is left."""
        with self._cond:
            batch: list[tuple[_Request, int]] = []
            tokens = 0
            deadline = None
            while True:
                while self._pending and len(batch) < self.max_batch_requests:
                    request, index = self._pending[0]
                    if request.future.done():  # failed in an earlier batch, or cancelled by its client
                        self._pending.popleft()
                        continue
                    count = request.token_counts[index]
                    if batch and tokens + count > self.max_batch_tokens:
                        return batch
                    self._pending.popleft()
                    batch.append((request, index))
                    tokens += count
                if len(batch) >= self.max_batch_requests or (batch and self._closing):
                    return batch
                if not batch:
                    if self._closing:
                        return None
                    self._cond.wait()
                    continue
                if deadline is None:
                    deadline = time.monotonic() + self.max_wait_s
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return batch
                self._cond.wait(remaining)


def _settle(future: Future, result=None, exception: BaseException | None = None) -> None:
    """Complete `future` unless its client cancelled it meanwhile."""
    try:
        if exception is not None:
            future.set_exception(exception)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass
