"""The stream worker under test, run as its production entry point in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.cluster import BenchError
from streams.contracts.topics import INPUTS
from streams.local.jvm import free_ports
from streams.ops.health import READINESS_PATH
from streams.ops.settings import Settings

ACCOUNTING_PATH = "/erpbridge/accounting/"
"""The worker's accounting page (streams.topology.app), read over HTTP so the bench never imports the app."""

_STOP_TIMEOUT = 30.0


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    web_port: int
    log_path: Path
    prefix: str

    @classmethod
    def start(
        cls,
        settings: Settings,
        source: Path,
        log_path: Path,
        loglevel: str,
        env: Mapping[str, str] | None = None,
    ) -> Worker:
        """`python -m streams.cli worker` in `source` (a checkout), configured like a deployment,
        with the data directory of `settings` and a free web port of its own, so several can
        run side by side in one group; `env` adds settings (ERPBRIDGE_* variables)."""
        (port,) = free_ports(1)
        environment = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": settings.require_bootstrap(),
            "ERPBRIDGE_TOPIC_PREFIX": settings.topic_prefix,
            "ERPBRIDGE_APP_ID": settings.app_id,
            "ERPBRIDGE_PARTITIONS": str(settings.partitions),
            "ERPBRIDGE_DATA_DIR": str(settings.data_dir),
            "ERPBRIDGE_WEB_PORT": str(port),
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(source), os.environ.get("PYTHONPATH", "")) if p
            ),
            **(env or {}),
        }
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "worker", "--loglevel", loglevel],
                cwd=source,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Out of the terminal's process group: Ctrl-C reaches the bench, which stops
                # the worker before the broker.
                start_new_session=True,
            )
        return cls(process, port, log_path, settings.topic_prefix)

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise BenchError(
                f"the worker exited with {self.process.returncode}; its log {self.log_path} ends:\n"
                + self.log_tail()
            )

    def accounting(self) -> dict[str, Any] | None:
        """The accounting page, or None while the web server does not answer."""
        return self.page(ACCOUNTING_PATH)

    def page(self, path: str) -> dict[str, Any] | None:
        """A JSON page of the worker's web server, or None while it does not answer."""
        url = f"http://127.0.0.1:{self.web_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                data: dict[str, Any] = json.load(response)
                return data
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def ready(self) -> bool | None:
        """Whether /readyz answers 200 (tables recovered, partitions assigned, broker
        reachable); None while the web server does not answer at all."""
        url = f"http://127.0.0.1:{self.web_port}{READINESS_PATH}"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except urllib.error.HTTPError as error:
            if error.code == 404:
                raise BenchError(
                    f"the worker has no {READINESS_PATH} (an older checkout?): use --no-restore"
                ) from None
            return False  # 503 while recovering: answered, not ready
        except (urllib.error.URLError, OSError):
            return None

    def inputs_consumed(self) -> int | None:
        """Input events the worker has consumed so far, from its accounting page."""
        return inputs_consumed(self.accounting(), self.prefix)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def inputs_consumed(accounting: dict[str, Any] | None, prefix: str) -> int | None:
    """The sum of `consumed` over the input topics (logical or physical names) of an
    accounting page; its `totals` when it has no per-topic part."""
    if accounting is None:
        return None
    topics = accounting.get("topics")
    if isinstance(topics, dict):
        inputs = set(INPUTS) | {prefix + name for name in INPUTS}
        return sum(int(t.get("consumed", 0)) for name, t in topics.items() if name in inputs)
    totals = accounting.get("totals")
    if isinstance(totals, dict) and "consumed" in totals:
        return int(totals["consumed"])
    return None
