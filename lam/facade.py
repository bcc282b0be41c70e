"""`LAM`: the user-facing encoder, dispatching to the torch or JAX backend with fallback."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import warnings
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .backends import canonical_backend, check_compute_precision, load_backend, other_backend
from .batching import TextTokenizer, pad_batch, plan_batches
from .config import LAMHyperparameters
from .quantization import PRECISIONS, quantize
from .registry import resolve_model
from .weights_io import WEIGHTS_NAME, read_weights

logger = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS_PER_BATCH = 1 << 15


class BackendFallbackWarning(UserWarning):
    """The requested backend failed and LAM switched to the other one."""


def _read_max_seq_length(model_dir: Path, config: LAMHyperparameters) -> int:
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

    `compute_precision`: "float32" (default), "bfloat16" or "int8", the precision of the wide
    matmuls while encoding (projections and feed-forward; the delta rule, norms and pooling
    stay float32). Embeddings are float32 either way; `encode(precision=...)` is a different
    thing, the quantisation of the output embeddings.
    """

    def __init__(self, model_name_or_path: str | os.PathLike = "LAM-base-v1", backend: str = "auto",
                 device: str | None = None, fallback: bool = True,
                 max_tokens_per_batch: int = DEFAULT_MAX_TOKENS_PER_BATCH, truncate_dim: int | None = None,
                 compute_precision: str = "float32"):
        requested = canonical_backend(backend)
        self.compute_precision = check_compute_precision(compute_precision)
        if truncate_dim is not None:
            _check_positive_int("truncate_dim", truncate_dim)
        self.truncate_dim = truncate_dim
        self.model_dir = resolve_model(model_name_or_path)
        self.config = LAMHyperparameters.from_json_file(self.model_dir / "config.json")
        self._tensors = read_weights(self.model_dir / WEIGHTS_NAME, self.config)
        self._tokenize = TextTokenizer(self.model_dir / "tokenizer.json", _read_max_seq_length(self.model_dir, self.config))
        self.fallback = fallback
        self.max_tokens_per_batch = max_tokens_per_batch
        self._device = device
        self._lock = threading.Lock()
        self._hf_tokenizer = None
        self._warned_truncation = False
        self._model_card_data = None
        st_config = self.model_dir / "config_sentence_transformers.json"
        st_fields = json.loads(st_config.read_text()) if st_config.is_file() else {}
        self.prompts: dict[str, str] = dict(st_fields.get("prompts") or {})
        self._similarity_fn_name = st_fields.get("similarity_fn_name") or "cosine"
        self._backend = self._load(requested)

    # -- backends -------------------------------------------------------------------------
    @property
    def backend(self) -> str:
        """Name of the active backend: 'torch' or 'jax'."""
        return self._backend.name

    def _load(self, name: str):
        try:
            return self._load_backend(name, self._device)
        except Exception as err:  # noqa: BLE001 - any failure to load is a reason to fall back
            if not self.fallback:
                raise
            other = other_backend(name)
            warnings.warn(f"LAM: the {name} backend could not be loaded ({type(err).__name__}: {err}); "
                          f"using the {other} backend instead", BackendFallbackWarning, stacklevel=3)
            return self._load_backend(other, self._device)

    def _load_backend(self, name: str, device: str | None):
        return load_backend(name, self.config, self._tensors, device, self.compute_precision)

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
                    self._backend = self._load_backend(other, self._device)
            return self._backend.forward(input_ids, attention_mask)

    # -- properties -----------------------------------------------------------------------
    @property
    def max_seq_length(self) -> int:
        """Longest input in tokens ([CLS] and [SEP] included); longer texts are truncated."""
        return self._tokenize.max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        self._tokenize.max_seq_length = value

    @property
    def device(self) -> torch.device:
        """Where the active backend computes, as a torch.device."""
        return torch.device(self._backend.device_type)

    @property
    def tokenizer(self):
        """The model's Hugging Face (fast) tokenizer."""
        if self._hf_tokenizer is None:
            from transformers import AutoTokenizer

            self._hf_tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir))
        self._hf_tokenizer.model_max_length = self.max_seq_length
        return self._hf_tokenizer

    @property
    def similarity_fn_name(self) -> str:
        return self._similarity_fn_name

    @similarity_fn_name.setter
    def similarity_fn_name(self, value: str) -> None:
        if value not in SIMILARITY_FUNCTIONS:
            raise ValueError(f"similarity_fn_name must be one of {tuple(SIMILARITY_FUNCTIONS)}, got {value!r}")
        self._similarity_fn_name = value

    def get_sentence_embedding_dimension(self) -> int:
        return self.config.hidden_size

    get_embedding_dimension = get_sentence_embedding_dimension

    def similarity(self, a, b) -> torch.Tensor:
        """Scores between every row of a (N, d) and of b (M, d): (N, M)."""
        return SIMILARITY_FUNCTIONS[self._similarity_fn_name][0](_as_matrix(a), _as_matrix(b))

    def similarity_pairwise(self, a, b) -> torch.Tensor:
        """Scores between row i of a and row i of b: (N,)."""
        a, b = _as_matrix(a), _as_matrix(b)
        if a.shape != b.shape:
            raise ValueError(f"similarity_pairwise needs equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
        return SIMILARITY_FUNCTIONS[self._similarity_fn_name][1](a, b)

    def save(self, path: str | os.PathLike) -> Path:
        """Write this model as a model directory (loads with LAM(path) and SentenceTransformer(path))."""
        from .building import write_model_dir

        card = self.model_dir / "README.md"
        config = self.config.replace(max_seq_length=self.max_seq_length)
        return write_model_dir(path, config, self._tensors, self.model_dir,
                               card.read_text() if card.is_file() else None)

    save_pretrained = save

    # -- sentence-transformers interoperability --------------------------------------------
    def to_sentence_transformer(self, path: str | os.PathLike | None = None, **kwargs):
        """This model as a `sentence_transformers.SentenceTransformer` (for its trainer, losses, ...).

        Saves the model to `path` (None: a temporary directory, removed once loaded) and loads it
        with lam's torch model, which trains through the differentiable delta rule; `kwargs` go to
        `SentenceTransformer` (device defaults to this model's).
        """
        from sentence_transformers import SentenceTransformer

        from . import _torch_model  # noqa: F401  (registers model_type "lam" with transformers)

        kwargs.setdefault("device", self.device.type)
        if path is not None:
            return SentenceTransformer(str(self.save(path)), **kwargs)
        with tempfile.TemporaryDirectory(prefix="lam-") as directory:
            return SentenceTransformer(str(self.save(Path(directory) / "model")), **kwargs)

    @property
    def model_card_data(self):
        """A sentence-transformers model card record: evaluators store their metrics in it."""
        if self._model_card_data is None:
            from sentence_transformers import SentenceTransformerModelCardData

            self._model_card_data = SentenceTransformerModelCardData()
        return self._model_card_data

    @contextmanager
    def truncate_embeddings(self, truncate_dim: int | None):
        """Within this context, `encode` keeps the first `truncate_dim` dimensions (None: all)."""
        previous = self.truncate_dim
        self.truncate_dim = truncate_dim
        try:
            yield
        finally:
            self.truncate_dim = previous

    def to(self, device: str | torch.device) -> "LAM":
        """Move the model to `device` ("cpu", "cuda", "cuda:1", ...): reloads the active backend there."""
        device = str(device)
        backend = self._load_backend(self.backend, device)
        with self._lock:
            self._device, self._backend = device, backend
        return self

    def cpu(self) -> "LAM":
        return self.to("cpu")

    def eval(self) -> "LAM":
        """No-op (LAM only runs inference; it has no dropout); returns the model."""
        return self

    def half(self):
        """Not supported: raises TypeError (see `compute_precision`)."""
        raise TypeError("LAM computes its embeddings in float32 and has no half() mode; for faster encoding load it with "
                        "LAM(..., compute_precision='bfloat16' or 'int8'); for smaller embeddings use "
                        "encode(..., precision='int8', 'uint8', 'binary' or 'ubinary')")

    # -- encoding -------------------------------------------------------------------------
    def encode_query(self, sentences, **kwargs):
        """`encode` with the "query" prompt when the model defines one."""
        if "query" in self.prompts and "prompt" not in kwargs:
            kwargs.setdefault("prompt_name", "query")
        return self.encode(sentences, **kwargs)

    def encode_document(self, sentences, **kwargs):
        """`encode` with the "document" prompt when the model defines one."""
        if "document" in self.prompts and "prompt" not in kwargs:
            kwargs.setdefault("prompt_name", "document")
        return self.encode(sentences, **kwargs)

    def __call__(self, sentences, **kwargs):
        return self.encode(sentences, **kwargs)

    def encode(self, sentences, prompt_name: str | None = None, prompt: str | None = None, batch_size: int = 32,
               show_progress_bar: bool | None = None, output_value: str | None = "sentence_embedding",
               precision: str = "float32", convert_to_numpy: bool = True, convert_to_tensor: bool = False,
               device: str | list[str] | None = None, normalize_embeddings: bool = False,
               truncate_dim: int | None = None, pool: dict | None = None, chunk_size: int | None = None, **kwargs):
        """Embed texts, with the arguments and return types of `SentenceTransformer.encode`.

        A string gives a vector (d,), a list of N strings an array (N, d); a tensor with
        `convert_to_tensor`, a list of tensors with `convert_to_numpy=False`. Rows follow the
        input order. `output_value="token_embeddings"` gives one (tokens, d) tensor per text;
        `None` gives a dict per text. Embeddings are already L2-normalised.

        Several processes: `pool=` (from `start_multi_process_pool`) or a list of devices
        (`device=["cpu", "cpu"]`, a pool for this call only) splits the texts into chunks of
        `chunk_size` (default: about 10 per worker); tensors then come back on the CPU.
        """
        if kwargs:
            raise ValueError(f"LAM.encode() got unexpected keyword arguments: {sorted(kwargs)}")
        _check_positive_int("batch_size", batch_size)
        precision = precision or "float32"
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if output_value not in ("sentence_embedding", "token_embeddings", None):
            raise ValueError(f"output_value must be 'sentence_embedding', 'token_embeddings' or None, got {output_value!r}")
        truncate_dim = truncate_dim if truncate_dim is not None else self.truncate_dim
        if truncate_dim is not None:
            _check_positive_int("truncate_dim", truncate_dim)
        if chunk_size is not None:
            _check_positive_int("chunk_size", chunk_size)
        if show_progress_bar is None:
            show_progress_bar = logger.getEffectiveLevel() in (logging.INFO, logging.DEBUG)
        single, texts = _as_text_list(sentences)
        prompt = self._resolve_prompt(prompt, prompt_name)
        if prompt:
            texts = [prompt + text for text in texts]
        keep_tokens = output_value != "sentence_embedding"
        if pool is not None or (isinstance(device, list) and device):
            target = torch.device("cpu")
            sentence, tokens, ids = self._embed_in_processes(texts, pool, device, chunk_size, batch_size,
                                                             show_progress_bar, keep_tokens)
        else:
            target = torch.device(device) if device is not None else self.device
            sentence, tokens, ids = self._embed(texts, batch_size, show_progress_bar, keep_tokens)
        if truncate_dim is not None:
            sentence = sentence[:, :truncate_dim]
        if normalize_embeddings:
            sentence = sentence / np.maximum(np.linalg.norm(sentence, axis=-1, keepdims=True), 1e-12)

        if output_value == "token_embeddings":
            result = [torch.from_numpy(t).to(target) for t in tokens]
        elif output_value is None:
            result = [{"input_ids": torch.from_numpy(i.astype(np.int64)).to(target),
                       "token_type_ids": torch.zeros(len(i), dtype=torch.int64, device=target),
                       "attention_mask": torch.ones(len(i), dtype=torch.int64, device=target),
                       "modality": "text",
                       "token_embeddings": torch.from_numpy(t).to(target),
                       "sentence_embedding": torch.from_numpy(e).to(target)}
                      for i, t, e in zip(ids, tokens, sentence)]
        else:
            if precision != "float32" and len(texts):
                sentence = quantize(sentence, precision)
            if convert_to_tensor:
                result = torch.from_numpy(sentence).to(target) if len(texts) else torch.tensor([], device=target)
            elif convert_to_numpy:
                result = sentence if len(texts) else np.array([])
            else:
                result = [torch.from_numpy(row).to(target) for row in sentence]
        return result[0] if single else result

    def encode_chunks(self, documents, chunk_tokens: int = 256, chunk_overlap: int = 0, batch_size: int = 8,
                      show_progress_bar: bool | None = None):
        """Contextual ("late") chunk embeddings: each document is read once, whole, and cut into
        chunks of whole sentences of at most `chunk_tokens` tokens (`chunk_overlap` tokens of
        sentences repeated from the previous chunk); a chunk's embedding is the normalised mean
        of its tokens' final states, so it sees the text around it.

        Returns one `lam.chunking.ChunkedDocument` per document (one, not a list, for a single
        string): `.spans` [(start, end)] character offsets, `.texts`, `.embeddings` (chunks, d).
        Only the part of a document within `max_seq_length` tokens is chunked.
        """
        from .chunking import contextual_chunks

        _check_positive_int("chunk_tokens", chunk_tokens)
        if not isinstance(chunk_overlap, int) or not 0 <= chunk_overlap < chunk_tokens:
            raise ValueError(f"chunk_overlap must be an integer in [0, chunk_tokens), got {chunk_overlap!r}")
        if show_progress_bar is None:
            show_progress_bar = logger.getEffectiveLevel() in (logging.INFO, logging.DEBUG)
        single, texts = _as_text_list(documents)
        _, tokens, _ = self._embed(texts, batch_size, show_progress_bar, keep_tokens=True)
        chunked = [contextual_chunks(text, spans, hidden[1:1 + len(spans)], truncated, chunk_tokens, chunk_overlap)
                   for text, hidden, (spans, truncated) in zip(texts, tokens, self._tokenize.spans(texts))]
        return chunked[0] if single else chunked

    def _resolve_prompt(self, prompt: str | None, prompt_name: str | None) -> str | None:
        if prompt is not None or prompt_name is None:
            return prompt
        if prompt_name not in self.prompts:
            raise ValueError(f"prompt_name {prompt_name!r} not found; the model's prompts are {sorted(self.prompts)}")
        return self.prompts[prompt_name]

    def _embed(self, texts: list[str], batch_size: int, show_progress_bar: bool, keep_tokens: bool):
        """Sentence embeddings (N, d) and, if `keep_tokens`, per-text token embeddings and ids."""
        token_ids, truncated = self._tokenize.tokenize(texts)
        if truncated and not self._warned_truncation:
            self._warned_truncation = True
            warnings.warn(f"LAM: {truncated} of {len(texts)} texts are longer than max_seq_length="
                          f"{self.max_seq_length} tokens and were truncated (set model.max_seq_length to change "
                          "the limit; this warning is shown once per model)", UserWarning, stacklevel=4)
        sentence = np.zeros((len(texts), self.config.hidden_size), dtype=np.float32)
        tokens: list = [None] * len(texts)
        plan = plan_batches([len(ids) for ids in token_ids], batch_size, self.max_tokens_per_batch)
        for rows in tqdm(plan, desc="Batches", disable=not show_progress_bar):
            batch = pad_batch(token_ids, rows, self._tokenize.pad_id)
            hidden, pooled = self._forward(batch.input_ids, batch.attention_mask)
            sentence[batch.indices] = pooled
            if keep_tokens:
                for row, index in enumerate(batch.indices):
                    tokens[index] = hidden[row, : len(token_ids[index])].copy()
        return sentence, tokens, token_ids

    # -- several processes (the sentence-transformers pool contract) -------------------------
    def _worker_spec(self) -> dict:
        """What a pool worker needs to rebuild this model: it loads `model_dir` itself."""
        return {"model_dir": str(self.model_dir), "backend": self.backend, "fallback": self.fallback,
                "max_seq_length": self.max_seq_length, "max_tokens_per_batch": self.max_tokens_per_batch}

    def start_multi_process_pool(self, target_devices: list[str] | None = None) -> dict:
        """Start one spawned encoder process per device (default: every CUDA device, else
        min(4, cores) CPU workers sharing the cores); pass the pool to `encode(..., pool=pool)`
        and end it with `stop_multi_process_pool(pool)`. Workers load the model from `model_dir`
        with this model's backend and `max_seq_length`."""
        from .multiprocess import start_pool

        return start_pool(self._worker_spec(), target_devices)

    @staticmethod
    def stop_multi_process_pool(pool: dict) -> None:
        """Stop the processes of a pool from `start_multi_process_pool`."""
        from .multiprocess import stop_pool

        stop_pool(pool)

    def encode_multi_process(self, sentences: list[str], pool: dict, prompt_name: str | None = None,
                             prompt: str | None = None, batch_size: int = 32, chunk_size: int | None = None,
                             show_progress_bar: bool | None = None, precision: str = "float32",
                             normalize_embeddings: bool = False, truncate_dim: int | None = None) -> np.ndarray:
        """Deprecated, as in sentence-transformers: `encode(sentences, pool=pool, ...)` does the same."""
        warnings.warn("encode_multi_process is deprecated; call encode(..., pool=pool) instead",
                      DeprecationWarning, stacklevel=2)
        return self.encode(sentences, prompt_name=prompt_name, prompt=prompt, batch_size=batch_size,
                           show_progress_bar=show_progress_bar, precision=precision,
                           normalize_embeddings=normalize_embeddings, truncate_dim=truncate_dim, pool=pool,
                           chunk_size=chunk_size)

    def _embed_in_processes(self, texts, pool, devices, chunk_size, batch_size, show_progress_bar, keep_tokens):
        """`_embed` across a pool, or across a temporary pool on `devices`."""
        from .multiprocess import embed_in_pool

        if not texts:
            return self._embed(texts, batch_size, False, keep_tokens)
        own_pool = pool is None
        pool = self.start_multi_process_pool(devices) if own_pool else pool
        try:
            result = embed_in_pool(pool, texts, chunk_size, batch_size, keep_tokens, show_progress_bar)
        finally:
            if own_pool:
                self.stop_multi_process_pool(pool)
        return result.sentence, result.tokens or [None] * len(texts), result.token_ids


def _check_positive_int(name: str, value) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a positive integer, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value}")


