"""Helpers for tests that run real processes: waiting on conditions, ports, worker handles."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.app import ACCOUNTING_PATH


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
    """Poll until `condition` returns something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
        except Exception as exc:  # the thing waited for may not be up yet
            last_error = exc
        else:
            if result:
                return result
        time.sleep(0.2)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what} (last error: {last_error})"
    )


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    web_port: int
    log_path: Path

    def accounting(self) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.web_port}{ACCOUNTING_PATH}"
        with urllib.request.urlopen(url, timeout=2) as response:
            data: dict[str, Any] = json.load(response)
            return data

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode
