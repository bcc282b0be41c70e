"""Shared pieces of the embed-corpus tests: a mixed JSONL + Parquet corpus and reading the output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

WORDS = ["river", "stone", "light", "market", "winter", "garden", "signal", "copper", "harbor", "violet"]


def corpus_texts(count: int) -> list[str]:
    """`count` short texts of 1 to 12 words, deterministic."""
    return [" ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(1 + i % 12)) + f" {i}" for i in range(count)]


def write_corpus(folder: Path, texts: list[str], jsonl_rows: int, row_group_size: int = 300) -> list[str]:
    """a.jsonl holds the first `jsonl_rows` texts (with a blank line inside), b.parquet the rest
    (in row groups); ids are "doc-<i>". Returns the ids in row order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    ids = [f"doc-{i}" for i in range(len(texts))]
    with open(folder / "a.jsonl", "w", encoding="utf-8") as handle:
        for i in range(jsonl_rows):
            handle.write(json.dumps({"doc_id": ids[i], "body": texts[i], "extra": i}) + "\n")
            if i == 10:
                handle.write("\n")
    table = pa.table({"doc_id": ids[jsonl_rows:], "body": texts[jsonl_rows:]})
    pq.write_table(table, folder / "b.parquet", row_group_size=row_group_size)
    return ids


def read_output(folder: Path) -> dict[str, np.ndarray]:
    """The shards of an embed-corpus output folder, read as one Parquet dataset."""
    import pyarrow.dataset as ds

    table = ds.dataset(folder, format="parquet").to_table()
    dim = table.schema.field("embedding").type.list_size
    return {"id": np.asarray(table.column("id").to_pylist(), dtype=object),
            "embedding": table.column("embedding").combine_chunks().flatten().to_numpy().reshape(-1, dim),
            "token_count": table.column("token_count").to_numpy()}


def assert_every_id_once_and_embeddings_match(output: dict, ids: list, texts: list[str], model, atol: float) -> None:
    """Each id exactly once; every row's embedding equals model.encode of its text to `atol`."""
    got_ids = list(output["id"])
    assert len(got_ids) == len(ids) and sorted(got_ids) == sorted(ids), "ids lost or duplicated"
    position = {key: i for i, key in enumerate(ids)}
    order = np.asarray([position[key] for key in got_ids])
    expected = model.encode([texts[i] for i in order])
    np.testing.assert_allclose(output["embedding"], expected, rtol=0, atol=atol)
    lengths = [len(t) for t in model._tokenize([texts[i] for i in order])]
    np.testing.assert_array_equal(output["token_count"], lengths)


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))
