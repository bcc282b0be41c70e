"""Prometheus metrics of one server: requests, latency, batches, queue depth, inference time."""

from __future__ import annotations

from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
BATCH_TOKEN_BUCKETS = (16, 64, 256, 1024, 4096, 16384, 65536, 262144)


class ServerMetrics:
    """The metric families, in a registry of their own (one per app, so tests can run several)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, queue_depth: Callable[[], float]):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("lam_requests", "HTTP requests by route and status code", ["route", "status"], registry=r)
        self.request_seconds = Histogram("lam_request_duration_seconds", "HTTP request latency by route", ["route"],
                                         buckets=LATENCY_BUCKETS, registry=r)
        self.in_flight = Gauge("lam_requests_in_flight", "embedding requests admitted and not yet answered", registry=r)
        self.queue_depth = Gauge("lam_queue_depth", "texts waiting for a batch", registry=r)
        self.queue_depth.set_function(queue_depth)
        self.batch_size = Histogram("lam_batch_size", "texts per batch", buckets=BATCH_SIZE_BUCKETS, registry=r)
        self.batch_tokens = Histogram("lam_batch_tokens", "tokens per batch ([CLS] and [SEP] included)",
                                      buckets=BATCH_TOKEN_BUCKETS, registry=r)
        self.inference_seconds = Histogram("lam_inference_duration_seconds", "seconds per batch's encode call",
                                           buckets=LATENCY_BUCKETS, registry=r)
        self.batch_failures = Counter("lam_batch_failures", "batches whose encode call raised", registry=r)

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route=route, status=str(status)).inc()
        self.request_seconds.labels(route=route).observe(seconds)

    def observe_batch(self, texts: int, tokens: int, seconds: float, ok: bool) -> None:
        self.batch_size.observe(texts)
        self.batch_tokens.observe(tokens)
        self.inference_seconds.observe(seconds)
        if not ok:
            self.batch_failures.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
