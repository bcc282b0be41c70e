"""The dynamic batcher on its own: budgets, arrival order, results per request, failures, draining."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from lam.serving.batcher import DynamicBatcher


def row_of(text: str) -> np.ndarray:
    """A deterministic (4,) row that identifies its text."""
    return np.array([len(text), sum(map(ord, text)), hash(text) % 997, 1.0], dtype=np.float32)


class RecordingEncoder:
    """encode(texts) -> rows, remembering each batch; raises on batches holding 'FAIL'; can be paused."""

    def __init__(self):
        self.batches: list[list[str]] = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, texts):
        self.entered.set()
        self.gate.wait(timeout=10)
        self.batches.append(list(texts))
        if any("FAIL" in t for t in texts):
            raise RuntimeError("injected failure")
        return np.stack([row_of(t) for t in texts])


@pytest.fixture
def encoder():
    return RecordingEncoder()


def make_batcher(encoder, max_tokens=100, max_requests=8, max_wait_s=0.05, observed=None):
    batcher = DynamicBatcher(encoder, max_tokens, max_requests, max_wait_s,
                             on_batch=(lambda *a: observed.append(a)) if observed is not None else None)
    batcher.start()
    return batcher


def submit_while_paused(batcher, encoder, requests):
    """Submit all `requests` ([(texts, counts)]) while the worker is held in a first batch, then release it."""
    encoder.gate.clear()
    warmup = batcher.submit(["warmup"], [1])
    assert encoder.entered.wait(timeout=10)
    futures = [batcher.submit(texts, counts) for texts, counts in requests]
    encoder.gate.set()
    warmup.result(timeout=10)
    return futures


def test_each_request_gets_its_own_rows_in_order(encoder):
    batcher = make_batcher(encoder)
    rng = np.random.default_rng(0)
    requests = [([f"r{r}-t{t}" for t in range(rng.integers(1, 6))], None) for r in range(30)]
    requests = [(texts, [int(rng.integers(1, 40)) for _ in texts]) for texts, _ in requests]
    results = [None] * len(requests)

    def client(i):
        results[i] = batcher.submit(*requests[i]).result(timeout=10)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batcher.close()
    for (texts, _), rows in zip(requests, results):
        np.testing.assert_array_equal(rows, np.stack([row_of(t) for t in texts]))


def test_batches_respect_budgets_and_arrival_order(encoder):
    observed = []
    batcher = make_batcher(encoder, max_tokens=100, max_requests=4, observed=observed)
    requests = [(["long"], [250]),                     # longer than the budget: runs alone
                (["a1", "a2", "a3"], [30, 30, 30]),
                (["b1", "b2"], [30, 5]),               # 90 + 30 > 100: b1 opens the next batch
                (["c1", "c2", "c3", "c4", "c5"], [1, 1, 1, 1, 1])]
    futures = submit_while_paused(batcher, encoder, requests)
    for f in futures:
        f.result(timeout=10)
    batcher.close()
    counts = {t: n for texts, ns in requests for t, n in zip(texts, ns)}
    batches = encoder.batches[1:]
    assert batches == [["long"], ["a1", "a2", "a3"], ["b1", "b2", "c1", "c2"], ["c3", "c4", "c5"]]
    for batch in batches:
        assert len(batch) <= 4
        assert len(batch) == 1 or sum(counts[t] for t in batch) <= 100
    # arrival order is kept across batches (FIFO: nothing overtakes the long text)
    assert [t for b in batches for t in b] == [t for texts, _ in requests for t in texts]
    assert [(n, tokens) for n, tokens, _, ok in observed[1:]] == [(1, 250), (3, 90), (4, 37), (3, 3)]


def test_a_failing_batch_fails_only_its_requests(encoder):
    batcher = make_batcher(encoder, max_tokens=100, max_requests=3)
    requests = [(["ok1"], [1]), (["x", "FAIL"], [1, 1]),     # one batch: ok1, x, FAIL
                (["ok2", "ok3"], [1, 1])]                     # the next batch
    ok1, bad, ok23 = submit_while_paused(batcher, encoder, requests)
    with pytest.raises(RuntimeError, match="injected failure"):
        ok1.result(timeout=10)
    with pytest.raises(RuntimeError, match="injected failure"):
        bad.result(timeout=10)
    np.testing.assert_array_equal(ok23.result(timeout=10), np.stack([row_of("ok2"), row_of("ok3")]))
    assert batcher.submit(["after"], [1]).result(timeout=10).shape == (1, 4)
    batcher.close()


def test_texts_left_of_a_failed_request_are_skipped(encoder):
    batcher = make_batcher(encoder, max_tokens=100, max_requests=2)
    bad, good = submit_while_paused(batcher, encoder, [(["FAIL", "y", "z"], [1, 1, 1]), (["w"], [1])])
    with pytest.raises(RuntimeError):
        bad.result(timeout=10)
    good.result(timeout=10)
    batcher.close()
    assert encoder.batches[1:] == [["FAIL", "y"], ["w"]]


def test_a_batch_waits_for_late_texts_up_to_max_wait(encoder):
    batcher = make_batcher(encoder, max_tokens=100, max_requests=8, max_wait_s=1.0)
    first = batcher.submit(["early"], [1])
    time.sleep(0.05)
    second = batcher.submit(["late"], [1])
    first.result(timeout=10), second.result(timeout=10)
    batcher.close()
    assert encoder.batches == [["early", "late"]]


def test_close_finishes_everything_submitted(encoder):
    batcher = make_batcher(encoder, max_requests=2)
    futures = submit_while_paused(batcher, encoder, [([f"t{i}"], [1]) for i in range(7)])
    batcher.close()
    assert all(f.done() and f.exception() is None for f in futures)
    assert not batcher.alive
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit(["too late"], [1])


def test_a_wrong_number_of_rows_fails_the_batch():
    batcher = DynamicBatcher(lambda texts: np.zeros((len(texts) - 1, 4)), 100, 8, 0.0)
    batcher.start()
    with pytest.raises(RuntimeError, match="returned 1 rows for 2 texts"):
        batcher.submit(["a", "b"], [1, 1]).result(timeout=10)
    batcher.close()
