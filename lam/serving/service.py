"""The embedding service behind the routes: request limits, token counts, the batcher, `dimensions`."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import numpy as np

from ..batching import TextTokenizer
from .batcher import DynamicBatcher
from .metrics import ServerMetrics
from .settings import ServeSettings

# Requests with more characters than this are tokenised off the event loop (a 4,096-token
# text takes milliseconds to tokenise; a query, tens of microseconds).
TOKENIZE_INLINE_CHARS = 4096


class ApiError(Exception):
    """An error answered to the client: HTTP `status`, a message saying what is wrong, extra headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass
class Embeddings:
    """`rows` (N, k) float32, one per input text in order; `prompt_tokens` the tokens the model read."""

    rows: np.ndarray
    prompt_tokens: int


class EmbeddingService:
    """Validates and embeds the texts of one request through the shared `DynamicBatcher`.

    `model` is a `LAM` (or anything with its `encode`, `max_seq_length`, `max_tokens_per_batch`,
    `model_dir`, `backend` and `get_sentence_embedding_dimension`).
    """

    def __init__(self, model, settings: ServeSettings):
        self.model = model
        self.settings = settings
        self.max_input_tokens = settings.max_input_tokens or model.max_seq_length
        # The model truncates exactly where the server's limit lies, and splits each batch into
        # length-sorted forward passes of at most max_batch_tokens padded tokens.
        model.max_seq_length = self.max_input_tokens
        model.max_tokens_per_batch = settings.max_batch_tokens
        # One token past the limit is enough to tell a text that is too long.
        self._tokenize = TextTokenizer(model.model_dir / "tokenizer.json", self.max_input_tokens + 1)
        self.dimension = model.get_sentence_embedding_dimension()
        self.metrics = ServerMetrics(queue_depth=lambda: self.batcher.queue_depth)
        self.batcher = DynamicBatcher(self._encode, settings.max_batch_tokens, settings.max_batch_requests,
                                      settings.max_wait_ms / 1000.0, on_batch=self.metrics.observe_batch)
        self._in_flight = 0

    def _encode(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, batch_size=len(texts), show_progress_bar=False, convert_to_numpy=True)

    @contextlib.contextmanager
    def admitted(self):
        """Count a request as in flight, or refuse it with 429 above --max-concurrent-requests.

        Used from the event loop only, so the counter needs no lock.
        """
        if self._in_flight >= self.settings.max_concurrent_requests:
            raise ApiError(429, f"the server is at its limit of {self.settings.max_concurrent_requests} "
                                "concurrent requests; retry later", {"Retry-After": "1"})
        self._in_flight += 1
        self.metrics.in_flight.inc()
        try:
            yield
        finally:
            self._in_flight -= 1
            self.metrics.in_flight.dec()

    async def embed(self, texts: list[str], truncate: bool | None, dimensions: int | None) -> Embeddings:
        """Embeddings of `texts`; `truncate` None means --auto-truncate; `dimensions` keeps the first k, re-normalised."""
        self._check_request(texts, dimensions)
        counts = await self._token_counts(texts)
        if truncate is None:
            truncate = self.settings.auto_truncate
        too_long = [i for i, n in enumerate(counts) if n > self.max_input_tokens]
        if too_long and not truncate:
            raise ApiError(413, f"input {too_long[0]} is longer than the limit of {self.max_input_tokens} tokens "
                                f"({len(too_long)} of {len(texts)} inputs are too long); shorten it, send "
                                "truncate=true (/embed) or start the server with --auto-truncate")
        counts = [min(n, self.max_input_tokens) for n in counts]
        try:
            future = self.batcher.submit(texts, counts)
        except RuntimeError as err:  # closed: the server is shutting down
            raise ApiError(503, f"the server is shutting down ({err})") from err
        try:
            rows = await asyncio.wrap_future(future)
        except Exception as err:  # the batcher has logged it
            raise ApiError(500, f"the model failed on the batch holding this request ({type(err).__name__}: {err})") from err
        if dimensions is not None and dimensions < self.dimension:
            rows = rows[:, :dimensions]
            rows = rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-12)
        return Embeddings(rows, sum(counts))

    def _check_request(self, texts: list[str], dimensions: int | None) -> None:
        if not texts:
            raise ApiError(422, "the input list is empty; send at least one text")
        if len(texts) > self.settings.max_client_batch_size:
            raise ApiError(413, f"{len(texts)} inputs in one request; the limit is {self.settings.max_client_batch_size}")
        if dimensions is not None and not 0 < dimensions <= self.dimension:
            raise ApiError(422, f"dimensions must lie in [1, {self.dimension}], got {dimensions}")

    async def _token_counts(self, texts: list[str]) -> list[int]:
        if sum(map(len, texts)) <= TOKENIZE_INLINE_CHARS:
            return self._count(texts)
        return await asyncio.to_thread(self._count, texts)

    def _count(self, texts: list[str]) -> list[int]:
        return [len(ids) for ids in self._tokenize(texts)]