def _as_text_list(sentences) -> tuple[bool, list[str]]:
    """(single?, texts): a string is one text; a sized collection of strings (list, tuple, array,
    a `datasets` column) is a batch."""
    if isinstance(sentences, str):
        return True, [sentences]
    if sentences is None:
        raise TypeError("encode() expects a string or a list of strings, got None")
    if isinstance(sentences, np.ndarray):
        sentences = sentences.tolist()
    if isinstance(sentences, (bytes, bytearray, Mapping, torch.Tensor)) or not (
            isinstance(sentences, Iterable) and hasattr(sentences, "__len__")):
        raise TypeError(f"encode() expects a string or a list of strings, got {type(sentences).__name__}")
    sentences = list(sentences)
    for index, text in enumerate(sentences):
        if not isinstance(text, str):
            raise TypeError(f"encode() expects strings; item {index} is {type(text).__name__}")
    return False, sentences


def _as_matrix(x) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=torch.float32)
    return x[None] if x.ndim == 1 else x


def _unit(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x, dim=-1)


# name -> (all pairs (N, d), (M, d) -> (N, M); row pairs (N, d), (N, d) -> (N,))
SIMILARITY_FUNCTIONS = {
    "cosine": (lambda a, b: _unit(a) @ _unit(b).T, lambda a, b: (_unit(a) * _unit(b)).sum(-1)),
    "dot": (lambda a, b: a @ b.T, lambda a, b: (a * b).sum(-1)),
    "euclidean": (lambda a, b: -torch.cdist(a, b, p=2.0), lambda a, b: -(a - b).norm(dim=-1)),
    "manhattan": (lambda a, b: -torch.cdist(a, b, p=1.0), lambda a, b: -(a - b).abs().sum(-1)),
}
