"""The server's settings and the `lam serve` arguments that set them."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from ..backends import COMPUTE_PRECISIONS


@dataclass(frozen=True)
class ServeSettings:
    """Everything `lam serve` is configured with; `max_input_tokens=None` means the model's maximum."""

    model: str = "LAM-base-v1"
    host: str = "127.0.0.1"
    port: int = 8080
    backend: str = "auto"
    compute_precision: str = "float32"
    threads: int | None = None
    max_batch_tokens: int = 16_384
    max_batch_requests: int = 128
    max_wait_ms: float = 2.0
    max_concurrent_requests: int = 512
    max_input_tokens: int | None = None
    auto_truncate: bool = False
    max_client_batch_size: int = 512
    served_model_name: str | None = None
    graceful_timeout_s: float = 30.0
    log_level: str = "info"

    @property
    def model_name(self) -> str:
        """The name reported in responses and /info."""
        return self.served_model_name or self.model


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The `lam serve` options; defaults come from `ServeSettings`."""
    d = ServeSettings()
    parser.add_argument("model", nargs="?", default=d.model, help="built-in name or model directory (default: %(default)s)")
    parser.add_argument("--host", default=d.host, help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=d.port, help="port to listen on (default: %(default)s)")
    parser.add_argument("--backend", default=d.backend, help="auto, torch (alias cython) or jax")
    parser.add_argument("--compute-precision", default=d.compute_precision, choices=COMPUTE_PRECISIONS,
                        help="precision of the wide matmuls (LAM(compute_precision=...); default: %(default)s)")
    parser.add_argument("--threads", type=_positive_int, default=d.threads, metavar="N",
                        help="torch threads for the forward passes (default: torch's own choice)")
    batching = parser.add_argument_group("dynamic batching")
    batching.add_argument("--max-batch-tokens", type=_positive_int, default=d.max_batch_tokens, metavar="N",
                          help="tokens per batch; a longer text runs alone (default: %(default)s)")
    batching.add_argument("--max-batch-requests", type=_positive_int, default=d.max_batch_requests, metavar="N",
                          help="texts per batch; 1 turns batching off (default: %(default)s)")
    batching.add_argument("--max-wait-ms", type=_non_negative_float, default=d.max_wait_ms, metavar="MS",
                          help="how long a batch that is not full waits for more texts (default: %(default)s)")
    limits = parser.add_argument_group("limits")
    limits.add_argument("--max-concurrent-requests", type=_positive_int, default=d.max_concurrent_requests, metavar="N",
                        help="requests served at once; more get 429 with Retry-After (default: %(default)s)")
    limits.add_argument("--max-input-tokens", type=_positive_int, default=d.max_input_tokens, metavar="N",
                        help="tokens per text, [CLS] and [SEP] included (default: the model's max_seq_length)")
    limits.add_argument("--auto-truncate", action="store_true",
                        help="truncate longer texts instead of answering 413 (a request's `truncate` overrides it)")
    limits.add_argument("--max-client-batch-size", type=_positive_int, default=d.max_client_batch_size, metavar="N",
                        help="texts per request; more get 413 (default: %(default)s)")
    parser.add_argument("--served-model-name", default=d.served_model_name, metavar="NAME",
                        help="model name reported in responses (default: MODEL)")
    parser.add_argument("--graceful-timeout", dest="graceful_timeout_s", type=_non_negative_float,
                        default=d.graceful_timeout_s, metavar="S",
                        help="seconds SIGTERM waits for in-flight requests (default: %(default)s)")
    parser.add_argument("--log-level", default=d.log_level, choices=["critical", "error", "warning", "info", "debug"])


def settings_from_args(args: argparse.Namespace) -> ServeSettings:
    return ServeSettings(**{name: getattr(args, name) for name in ServeSettings.__dataclass_fields__})
