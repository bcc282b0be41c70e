"""`LAM`: the user-facing encoder, dispatching to the torch or JAX backend with fallback."""

from __future__ import annotations

import json
import logging
import os
import threading
import warnings
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .backends import canonical_backend, load_backend, other_backend
from .batching import TextTokenizer, length_sorted_batches
from .config import LAMConfig
from .registry import resolve_model
from .weights_io import WEIGHTS_NAME, read_weights

logger = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS_PER_BATCH = 1 << 16


class BackendFallbackWarning(UserWarning):
    """The requested backend failed and LAM switched to the other one."""


def _read_max_seq_length(model_dir: Path, config: LAMConfig) -> int:
    st_config = model_dir / "sentence_bert_config.json"
    if st_config.is_file():
        return int(json.loads(st_config.read_text()).get("max_seq_length", config.max_seq_length))
    return config.max_seq_length


class LAM:
    """A LAM sentence encoder.

    >>> model = LAM("LAM-base-v1", backend="jax")
    >>> model.encode(["a cat", "a dog"]).shape
    (2, 384)

    `backend`: "auto" (measured default), "torch" (alias "cython") or "jax". With
    `fallback=True`, a backend that fails to load or raises while encoding is replaced by
    the other one, with a `BackendFallbackWarning` naming the cause.
    """

    def __init__(self, model_name_or_path: str | os.PathLike = "LAM-base-v1", backend: str = "auto",
                 device: str | None = None, fallback: bool = True,
                 max_tokens_per_batch: int = DEFAULT_MAX_TOKENS_PER_BATCH):
        requested = canonical_backend(backend)
        self.model_dir = resolve_model(model_name_or_path)
        self.config = LAMConfig.from_json_file(str(self.model_dir / "config.json"))
        self._tensors = read_weights(self.model_dir / WEIGHTS_NAME, self.config)
        self._tokenize = TextTokenizer(self.model_dir / "tokenizer.json", _read_max_seq_length(self.model_dir, self.config))
        self.fallback = fallback
        self.max_tokens_per_batch = max_tokens_per_batch
        self._device = device
        self._lock = threading.Lock()
        self._backend = self._load(requested)

    # -- backends -------------------------------------------------------------------------
    @property
    def backend(self) -> str:
        """Name of the active backend: 'torch' or 'jax'."""
        return self._backend.name

    def _load(self, name: str):
        try:
            return load_backend(name, self.config, self._tensors, self._device)
        except Exception as err:  # noqa: BLE001 - any failure to load is a reason to fall back
            if not self.fallback:
                raise
            other = other_backend(name)
            warnings.warn(f"LAM: the {name} backend could not be loaded ({type(err).__name__}: {err}); "
                          f"using the {other} backend instead", BackendFallbackWarning, stacklevel=3)
            return load_backend(other, self.config, self._tensors, self._device)

    def _forward(self, input_ids: np.ndarray, attention_mask: np.ndarray):
        backend = self._backend
        try:
            return backend.forward(input_ids, attention_mask)
        except Exception as err:  # noqa: BLE001
            if not self.fallback:
                raise
            other = other_backend(backend.name)
            warnings.warn(f"LAM: the {backend.name} backend failed while encoding ({type(err).__name__}: {err}); "
                          f"retrying on the {other} backend", BackendFallbackWarning, stacklevel=4)
            with self._lock:
                if self._backend is backend:
                    self._backend = load_backend(other, self.config, self._tensors, self._device)
            return self._backend.forward(input_ids, attention_mask)

    # -- properties -----------------------------------------------------------------------
    @property
    def max_seq_length(self) -> int:
        return self._tokenize.max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        self._tokenize.max_seq_length = value

    def get_sentence_embedding_dimension(self) -> int:
        return self.config.hidden_size

    # -- encoding -------------------------------------------------------------------------
    def encode(self, sentences, batch_size: int = 32, show_progress_bar: bool | None = None,
               convert_to_numpy: bool = True, convert_to_tensor: bool = False, normalize_embeddings: bool = False):
        """Embed a string (-> (d,)) or a list of strings (-> (N, d)); rows follow the input order."""
        single = isinstance(sentences, str)
        texts = [sentences] if single else list(sentences)
        if show_progress_bar is None:
            show_progress_bar = logger.getEffectiveLevel() in (logging.INFO, logging.DEBUG)
        token_ids = self._tokenize(texts)
        embeddings = np.zeros((len(texts), self.config.hidden_size), dtype=np.float32)
        batches = length_sorted_batches(token_ids, batch_size, self.max_tokens_per_batch, self._tokenize.pad_id)
        for batch in tqdm(batches, desc="Batches", disable=not show_progress_bar):
            _, pooled = self._forward(batch.input_ids, batch.attention_mask)
            embeddings[batch.indices] = pooled
        if normalize_embeddings:
            embeddings /= np.maximum(np.linalg.norm(embeddings, axis=-1, keepdims=True), 1e-12)
        result = torch.from_numpy(embeddings) if convert_to_tensor or not convert_to_numpy else embeddings
        return result[0] if single else result
