"""`lam serve` in a subprocess on a free 127.0.0.1 port, and plain HTTP to it (benchmarks and tests)."""

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

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def lam_serve_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "lam.cli", "serve", *args]


def send(connection: http.client.HTTPConnection, method: str, path: str, body=None):
    """(status, headers, parsed JSON or text) of one request on an open connection; `body` a dict or bytes."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    connection.request(method, path, body=data, headers={"Content-Type": "application/json"} if data is not None else {})
    response = connection.getresponse()
    raw = response.read().decode()
    is_json = "json" in response.getheader("Content-Type", "")
    return response.status, dict(response.getheaders()), json.loads(raw) if is_json else raw


class ServerProcess:
    """Starts `command --host 127.0.0.1 --port PORT --threads N`, waits for /health; `stop()` sends SIGTERM."""

    def __init__(self, command: list[str], log_path: Path, threads: int = 1, startup_timeout_s: float = 180.0):
        self.port = free_port()
        self.base_url = f"http://{HOST}:{self.port}"
        self.log_path = Path(log_path)
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([*command, "--host", HOST, "--port", str(self.port), "--threads", str(threads)],
                                         stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + startup_timeout_s
        while not self._healthy():
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode} while starting:\n{self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the server did not answer /health within {startup_timeout_s} s:\n{self.log()}")
            time.sleep(0.2)

    def _healthy(self) -> bool:
        try:
            return self.request("GET", "/health", timeout=5)[0] == 200
        except OSError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def connect(self, timeout: float = 600.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(HOST, self.port, timeout=timeout)

    def request(self, method: str, path: str, body=None, timeout: float = 60.0):
        """(status, headers, parsed JSON or text) of one request on a fresh connection."""
        connection = self.connect(timeout)
        try:
            return send(connection, method, path, body)
        finally:
            connection.close()

    def post(self, path: str, body, timeout: float = 60.0):
        return self.request("POST", path, body, timeout)

    def stop(self, timeout_s: float = 60.0) -> int | None:
        """SIGTERM, then wait (kill after `timeout_s`); the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode
