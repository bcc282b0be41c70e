"""Corpus input: JSONL and Parquet files, planned into fixed-size shards and read one shard at a time.

Rows are numbered 0.. across the input files in sorted path order (a folder is searched
recursively for *.jsonl and *.parquet); a JSONL row is a non-blank line holding a JSON object.
Shard k holds rows [k * shard_size, (k + 1) * shard_size). Planning reads Parquet footers and
scans JSONL files once for line offsets, so any shard can later be read on its own (by
another process or another machine) without reading the rows before it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

INPUT_SUFFIXES = {".jsonl": "jsonl", ".parquet": "parquet"}


class CorpusInputError(ValueError):
    """Input that cannot be embedded; the message names the file and, where there is one, the row."""


@dataclass(frozen=True)
class InputFile:
    """One input file as planned: `name` is relative to the input root (recorded in shards)."""

    path: str
    name: str
    kind: str
    size: int
    mtime_ns: int
    rows: int


@dataclass(frozen=True)
class Segment:
    """Rows [first, first + rows) of one file; for JSONL the byte offset and 1-based line of `first`."""

    path: str
    name: str
    kind: str
    size: int
    mtime_ns: int
    first: int
    rows: int
    offset: int = 0
    line: int = 1


@dataclass(frozen=True)
class Shard:
    """Rows [first_row, first_row + rows) of the corpus, as segments of files."""

    index: int
    first_row: int
    rows: int
    segments: tuple[Segment, ...]

    def source(self) -> list[dict]:
        """What this shard was made from (names, sizes, mtimes, rows): a rerun compares it."""
        return [{k: v for k, v in asdict(s).items() if k != "path"} for s in self.segments]

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Shard:
        fields = json.loads(text)
        return cls(fields["index"], fields["first_row"], fields["rows"],
                   tuple(Segment(**s) for s in fields["segments"]))


@dataclass(frozen=True)
class Columns:
    """Names of the text column and of the optional id column (None: ids are row numbers)."""

    text: str = "text"
    id: str | None = None


def input_files(root: str | os.PathLike) -> list[tuple[Path, str]]:
    """(path, kind) of every input file under `root` (a file or a folder), sorted by path."""
    root = Path(root)
    if root.is_file():
        kind = INPUT_SUFFIXES.get(root.suffix)
        if kind is None:
            raise CorpusInputError(f"{root}: not a .jsonl or .parquet file")
        return [(root, kind)]
    if not root.is_dir():
        raise CorpusInputError(f"{root}: no such file or folder")
    found = sorted(p for p in root.rglob("*") if p.suffix in INPUT_SUFFIXES and p.is_file()
                   and not any(part.startswith((".", "_")) for part in p.relative_to(root).parts))
    if not found:
        raise CorpusInputError(f"{root}: no .jsonl or .parquet files in this folder")
    return [(p, INPUT_SUFFIXES[p.suffix]) for p in found]


def plan_shards(root: str | os.PathLike, shard_size: int) -> tuple[list[InputFile], list[Shard]]:
    """The input files and the shards that cover their rows, in order."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    root = Path(root)
    files, starts, total = [], [], 0
    for path, kind in input_files(root):
        name = path.name if root.is_file() else path.relative_to(root).as_posix()
        stat = _stat(path)
        wanted = -total % shard_size  # first row of this file that starts a shard
        if kind == "parquet":
            rows = _parquet_rows(path)
            marks = {row: (0, 1) for row in range(wanted, rows, shard_size)}
        else:
            rows, marks = _scan_jsonl(path, wanted, shard_size)
        files.append(InputFile(os.fspath(path.resolve()), name, kind, stat.st_size, stat.st_mtime_ns, rows))
        starts.append((total, marks))
        total += rows
    shards = []
    for index, first_row in enumerate(range(0, total, shard_size)):
        end = min(first_row + shard_size, total)
        segments = []
        for file, (file_start, marks) in zip(files, starts):
            low, high = max(first_row, file_start), min(end, file_start + file.rows)
            if low < high:
                offset, line = marks.get(low - file_start, (0, 1))
                segments.append(Segment(file.path, file.name, file.kind, file.size, file.mtime_ns,
                                        low - file_start, high - low, offset, line))
        shards.append(Shard(index, first_row, end - first_row, tuple(segments)))
    return files, shards


