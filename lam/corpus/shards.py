"""The output folder of `lam embed-corpus`: atomic Parquet shards, their records, and the manifest.

    OUT/part-000000.parquet   id, embedding (fixed-size list of float32), token_count (int32)
    OUT/_manifest.json        settings, inputs, shards and totals ("complete": true at the end)
    OUT/.lock                 held while a run writes here

A shard is written to a hidden temporary name, flushed to disk and renamed, so a visible
shard is always complete. Its Parquet metadata records what it was made from (settings and
input segments); a rerun keeps a shard only if both are unchanged. Names starting with "_"
or "." are skipped by Parquet readers, so `pyarrow.dataset.dataset(OUT)` reads the shards alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path

import numpy as np

SHARD_PATTERN = re.compile(r"^part-(\d{6,})\.parquet$")
MANIFEST_NAME = "_manifest.json"
METADATA_KEY = b"lam.shard"
TEMPORARY_SUFFIX = ".tmp"


def shard_name(index: int) -> str:
    return f"part-{index:06d}.parquet"


@contextlib.contextmanager
def exclusive(folder: Path):
    """Hold OUT/.lock for the duration; a second run on the same folder fails at once."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with open(folder / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"{folder}: another embed-corpus run is writing to this folder") from None
        yield


def remove_temporaries(folder: Path) -> int:
    """Delete the files an interrupted run left half written; returns how many."""
    stale = [p for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(TEMPORARY_SUFFIX)]
    for path in stale:
        path.unlink()
    return len(stale)


def write_shard(folder: Path, index: int, ids: list, embeddings: np.ndarray, token_counts: np.ndarray,
                record: dict) -> Path:
    """Write shard `index` (rows: ids, embeddings (n, d) float32, token_counts (n,)) atomically;
    `record` (JSON) goes into its metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows, dim = embeddings.shape
    id_array = pa.array(ids, type=pa.int64() if ids and isinstance(ids[0], int) else pa.string())
    flat = pa.array(np.ascontiguousarray(embeddings, dtype=np.float32).reshape(-1))
    table = pa.table({"id": id_array, "embedding": pa.FixedSizeListArray.from_arrays(flat, dim),
                      "token_count": pa.array(np.asarray(token_counts, dtype=np.int32))})
    table = table.replace_schema_metadata({METADATA_KEY: json.dumps(record).encode()})
    target = folder / shard_name(index)
    temporary = folder / f".{target.name}.{os.getpid()}{TEMPORARY_SUFFIX}"
    with open(temporary, "wb") as handle:
        pq.write_table(table, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, target)
    _sync_folder(folder)
    return target


def read_records(folder: Path) -> dict[int, dict]:
    """{index: record} of the finished shards in `folder` (a shard whose footer cannot be read
    counts as not finished)."""
    import pyarrow.parquet as pq

    records = {}
    for path in folder.iterdir():
        match = SHARD_PATTERN.match(path.name)
        if match:
            try:
                metadata = pq.read_schema(path).metadata or {}
                records[int(match.group(1))] = json.loads(metadata[METADATA_KEY])
            except Exception:  # noqa: BLE001 - unreadable or foreign: redone
                records[int(match.group(1))] = {}
    return records


def remove_shard(folder: Path, index: int) -> None:
    (folder / shard_name(index)).unlink(missing_ok=True)


def read_manifest(folder: Path) -> dict | None:
    path = folder / MANIFEST_NAME
    return json.loads(path.read_text()) if path.is_file() else None


def write_manifest(folder: Path, manifest: dict) -> None:
    temporary = folder / f".{MANIFEST_NAME}.{os.getpid()}{TEMPORARY_SUFFIX}"
    temporary.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(temporary, folder / MANIFEST_NAME)


def _sync_folder(folder: Path) -> None:
    """Persist a rename (POSIX); a no-op where folders cannot be opened."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
