"""A pool of encoder processes with the sentence-transformers contract (spawn, chunks, input order).

`start_pool(spec, target_devices)` starts one spawned process per device; each builds its own
`LAM` from `spec` (the model directory and settings, see `LAM._worker_spec`), so nothing large
is pickled. The pool is a dict {"input": Queue, "output": Queue, "processes": [Process]}, as
`SentenceTransformer.start_multi_process_pool` returns. Tasks are (task_id, texts, options);
workers answer (task_id, ChunkResult) or (task_id, exception).

CPU workers split this process's cores (`cpu_shares`): each sets torch, OpenMP, MKL, OpenBLAS
and the tokenizer's thread pool to its share. JAX has no thread-count setting (XLA sizes its
pool from the CPU affinity), so JAX workers are also pinned to their cores on Linux.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import math
import os
import pickle
import queue
import signal
import time
import traceback
from dataclasses import dataclass

import numpy as np

POLL_SECONDS = 1.0
STOP_GRACE_SECONDS = 5.0
DEFAULT_CPU_WORKERS = 4
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS")
_calls = itertools.count()


@dataclass
class ChunkResult:
    """A worker's answer for n texts: sentence (n, d) float32, token_counts (n,) int32 and,
    when asked for, per-text token embeddings (tokens, d) and token ids."""

    sentence: np.ndarray
    token_counts: np.ndarray
    tokens: list | None = None
    token_ids: list | None = None


def usable_cores() -> list[int]:
    """The CPU cores this process may run on (its affinity where the OS reports one)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def cpu_shares(workers: int, cores: list[int] | None = None, size: int | None = None) -> list[list[int]]:
    """Groups of `cores` for `workers` processes: `size` consecutive cores each (wrapping round
    when there are too few), else disjoint groups as even as possible (the first get the
    remainder), or, with more workers than cores, core i mod len(cores) for worker i."""
    cores = usable_cores() if cores is None else cores
    if size is not None:
        return [[cores[(i * size + j) % len(cores)] for j in range(size)] for i in range(workers)]
    if workers >= len(cores):
        return [[cores[i % len(cores)]] for i in range(workers)]
    size, extra = divmod(len(cores), workers)
    shares, start = [], 0
    for i in range(workers):
        end = start + size + (i < extra)
        shares.append(cores[start:end])
        start = end
    return shares


def default_devices() -> list[str]:
    """Every CUDA device if torch sees one, else min(4, cores) CPU workers."""
    import torch

    if torch.cuda.is_available():
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return ["cpu"] * max(1, min(DEFAULT_CPU_WORKERS, len(usable_cores())))


def limit_threads(threads: int, pin_to: list[int] | None = None) -> None:
    """Make this process compute on `threads` threads (call before the backend loads).

    Sets the thread environment variables (read when OpenMP, BLAS and the tokenizer's pool
    start), XLA's single-thread flags when threads == 1, torch's intra-op threads and, given
    `pin_to`, the CPU affinity (the only limit XLA's CPU thread pool obeys).
    """
    for name in THREAD_ENV_VARS:
        os.environ[name] = str(threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if threads > 1 else "false"
    if threads == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_cpu_multi_thread_eigen" not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1".strip()
    if pin_to and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, pin_to)
    import torch

    torch.set_num_threads(threads)


def start_pool(spec: dict, target_devices: list[str] | None = None, threads_per_worker: int | None = None) -> dict:
    """Start one spawned worker per device; see the module docstring for the pool's shape.
    CPU workers split the cores evenly, or get `threads_per_worker` cores each."""
    import multiprocessing

    devices = [str(d) for d in (target_devices or default_devices())]
    cpu_workers = sum(d == "cpu" for d in devices)
    shares = iter(cpu_shares(cpu_workers, size=threads_per_worker) if cpu_workers else [])
    context = multiprocessing.get_context("spawn")
    inputs, outputs = context.Queue(), context.Queue()
    processes = []
    for device in devices:
        share = next(shares) if device == "cpu" else None
        process = context.Process(target=_worker_main, args=(spec, device, share, os.getpid(), inputs, outputs),
                                  daemon=True, name=f"lam-encoder-{len(processes)}")
        process.start()
        processes.append(process)
    return {"input": inputs, "output": outputs, "processes": processes}


def stop_pool(pool: dict) -> None:
    """Stop the pool's workers and close its queues.

    Queued tasks are dropped (those a waiting worker does not hold the queue's lock over) and
    each worker is asked to exit, so that it runs its exit handlers (a terminated process leaks
    the semaphores it created, e.g. tqdm's lock); a worker still busy after STOP_GRACE_SECONDS
    is terminated.
    """
    with contextlib.suppress(queue.Empty, OSError, ValueError):
        while True:
            pool["input"].get_nowait()
    for _ in pool["processes"]:
        pool["input"].put(None)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for process in pool["processes"]:
        process.join(timeout=max(0.0, deadline - time.monotonic()))
    for process in pool["processes"]:
        if process.is_alive():
            process.terminate()
            process.join()
        process.close()
    pool["input"].cancel_join_thread()
    pool["input"].close()
    pool["output"].close()