def _stat(path: Path) -> os.stat_result:
    try:
        with open(path, "rb"):
            pass
        return path.stat()
    except OSError as err:
        raise CorpusInputError(f"{path}: cannot read ({err.strerror or err})") from err


def _parquet_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path).metadata.num_rows
    except Exception as err:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise CorpusInputError(f"{path}: not a readable Parquet file ({err})") from err


def _scan_jsonl(path: Path, first_mark: int, step: int) -> tuple[int, dict[int, tuple[int, int]]]:
    """(rows, {row: (byte offset, line)}) for rows first_mark, first_mark + step, ..."""
    rows, offset, marks = 0, 0, {}
    with open(path, "rb") as handle:
        for line_number, line in enumerate(handle, start=1):
            if line.strip():
                if rows >= first_mark and (rows - first_mark) % step == 0:
                    marks[rows] = (offset, line_number)
                rows += 1
            offset += len(line)
    return rows, marks


def read_shard(shard: Shard, columns: Columns) -> tuple[list, list[str]]:
    """(ids, texts) of the shard's rows; ids are row numbers unless `columns.id` is set (then
    strings). Raises CorpusInputError naming the file and row (JSONL: line) of a bad value."""
    ids, texts = [], []
    row = shard.first_row
    for segment in shard.segments:
        reader = _read_parquet if segment.kind == "parquet" else _read_jsonl
        for where, text, key in reader(segment, columns):
            texts.append(_checked(text, columns.text, segment, where))
            ids.append(row if columns.id is None else _checked_id(key, columns.id, segment, where))
            row += 1
    return ids, texts


def _checked(value, column: str, segment: Segment, where: str) -> str:
    if not isinstance(value, str):
        raise CorpusInputError(f"{segment.path}: {where}: {column!r} is {_kind(value)}, not a string")
    return value


def _checked_id(value, column: str, segment: Segment, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise CorpusInputError(f"{segment.path}: {where}: id {column!r} is {_kind(value)}, not a string or integer")
    return str(value)


def _kind(value) -> str:
    return "null" if value is None else f"of type {type(value).__name__}"


def _read_jsonl(segment: Segment, columns: Columns):
    """(where, text, id) for each of the segment's rows."""
    wanted = [columns.text] if columns.id is None else [columns.text, columns.id]
    with open(segment.path, "rb") as handle:
        handle.seek(segment.offset)
        line_number, done = segment.line - 1, 0
        while done < segment.rows:
            line = handle.readline()
            line_number += 1
            where = f"line {line_number}"
            if not line:
                raise CorpusInputError(f"{segment.path}: ended before {where}; was it changed during the run?")
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                raise CorpusInputError(f"{segment.path}: {where}: not a JSON object ({err})") from None
            if not isinstance(record, dict):
                raise CorpusInputError(f"{segment.path}: {where}: not a JSON object but a {type(record).__name__}")
            for column in wanted:
                if column not in record:
                    raise CorpusInputError(f"{segment.path}: {where}: no {column!r} field "
                                           f"(fields: {', '.join(sorted(record)) or 'none'})")
            yield where, record[columns.text], record.get(columns.id) if columns.id else None
            done += 1


def _read_parquet(segment: Segment, columns: Columns):
    """(where, text, id) for each of the segment's rows, reading only the row groups they span."""
    import pyarrow.parquet as pq

    wanted = [columns.text] if columns.id is None else [columns.text, columns.id]
    try:
        handle = pq.ParquetFile(segment.path)
    except Exception as err:  # noqa: BLE001
        raise CorpusInputError(f"{segment.path}: not a readable Parquet file ({err})") from err
    names = handle.schema_arrow.names
    for column in wanted:
        if column not in names:
            raise CorpusInputError(f"{segment.path}: row {segment.first}: no {column!r} column "
                                   f"(columns: {', '.join(names)})")
    group_start, end = 0, segment.first + segment.rows
    for group in range(handle.metadata.num_row_groups):
        group_rows = handle.metadata.row_group(group).num_rows
        low, high = max(segment.first, group_start), min(end, group_start + group_rows)
        if low < high:
            table = handle.read_row_group(group, columns=wanted).slice(low - group_start, high - low)
            texts = table.column(columns.text).to_pylist()
            keys = table.column(columns.id).to_pylist() if columns.id else [None] * len(texts)
            for offset, (text, key) in enumerate(zip(texts, keys)):
                yield f"row {low + offset}", text, key
        group_start += group_rows
