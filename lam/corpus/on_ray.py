"""`embed-corpus --ray`: shards read by Ray tasks, embedded by a LAM actor pool, written by the driver.

The dataset starts as one descriptor per missing shard; tasks read each shard's rows (every
node must see the input paths), `lam.ray.embed_dataset` embeds them, and this process
assembles each shard from the returned rows and writes it atomically. It checks every row
arrives exactly once, so a retried batch (after an actor died) cannot duplicate or lose rows
unnoticed.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import math
import re

import numpy as np

from .inputs import Columns, CorpusInputError, Shard, read_shard

PIECES_PER_ACTOR = 4  # read tasks per actor at least (shards are split when there are fewer)


def embed_on_ray(address: str, todo: list[Shard], columns: Columns, settings: dict, backend: str,
                 workers: int | None, cpus_per_worker: int, batch_size: int, sink, embedder_class=None) -> str:
    """Embed the shards `todo` into `sink` on Ray; returns a description of the actor pool."""
    from ..ray import LAMEmbedder, embed_dataset, require_ray

    ray = require_ray()
    with _connected(ray, address), _ordered_quiet_execution(ray):
        actors = workers or max(1, int(ray.cluster_resources().get("CPU", 1) // cpus_per_worker))
        rows = _one_block_each(ray, _pieces(todo, actors)).map_batches(functools.partial(read_rows, columns=columns),
                                                             batch_size=1, batch_format="numpy")
        embedded = embed_dataset(rows, text_column="text", model=settings["model"], backend=backend,
                                 num_actors=actors, cpus_per_actor=cpus_per_worker, batch_size=None,
                                 encode_batch_size=batch_size,
                                 max_seq_length=settings["max_seq_length"],
                                 embedder_class=embedder_class or LAMEmbedder)
        try:
            _assemble(embedded.iter_batches(batch_format="numpy", batch_size=None), todo, settings, sink)
        except Exception as err:  # noqa: BLE001 - Ray wraps a bad row's error in its own types
            message = _input_error(err)
            if message is None:
                raise
            raise CorpusInputError(message) from None
    return f"ray, {actors} actor{'s' * (actors > 1)} of {cpus_per_worker} CPU{'s' * (cpus_per_worker > 1)}"


def read_rows(batch: dict[str, np.ndarray], columns: Columns) -> dict[str, np.ndarray]:
    """Ray task: the rows (row number, id, text) [start, stop) of the shards described in `batch`.

    A piece reads its whole shard and keeps its rows (JSONL offsets are planned per shard);
    pieces exist only when there are too few shards to keep every actor busy, and reading a
    shard costs little next to embedding it.
    """
    numbers, ids, texts = [], [], []
    for description, start, stop in zip(batch["shard"], batch["start"], batch["stop"]):
        shard = Shard.from_json(description)
        shard_ids, shard_texts = read_shard(shard, columns)
        numbers.extend(range(shard.first_row + start, shard.first_row + stop))
        ids.extend(shard_ids[start:stop])
        texts.extend(shard_texts[start:stop])
    return {"row": np.asarray(numbers, dtype=np.int64),
            "id": np.asarray(ids, dtype=np.int64 if columns.id is None else object),
            "text": np.asarray(texts, dtype=object)}


def _pieces(todo: list[Shard], actors: int) -> list[dict]:
    """Read tasks: whole shards, or, when there are fewer than PIECES_PER_ACTOR per actor,
    equal row ranges of each shard.

    The fused read-and-embed operator takes one piece per actor call (`batch_size=None`): with
    a batch size in rows, Ray Data would bundle that many one-row piece descriptors into a
    single call, and one actor would embed everything while the others wait.
    """
    per_shard = math.ceil(PIECES_PER_ACTOR * actors / len(todo))
    pieces = []
    for shard in todo:
        size = math.ceil(shard.rows / per_shard)
        pieces += [{"shard": shard.to_json(), "start": start, "stop": min(start + size, shard.rows)}
                   for start in range(0, shard.rows, size)]
    return pieces


def _one_block_each(ray, items: list[dict]):
    """A dataset of `items`, one block (so one task) per item, across Ray versions."""
    parameters = inspect.signature(ray.data.from_items).parameters
    name = "override_num_blocks" if "override_num_blocks" in parameters else "parallelism"
    return ray.data.from_items(items, **{name: len(items)})


def _assemble(batches, todo: list[Shard], settings: dict, sink) -> None:
    """Collect returned rows into their shards; write each shard once all its rows are in."""
    by_first_row = {shard.first_row: shard for shard in todo}
    shard_size, dimension = settings["shard_size"], settings["dimension"]
    open_shards: dict[int, dict] = {}
    for batch in batches:
        rows = batch["row"]
        for first_row in np.unique(rows // shard_size * shard_size):
            shard = by_first_row.get(int(first_row))
            if shard is None:
                raise RuntimeError(f"Ray returned row {int(first_row)}, which belongs to no shard of this run")
            mine = np.flatnonzero(rows // shard_size * shard_size == first_row)
            positions = rows[mine] - shard.first_row
            entry = open_shards.setdefault(shard.index, {
                "seen": np.zeros(shard.rows, bool), "ids": [None] * shard.rows,
                "embeddings": np.zeros((shard.rows, dimension), np.float32),
                "token_counts": np.zeros(shard.rows, np.int32)})
            if entry["seen"][positions].any() or len(np.unique(positions)) != len(positions):
                raise RuntimeError(f"Ray returned a row of shard {shard.index} twice; nothing of it was written")
            entry["seen"][positions] = True
            entry["embeddings"][positions] = np.stack(batch["embedding"][mine])
            entry["token_counts"][positions] = batch["token_count"][mine]
            for position, key in zip(positions, batch["id"][mine]):
                entry["ids"][position] = key.item() if isinstance(key, np.generic) else key
            sink.progress(len(mine), int(batch["token_count"][mine].sum()))
            if entry["seen"].all():
                del open_shards[shard.index]
                sink.finish(shard, entry["ids"], entry["embeddings"], entry["token_counts"])
    if open_shards or len(sink.written) < len(todo):
        raise RuntimeError(f"Ray returned only part of the rows ({len(todo) - len(sink.written)} shards incomplete); "
                           "rerun to redo them")


def _input_error(err: BaseException) -> str | None:
    """The message of a CorpusInputError raised in a Ray task. Ray Data re-raises it as a
    UserCodeException that carries the original only as text in its remote traceback."""
    found = re.search(rf"{CorpusInputError.__name__}: (.+)", str(err))
    return found.group(1).strip() if found else None


@contextlib.contextmanager
def _connected(ray, address: str):
    """Use the running Ray session, else start ("local") or join ("auto", an address) a cluster."""
    if ray.is_initialized():
        yield
        return
    ray.init(address=address, logging_level="WARNING")
    try:
        yield
    finally:
        ray.shutdown()


@contextlib.contextmanager
def _ordered_quiet_execution(ray):
    """Rows come back in input order (so the driver holds about one shard), without Ray Data's
    own progress bars and progress log lines."""
    context = ray.data.DataContext.get_current()
    saved = context.execution_options.preserve_order, context.enable_progress_bars
    logger = logging.getLogger("ray.data")
    level = logger.level
    context.execution_options.preserve_order, context.enable_progress_bars = True, False
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        context.execution_options.preserve_order, context.enable_progress_bars = saved
        logger.setLevel(level)
