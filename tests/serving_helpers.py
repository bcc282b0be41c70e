"""What the server tests share: the fault launcher's command, /metrics as a dict, the SIGTERM exit status."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from lam.serving.process import ServerProcess

# uvicorn re-raises SIGTERM after its graceful shutdown, so a drained server ends as killed by it.
STOPPED_BY_SIGTERM = (0, -signal.SIGTERM)


def fault_server_command(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).with_name("serving_fault_server.py")), *args]


def metrics(server: ServerProcess) -> dict[tuple, float]:
    """{(sample name, sorted label items): value} from the server's /metrics."""
    status, _, text = server.request("GET", "/metrics")
    assert status == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}
