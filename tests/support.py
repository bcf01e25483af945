"""Helpers for tests that run real processes: waiting on conditions, ports, worker handles."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from confluent_kafka import Consumer, TopicPartition

from streams.app import ACCOUNTING_PATH
from streams.cli import main
from streams.schema_store import SchemaStore
from streams.settings import REPO_ROOT, Settings

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
        text = json.dumps(value) if isinstance(value, dict | list | tuple) else str(value)
        env[f"ERPBRIDGE_{name.upper()}"] = text
    return env


def spawn_worker(
    settings: Settings, log_path: Path, *, clock_file: Path | None = None
) -> WorkerProcess:
    """`erpbridge worker` as a subprocess with `settings` and its own web port; with
    `clock_file`, on the business clock of tests.streams.clocked_worker instead."""
    port = free_port()
    env = {**os.environ, **settings_env(settings), "ERPBRIDGE_WEB_PORT": str(port)}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    command = ["-m", "streams.cli", "worker", "--loglevel", "info"]
    if clock_file is not None:
        command = ["-m", "tests.streams.clocked_worker", str(clock_file)]
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, *command],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return WorkerProcess(process, port, log_path)


def run(args: list[str], env: dict[str, str | None], stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, args, env=env, input=stdin, catch_exceptions=False)


def lines_of(topic: str) -> list[str]:
    return [line for line in (EVENTS / f"{topic}.jsonl").read_text().splitlines() if line.strip()]


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