def _worker_main(spec: dict, device: str, share: list[int] | None, parent_pid: int, inputs, outputs) -> None:
    """Build the model, then answer tasks until terminated or the parent is gone.

    A model that fails to load answers every task with that error, so the caller sees it.
    Ctrl-C is left to the parent, which stops the pool.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        if share is not None:
            limit_threads(len(share), share if spec["backend"] == "jax" else None)
        from .facade import LAM

        model = LAM(spec["model_dir"], backend=spec["backend"], device=device, fallback=spec["fallback"],
                    max_tokens_per_batch=spec["max_tokens_per_batch"])
        model.max_seq_length = spec["max_seq_length"]
        failure = None
    except Exception as err:  # noqa: BLE001 - reported with every task below
        model, failure = None, err
    while True:
        if os.getppid() != parent_pid:  # the parent died (e.g. kill -9): do not linger
            os._exit(0)
        try:
            task = inputs.get(timeout=POLL_SECONDS)
        except queue.Empty:
            continue
        if task is None:  # stop_pool: exit normally, without waiting for unread results
            outputs.cancel_join_thread()
            return
        task_id, texts, options = task
        try:
            if failure is not None:
                raise failure
            outputs.put((task_id, embed_chunk(model, texts, **options)))
        except Exception as err:  # noqa: BLE001 - sent back to the caller
            outputs.put((task_id, _picklable(err)))


def embed_chunk(model, texts: list[str], batch_size: int = 32, keep_tokens: bool = False) -> ChunkResult:
    """Embed one chunk in this process."""
    sentence, tokens, token_ids = model._embed(texts, batch_size, False, keep_tokens)
    counts = np.fromiter((len(ids) for ids in token_ids), dtype=np.int32, count=len(texts))
    if keep_tokens:
        return ChunkResult(sentence, counts, tokens, token_ids)
    return ChunkResult(sentence, counts)


def _picklable(err: Exception) -> Exception:
    """`err`, or a RuntimeError carrying its traceback if it does not survive pickling."""
    try:
        pickle.dumps(err)  # its contents pickle ...
        copy.deepcopy(err)  # ... and it rebuilds from its reduce tuple, as unpickling in the parent would
        return err
    except Exception:  # noqa: BLE001
        return RuntimeError("".join(traceback.format_exception(err)))


def submit(pool: dict, task_id, texts: list[str], options: dict) -> None:
    pool["input"].put((task_id, texts, options))


def next_result(pool: dict):
    """The next (task_id, ChunkResult | Exception) from any worker; raises if a worker died."""
    while True:
        try:
            return pool["output"].get(timeout=POLL_SECONDS)
        except queue.Empty:
            dead = [p for p in pool["processes"] if not p.is_alive()]
            if dead:
                details = ", ".join(f"pid {p.pid} (exit code {p.exitcode})" for p in dead)
                raise RuntimeError(f"{len(dead)} encoder pool worker(s) died: {details}; "
                                   "stop the pool and start a new one") from None


def default_chunk_size(texts: int, workers: int) -> int:
    """sentence-transformers' rule: about 10 chunks per worker, at most 5,000 texts each."""
    return max(1, min(math.ceil(texts / workers / 10), 5000))


def embed_in_pool(pool: dict, texts: list[str], chunk_size: int | None, batch_size: int,
                  keep_tokens: bool, show_progress_bar: bool) -> ChunkResult:
    """Embed `texts` in chunks across the pool; rows come back in input order."""
    from tqdm.auto import tqdm

    chunk_size = chunk_size or default_chunk_size(len(texts), len(pool["processes"]))
    call = ("encode", next(_calls))  # results of an earlier, interrupted call are told apart and dropped
    starts = range(0, len(texts), chunk_size)
    for index, start in enumerate(starts):
        submit(pool, (*call, index), texts[start:start + chunk_size],
               {"batch_size": batch_size, "keep_tokens": keep_tokens})
    chunks: list = [None] * len(starts)
    with tqdm(total=len(starts), desc="Chunks", disable=not show_progress_bar) as progress:
        for _ in starts:
            task_id, result = next_result(pool)
            while task_id[:2] != call:
                task_id, result = next_result(pool)
            if isinstance(result, Exception):
                raise result
            chunks[task_id[2]] = result
            progress.update()
    return ChunkResult(np.concatenate([c.sentence for c in chunks]), np.concatenate([c.token_counts for c in chunks]),
                       [t for c in chunks for t in c.tokens] if keep_tokens else None,
                       [i for c in chunks for i in c.token_ids] if keep_tokens else None)
