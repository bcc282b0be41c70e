"""`lam embed-corpus`: embed JSONL/Parquet corpora into resumable Parquet shards, locally or on Ray."""

from .inputs import Columns, CorpusInputError
from .run import DEFAULT_SHARD_SIZE, embed_corpus

__all__ = ["Columns", "CorpusInputError", "DEFAULT_SHARD_SIZE", "embed_corpus"]
