"""`lam serve` under faults (test-only launcher): a failing batch, overload (429), truncation, SIGTERM."""

from __future__ import annotations

import signal
import threading
import time

import numpy as np
import pytest

from lam import LAM
from lam.benchmarking.workloads import synthetic_document
from serving_fault_server import FAIL_MARKER, SLOW_MARKER, SLOW_SECONDS
from lam.serving.process import ServerProcess
from serving_helpers import STOPPED_BY_SIGTERM, fault_server_command, metrics

MAX_INPUT_TOKENS = 16
MAX_CONCURRENT = 2


@pytest.fixture(scope="module")
def server(small_lam_dir, tmp_path_factory):
    process = ServerProcess(fault_server_command(str(small_lam_dir), "--max-input-tokens", str(MAX_INPUT_TOKENS),
                                                 "--auto-truncate", "--max-concurrent-requests", str(MAX_CONCURRENT),
                                                 "--max-batch-requests", "4", "--log-level", "warning"),
                            tmp_path_factory.mktemp("serve-faults") / "server.log")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def reference(small_lam_dir):
    model = LAM(small_lam_dir, backend="torch", fallback=False)
    model.max_seq_length = MAX_INPUT_TOKENS
    return model


def in_background(server, path, body) -> tuple[threading.Thread, list]:
    """Post `body` on a thread; the list receives (status, headers, body)."""
    result: list = []
    thread = threading.Thread(target=lambda: result.append(server.post(path, body)))
    thread.start()
    return thread, result


def wait_for_in_flight(server, count: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while metrics(server)[("lam_requests_in_flight", ())] < count:
        assert time.monotonic() < deadline, f"never saw {count} requests in flight"
        time.sleep(0.02)


def test_a_model_failure_fails_that_batch_with_500_and_the_server_keeps_serving(server, reference):
    failures, errors = ("lam_batch_failures_total", ()), ("lam_requests_total", (("route", "/v1/embeddings"), ("status", "500")))
    before = metrics(server)
    status, _, error = server.post("/v1/embeddings", {"input": ["fine", f"bad {FAIL_MARKER}"]})
    assert status == 500 and error["error"]["type"] == "server_error"
    assert "injected test failure" in error["error"]["message"]
    status, _, error = server.post("/embed", {"inputs": FAIL_MARKER})
    assert status == 500 and error["error_type"] == "Backend"

    assert server.request("GET", "/health")[0] == 200
    status, _, body = server.post("/v1/embeddings", {"input": ["fine", "also fine"]})
    assert status == 200
    np.testing.assert_allclose([d["embedding"] for d in body["data"]], reference.encode(["fine", "also fine"]), atol=1e-5)
    after = metrics(server)
    assert after[failures] - before[failures] == 2
    assert after[errors] - before.get(errors, 0) == 1


def test_requests_above_the_concurrency_limit_get_429_with_retry_after(server, reference):
    slow = [in_background(server, "/v1/embeddings", {"input": f"slow {i} {SLOW_MARKER}"}) for i in range(MAX_CONCURRENT)]
    wait_for_in_flight(server, MAX_CONCURRENT)
    status, headers, error = server.post("/v1/embeddings", {"input": "one too many"})
    assert status == 429 and headers["retry-after"] == "1"
    assert f"limit of {MAX_CONCURRENT} concurrent requests" in error["error"]["message"]
    status, _, error = server.post("/embed", {"inputs": "one too many"})
    assert status == 429 and error["error_type"] == "Overloaded"
    assert server.request("GET", "/health")[0] == 200  # health and metrics are not limited
    for i, (thread, result) in enumerate(slow):
        thread.join(timeout=60)
        status, _, body = result[0]
        assert status == 200
        np.testing.assert_allclose(body["data"][0]["embedding"], reference.encode(f"slow {i} {SLOW_MARKER}"), atol=1e-5)
    assert server.post("/v1/embeddings", {"input": "room again"})[0] == 200


def test_auto_truncate_and_the_request_override(server, reference):
    long_text = synthetic_document(3 * MAX_INPUT_TOKENS)
    status, _, body = server.post("/v1/embeddings", {"input": long_text})
    assert status == 200 and body["usage"]["prompt_tokens"] == MAX_INPUT_TOKENS
    np.testing.assert_allclose(body["data"][0]["embedding"], reference.encode(long_text), atol=1e-5)
    assert server.post("/embed", {"inputs": long_text})[0] == 200
    status, _, error = server.post("/embed", {"inputs": long_text, "truncate": False})
    assert status == 413 and "longer than the limit of 16 tokens" in error["error"]


def test_sigterm_finishes_in_flight_requests_then_exits(server, reference):
    text = f"in flight {SLOW_MARKER}"
    thread, result = in_background(server, "/v1/embeddings", {"input": text})
    wait_for_in_flight(server, 1)
    start = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    thread.join(timeout=60)
    status, _, body = result[0]
    assert status == 200
    np.testing.assert_allclose(body["data"][0]["embedding"], reference.encode(text), atol=1e-5)
    assert server.proc.wait(timeout=60) in STOPPED_BY_SIGTERM
    assert time.monotonic() - start < SLOW_SECONDS + 30
    with pytest.raises(OSError):
        server.request("GET", "/health", timeout=5)
