"""Fixtures for tests that run the stream worker for real, as a subprocess on the session broker."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.settings import Settings
from streams.topic_admin import ensure_topics
from streams.topics import TopicCatalog
from tests.support import WorkerProcess, free_port


@pytest.fixture
def settings(kafka_broker: Any, topic_prefix: str, tmp_path: Path) -> Settings:
    """Settings of one test: its own topics, consumer group and state directory."""
    return Settings(
        kafka_bootstrap_servers=kafka_broker.bootstrap_servers,
        topic_prefix=topic_prefix,
        app_id=f"{topic_prefix}app",
        partitions=3,
        data_dir=tmp_path / "data",
    )


@pytest.fixture
def topics(settings: Settings) -> TopicCatalog:
    catalog = TopicCatalog.from_settings(settings)
    ensure_topics(settings.confluent_config(), catalog)
    return catalog


@pytest.fixture
def start_worker(settings: Settings, tmp_path: Path) -> Iterator[Callable[[], WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        port = free_port()
        log_path = tmp_path / f"worker-{len(started)}.log"
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": settings.require_bootstrap(),
            "ERPBRIDGE_TOPIC_PREFIX": settings.topic_prefix,
            "ERPBRIDGE_APP_ID": settings.app_id,
            "ERPBRIDGE_PARTITIONS": str(settings.partitions),
            "ERPBRIDGE_DATA_DIR": str(settings.data_dir),
            "ERPBRIDGE_WEB_PORT": str(port),
        }
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "worker", "--loglevel", "info"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        worker = WorkerProcess(process, port, log_path)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
