"""`lam serve` under load: requests/s and p50/p99 latency, dynamic batching on and off, in one run.

    python benchmarks/bench_serve.py --out out/bench_serve.json

Two servers of the same model run side by side on 127.0.0.1: one with dynamic batching (the
defaults), one with `--max-batch-requests 1` (one text per forward pass). For short queries
and for 4,096-token documents, at each concurrency, both servers get the same requests, split
into rounds that alternate between the servers and their order, so a shared machine's drift
hits both alike. Clients are
threads with keep-alive connections posting one text per request to /v1/embeddings with
base64 output, as the openai client does; each thread starts its next request when the last
one answers (closed loop). Besides wall-clock figures it reports each server's CPU time per
request (Linux /proc), which a busy shared machine disturbs less.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lam.benchmarking.workloads import synthetic_document
from lam.serving.process import ServerProcess, lam_serve_command, send

MODES = {"batching on": [], "batching off": ["--max-batch-requests", "1"]}


def workloads(short_requests: int, doc_requests: int, doc_tokens: int) -> dict[str, list[bytes]]:
    """Request bodies: short queries of 8-20 tokens, and documents of exactly `doc_tokens` tokens."""
    rng = np.random.default_rng(0)
    short = [synthetic_document(int(rng.integers(8, 21)), seed=i) for i in range(short_requests)]
    docs = [synthetic_document(doc_tokens, seed=i) for i in range(doc_requests)]

    def bodies(texts):
        return [json.dumps({"input": t, "model": "bench", "encoding_format": "base64"}).encode() for t in texts]

    cells = {"short queries": bodies(short), f"{doc_tokens:,}-token documents": bodies(docs)}
    return {name: b for name, b in cells.items() if b}


@dataclass
class LoadSample:
    """One closed-loop run: per-request latencies (s), wall seconds, the server's CPU seconds."""

    latencies: list[float]
    seconds: float
    server_cpu_s: float


def run_load(server: ServerProcess, bodies: list[bytes], concurrency: int) -> LoadSample:
    """Send every body once (cycled up to one per client) from `concurrency` closed-loop clients."""
    bodies = [bodies[i % len(bodies)] for i in range(max(len(bodies), concurrency))]
    next_index = itertools.count()
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        connection = server.connect()
        try:
            while (i := next(next_index)) < len(bodies):
                start = time.perf_counter()
                status, _, body = send(connection, "POST", "/v1/embeddings", bodies[i])
                elapsed = time.perf_counter() - start
                with lock:
                    if status == 200:
                        latencies.append(elapsed)
                    else:
                        errors.append(f"{status}: {body}")
        finally:
            connection.close()

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    cpu_start = cpu_seconds(server.proc.pid)
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed, first: {errors[0]}")
    return LoadSample(latencies, wall, cpu_seconds(server.proc.pid) - cpu_start)


def summarize(samples: list[LoadSample]) -> dict:
    """Requests/s over all rounds, p50/p99 latency over all requests, server CPU per request."""
    ms = np.concatenate([s.latencies for s in samples]) * 1000
    seconds = sum(s.seconds for s in samples)
    return {"requests": len(ms), "seconds": seconds, "requests_per_s": len(ms) / seconds,
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "server_cpu_ms_per_request": sum(s.server_cpu_s for s in samples) * 1000 / len(ms)}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def markdown_table(results: list[dict]) -> str:
    lines = ["| workload | clients | requests | on: req/s | on: p50 ms | on: p99 ms | on: CPU ms/req | off: req/s "
             "| off: p50 ms | off: p99 ms | off: CPU ms/req | on/off req/s |", "|---" * 12 + "|"]
    for r in results:
        cells = [r["workload"], r["concurrency"], r["batching on"]["requests"]]
        for mode in MODES:
            m = r[mode]
            cells += [f"{m['requests_per_s']:.3g}", f"{m['p50_ms']:,.0f}", f"{m['p99_ms']:,.0f}",
                      f"{m['server_cpu_ms_per_request']:,.3g}" if m["server_cpu_ms_per_request"] < 100
                      else f"{m['server_cpu_ms_per_request']:,.0f}"]
        cells.append(f"**{r['batching on']['requests_per_s'] / r['batching off']['requests_per_s']:.2f}×**")
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="LAM-base-v1")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--compute-precision", default="float32", help="float32, bfloat16 or int8 (both servers)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of each server")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--short-requests", type=int, default=256, help="requests per cell, short queries")
    parser.add_argument("--doc-requests", type=int, default=64, help="requests per cell, documents (0: none)")
    parser.add_argument("--doc-tokens", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=4,
                        help="split each cell's requests into up to this many rounds, alternating the servers")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()

    logs = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    servers = {}
    try:
        for mode, extra in MODES.items():
            command = lam_serve_command(args.model, "--backend", args.backend, "--compute-precision", args.compute_precision,
                                        "--log-level", "warning", *extra)
            servers[mode] = ServerProcess(command, logs / f"{mode.replace(' ', '-')}.log", threads=args.threads)
        results = []
        turn = 0  # counts rounds over the whole run; its parity sets which server goes first
        for workload, bodies in workloads(args.short_requests, args.doc_requests, args.doc_tokens).items():
            for server in servers.values():  # warm-up: the first calls of a shape allocate
                run_load(server, bodies[:4], 4)
            for concurrency in args.concurrency:
                samples: dict[str, list[LoadSample]] = {mode: [] for mode in servers}
                rounds = max(1, min(args.rounds, len(bodies) // concurrency))  # a round keeps every client busy
                for part in range(rounds):  # alternating order, so drift hits both servers alike
                    for mode in list(servers)[:: 1 if turn % 2 == 0 else -1]:
                        samples[mode].append(run_load(servers[mode], bodies[part::rounds], concurrency))
                    turn += 1
                row = {"workload": workload, "concurrency": concurrency}
                row.update({mode: summarize(samples[mode]) for mode in servers})
                results.append(row)
                print(markdown_table([row]).splitlines()[-1], flush=True)
    finally:
        for server in servers.values():
            server.stop()
    table = markdown_table(results)
    print(f"\n{table}")
    short = [r for r in results if r["workload"] == "short queries" and r["concurrency"] == max(args.concurrency)]
    if short:
        gain = short[0]["batching on"]["requests_per_s"] / short[0]["batching off"]["requests_per_s"]
        print(f"\nshort queries at {max(args.concurrency)} clients: dynamic batching gives {gain:.2f}x the requests/s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        args.out.write_text(json.dumps({"settings": settings, "machine": platform.platform(), "results": results},
                                       indent=2))


if __name__ == "__main__":
    main()
