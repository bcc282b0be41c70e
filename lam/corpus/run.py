"""`embed_corpus`: plan the shards, keep the finished ones, embed the rest locally or on Ray."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..multiprocess import DEFAULT_CPU_WORKERS, usable_cores
from .inputs import Columns, CorpusInputError, Shard, plan_shards, read_shard
from .shards import (exclusive, read_manifest, read_records, remove_shard, remove_temporaries, write_manifest,
                     write_shard)

DEFAULT_SHARD_SIZE = 10_000
MAX_SHARDS_IN_FLIGHT = 2  # local: memory holds at most this many shards' texts and embeddings


@dataclass
class ShardSink:
    """Where finished shards go: written atomically, counted, and shown on a progress bar."""

    folder: Path
    settings: dict
    bar: object
    written: dict = field(default_factory=dict)  # index -> record
    rows: int = 0
    tokens: int = 0
    started: float = field(default_factory=time.perf_counter)
    first: tuple[float, int, int] | None = None  # (seconds, rows, tokens) when the first rows came back

    def progress(self, rows: int, tokens: int) -> None:
        if self.first is None:
            self.first = (time.perf_counter() - self.started, rows, tokens)
        self.rows += rows
        self.tokens += tokens
        self.bar.update(rows)
        self.bar.set_postfix_str(f"{self.tokens / max(time.perf_counter() - self.started, 1e-9):,.0f} tokens/s")

    def finish(self, shard: Shard, ids: list, embeddings: np.ndarray, token_counts: np.ndarray) -> None:
        record = {"index": shard.index, "first_row": shard.first_row, "rows": shard.rows,
                  "tokens": int(token_counts.sum()), "settings": self.settings, "source": shard.source()}
        write_shard(self.folder, shard.index, ids, embeddings, token_counts, record)
        self.written[shard.index] = record


def embed_corpus(input_path: str | os.PathLike, output: str | os.PathLike, *, model: str = "LAM-base-v1",
                 backend: str = "auto", text_column: str = "text", id_column: str | None = None,
                 shard_size: int = DEFAULT_SHARD_SIZE, workers: int | None = None, cpus_per_worker: int | None = None,
                 chunk_size: int | None = None, batch_size: int = 32, max_seq_length: int | None = None,
                 ray_address: str | None = None, progress: bool = True, embedder_class=None) -> dict:
    """Embed every row of `input_path` into Parquet shards in `output`; returns the run's summary.

    Local by default: a pool of `workers` processes (default: min(4, cores)) of
    `cpus_per_worker` threads each (default: the cores split evenly). With `ray_address`
    ("local" starts a Ray cluster here, "auto" or an address joins one), `workers` Ray actors
    of `cpus_per_worker` CPUs each (defaults: 1 CPU, as many actors as the cluster has CPUs).
    Shards already finished from the same input and settings are kept, so a rerun after an
    interruption only embeds the missing ones.
    """
    from tqdm.auto import tqdm

    from ..facade import LAM
    from ..teacher import sha256_of
    from ..weights_io import WEIGHTS_NAME

    _require_pyarrow()
    columns = Columns(text_column, id_column)
    folder = Path(output)
    folder.mkdir(parents=True, exist_ok=True)
    with exclusive(folder):
        remove_temporaries(folder)
        files, shards = plan_shards(input_path, shard_size)
        encoder = LAM(model, backend=backend)
        if max_seq_length is not None:
            encoder.max_seq_length = max_seq_length
        settings = {"model": os.fspath(model), "weights_sha256": sha256_of(encoder.model_dir / WEIGHTS_NAME),
                    "max_seq_length": encoder.max_seq_length, "dimension": encoder.get_sentence_embedding_dimension(),
                    "text_column": columns.text, "id_column": columns.id, "shard_size": shard_size}
        _check_settings(folder, settings)
        manifest = {"format": "lam-embed-corpus/1", "complete": False, "settings": settings,
                    "inputs": [{"name": f.name, "kind": f.kind, "size": f.size, "mtime_ns": f.mtime_ns, "rows": f.rows}
                               for f in files],
                    "rows": sum(f.rows for f in files), "shard_count": len(shards)}
        write_manifest(folder, manifest)

        kept = _kept_records(folder, shards, settings)
        todo = [s for s in shards if s.index not in kept]
        with tqdm(total=sum(s.rows for s in todo), unit="rows", desc="embed-corpus", disable=not (progress and todo),
                  dynamic_ncols=True) as bar:
            sink = ShardSink(folder, settings, bar)
            if not todo:
                engine = "nothing to do"
            elif ray_address is None:
                workers = workers or _default_local_workers()
                threads = cpus_per_worker or max(1, len(usable_cores()) // workers)
                engine = f"local, {workers} worker process{'es' * (workers > 1)} of {threads} thread{'s' * (threads > 1)}"
                _embed_locally(encoder, todo, columns, workers, cpus_per_worker, chunk_size, batch_size, sink)
            else:
                from .on_ray import embed_on_ray

                engine = embed_on_ray(ray_address, todo, columns, settings, backend, workers, cpus_per_worker or 1,
                                      batch_size, sink, embedder_class)
        seconds = time.perf_counter() - sink.started
        records = {**kept, **sink.written}
        if sorted(records) != list(range(len(shards))) or sum(r["rows"] for r in records.values()) != manifest["rows"]:
            raise RuntimeError(f"{folder}: the shards do not cover the input exactly once; rerun to redo the missing ones")
        manifest.update(complete=True, tokens=sum(r["tokens"] for r in records.values()),
                        shards=[{"file": f"part-{i:06d}.parquet", "first_row": records[i]["first_row"],
                                 "rows": records[i]["rows"], "tokens": records[i]["tokens"]} for i in sorted(records)])
        write_manifest(folder, manifest)
    summary = {"output": str(folder), "engine": engine, "rows": manifest["rows"], "tokens": manifest["tokens"],
               "shards": len(shards), "shards_kept": len(kept), "shards_written": len(sink.written),
               "rows_embedded": sink.rows, "tokens_embedded": sink.tokens, "seconds": seconds,
               "rows_per_second": sink.rows / seconds, "tokens_per_second": sink.tokens / seconds}
    if sink.first is not None:  # after the first rows: without worker start-up and model loading
        start, rows, tokens = sink.first
        summary.update(first_rows_seconds=start, steady_rows_per_second=(sink.rows - rows) / max(seconds - start, 1e-9),
                       steady_tokens_per_second=(sink.tokens - tokens) / max(seconds - start, 1e-9))
    return summary


def _require_pyarrow() -> None:
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError as err:
        raise ImportError("embed-corpus reads and writes Parquet with pyarrow: pip install 'lam-embeddings[corpus]'"
                          f" ({err})") from err


def _check_settings(folder: Path, settings: dict) -> None:
    previous = read_manifest(folder)
    if previous is not None and previous.get("settings") != settings:
        changed = sorted(k for k in settings if previous.get("settings", {}).get(k) != settings[k])
        raise ValueError(f"{folder} holds embeddings made with other settings ({', '.join(changed)}); "
                         "use a new output folder, or delete this one to start again")


def _kept_records(folder: Path, shards: list[Shard], settings: dict) -> dict[int, dict]:
    """Records of the finished shards that match the plan; stale shard files are deleted."""
    kept = {}
    for index, record in read_records(folder).items():
        shard = shards[index] if index < len(shards) else None
        if (shard is not None and record.get("settings") == settings and record.get("first_row") == shard.first_row
                and record.get("rows") == shard.rows and record.get("source") == shard.source()):
            kept[index] = record
        else:
            remove_shard(folder, index)
    return kept


def _default_local_workers() -> int:
    return max(1, min(DEFAULT_CPU_WORKERS, len(usable_cores())))


def _embed_locally(encoder, todo: list[Shard], columns: Columns, workers: int, threads_per_worker: int | None,
                   chunk_size: int | None, batch_size: int, sink: ShardSink) -> None:
    """Embed `todo` in a pool of CPU workers, at most MAX_SHARDS_IN_FLIGHT shards at a time.

    A bad row stops reading new shards; the shards already in flight are finished and
    written before the error is raised.
    """
    from ..multiprocess import next_result, start_pool, stop_pool, submit

    pool = start_pool(encoder._worker_spec(), ["cpu"] * workers, threads_per_worker)
    pending = iter(todo)
    in_flight: dict[int, dict] = {}
    input_error: CorpusInputError | None = None
    try:
        while True:
            while input_error is None and len(in_flight) < MAX_SHARDS_IN_FLIGHT:
                shard = next(pending, None)
                if shard is None:
                    break
                try:
                    ids, texts = read_shard(shard, columns)
                except CorpusInputError as err:
                    input_error = err
                    break
                size = chunk_size or max(1, math.ceil(shard.rows / (4 * workers)))
                for start in range(0, shard.rows, size):
                    submit(pool, ("corpus", shard.index, start), texts[start:start + size], {"batch_size": batch_size})
                in_flight[shard.index] = {"shard": shard, "ids": ids, "left": shard.rows,
                                          "embeddings": np.zeros((shard.rows, sink.settings["dimension"]), np.float32),
                                          "token_counts": np.zeros(shard.rows, np.int32)}
            if not in_flight:
                break
            (kind, index, start), result = next_result(pool)
            if kind != "corpus" or index not in in_flight:
                continue
            if isinstance(result, Exception):
                raise result
            entry = in_flight[index]
            rows = len(result.token_counts)
            entry["embeddings"][start:start + rows] = result.sentence
            entry["token_counts"][start:start + rows] = result.token_counts
            entry["left"] -= rows
            sink.progress(rows, int(result.token_counts.sum()))
            if entry["left"] == 0:
                del in_flight[index]
                sink.finish(entry["shard"], entry["ids"], entry["embeddings"], entry["token_counts"])
    finally:
        stop_pool(pool)
    if input_error is not None:
        raise input_error
