"""Helpers for tests that run real processes: waiting on conditions, ports, worker handles."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from click.testing import CliRunner, Result
from confluent_kafka import Consumer, TopicPartition
from mode import Service
from pydantic import SecretStr

from connectors.erp.tryton import TrytonAdapter
from streams.cli import main
from streams.contracts.jsonlines import parse_line, to_datum
from streams.contracts.schema_store import SchemaStore
from streams.domain.commands import Kind
from streams.ops.settings import REPO_ROOT, Settings
from streams.topology.app import ACCOUNTING_PATH

EVENTS = REPO_ROOT / "tests" / "fixtures" / "events"
"""One JSON-lines file of realistic records per topic schema."""
STORE = SchemaStore.from_directory(REPO_ROOT / "schemas")


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

    def kill(self) -> None:
        """kill -9: the process ends at once, nothing flushed, committed or closed."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode


def record_count(bootstrap: str, topic: str) -> int:
    """Records a topic holds now, over all its partitions."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4().hex}"})
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        marks = [
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30) for p in partitions
        ]
        return sum(high - low for low, high in marks)
    finally:
        consumer.close()


def worker_settings(bootstrap: str, prefix: str, data_dir: Path, **overrides: Any) -> Settings:
    """Settings of a test's worker: its own topics, consumer group and state directory."""
    defaults: dict[str, Any] = {
        "partitions": 3,
        # Short, so a worker killed with -9 hands its partitions over quickly.
        "session_timeout_seconds": 6,
    }
    return Settings(
        kafka_bootstrap_servers=bootstrap,
        topic_prefix=prefix,
        app_id=f"{prefix}app",
        data_dir=data_dir,
        **{**defaults, **overrides},
    )


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a subprocess these settings."""
    env = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        text = json.dumps(value) if isinstance(value, dict | list | tuple) else str(value)
        env[f"ERPBRIDGE_{name.upper()}"] = text
    return env


def spawn_worker(
    settings: Settings, log_path: Path, *, clock_file: Path | None = None, **env: str
) -> WorkerProcess:
    """`erpbridge worker` as a subprocess with `settings` (and `env`) and its own web port;
    with `clock_file`, on the business clock of tests.streams.clocked_worker instead."""
    port = free_port()
    command = ["-m", "streams.cli", "worker", "--loglevel", "info"]
    if clock_file is not None:
        command = ["-m", "tests.streams.clocked_worker", str(clock_file)]
    process = spawn(command, settings, log_path, ERPBRIDGE_WEB_PORT=str(port), **env)
    return WorkerProcess(process, port, log_path)


def spawn(
    args: list[str], settings: Settings, log_path: Path, **env: str
) -> subprocess.Popen[bytes]:
    """`python <args>` with `settings` in its environment, output appended to `log_path`."""
    environment = {**os.environ, **settings_env(settings), **env}
    environment.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, *args], env=environment, stdout=log, stderr=subprocess.STDOUT
        )


def run(args: list[str], env: dict[str, str | None], stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, args, env=env, input=stdin, catch_exceptions=False)


def lines_of(topic: str) -> list[str]:
    return [line for line in (EVENTS / f"{topic}.jsonl").read_text().splitlines() if line.strip()]


def _command_templates() -> dict[Kind, dict[str, Any]]:
    """A realistic body of each kind, from the erp.commands fixture."""
    schema = STORE.current("erpbridge.ErpCommand")
    bodies = {}
    for line in lines_of("erp.commands"):
        name, body = to_datum(schema, parse_line(line))["command"]
        bodies[Kind(name.removeprefix("erpbridge."))] = body
    return bodies


TEMPLATES = _command_templates()
"""A realistic body of each ERP command kind."""


def fake_maven(bin_dir: Path, body: str) -> Path:
    """An `mvn` that records each call, then runs `body` (with $out = the output directory)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    mvn = bin_dir / "mvn"
    mvn.write_text(
        "#!/bin/sh\n"
        f'echo called >> "{bin_dir}/calls"\n'
        'for arg; do case "$arg" in -DoutputDirectory=*) out="${arg#-DoutputDirectory=}";; esac; done\n'
        f"{body}\n"
    )
    mvn.chmod(mvn.stat().st_mode | stat.S_IXUSR)
    return bin_dir / "calls"


S = TypeVar("S", bound=Service)
T = TypeVar("T")


class RunningService(Generic[S]):
    """A mode service on its own event loop in a thread, so a test can poll it with deadlines."""

    def __init__(self, make: Callable[[], S]) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

        async def start() -> S:
            # Made on the loop, so whatever it creates (locks, semaphores) belongs to it.
            service = make()
            await service.start()
            return service

        self.service = self.run(start())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=60)

    def call(self, read: Callable[[S], T]) -> T:
        """`read(service)` on the service's loop, for figures it changes as it runs."""

        async def call() -> T:
            return read(self.service)

        return self.run(call())

    def stop(self) -> None:
        if self._thread.is_alive():
            self.run(self.service.stop())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self._loop.close()


class TrytonLogin(Protocol):
    """Where a Tryton database answers and who logs in: a `Tryton` this process runs, or
    one another process runs (the demo's)."""

    url: str
    login: str
    password: str


def on_tryton(tryton: TrytonLogin, scenario: Callable[[TrytonAdapter], Awaitable[T]]) -> T:
    """`scenario(adapter)` with a Tryton adapter of its own, logged in for it."""

    async def main() -> T:
        erp = TrytonAdapter(tryton.url, tryton.login, tryton.password)
        await erp.open()
        try:
            return await scenario(erp)
        finally:
            await erp.close()

    return asyncio.run(main())
