"""Starting a real `lam serve` subprocess on a free 127.0.0.1 port, and talking plain HTTP to it."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


# uvicorn re-raises SIGTERM after its graceful shutdown, so a drained server ends as killed by it.
STOPPED_BY_SIGTERM = (0, -signal.SIGTERM)


class ServerProcess:
    """A server subprocess; `stop()` sends SIGTERM and waits for it to exit."""

    def __init__(self, command: list[str], log_path: Path, startup_timeout_s: float = 180.0):
        self.port = free_port()
        self.base_url = f"http://{HOST}:{self.port}"
        self.log_path = log_path
        env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen([*command, "--host", HOST, "--port", str(self.port), "--threads", "1"],
                                         stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + startup_timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode} while starting:\n{self.log()}")
            try:
                if self.request("GET", "/health")[0] == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the server did not answer /health within {startup_timeout_s} s:\n{self.log()}")
            time.sleep(0.2)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def request(self, method: str, path: str, body=None, timeout: float = 60.0):
        """(status, headers, parsed JSON or text) of one request; `body` a dict (sent as JSON) or bytes."""
        connection = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        try:
            return send(connection, method, path, body)
        finally:
            connection.close()

    def post(self, path: str, body, timeout: float = 60.0):
        return self.request("POST", path, body, timeout)

    def metrics(self) -> dict[tuple, float]:
        """{(sample name, sorted label items): value} from /metrics."""
        status, _, text = self.request("GET", "/metrics")
        assert status == 200
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    def stop(self, timeout_s: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def send(connection: http.client.HTTPConnection, method: str, path: str, body=None):
    """(status, headers, parsed JSON or text) of one request on an open connection."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data is not None else {}
    connection.request(method, path, body=data, headers=headers)
    response = connection.getresponse()
    raw = response.read().decode()
    content_type = response.getheader("Content-Type", "")
    return response.status, dict(response.getheaders()), json.loads(raw) if "json" in content_type else raw


def lam_serve_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "lam.cli", "serve", *args]


def fault_server_command(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).with_name("serving_fault_server.py")), *args]
