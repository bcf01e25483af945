"""Fixtures for tests that run the stream worker for real, as a subprocess on the session broker."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.contracts.changelogs import changelog_sources
from streams.contracts.topics import TopicCatalog
from streams.ops.settings import Settings
from streams.ops.topic_admin import ensure_topics
from tests.support import WorkerProcess, spawn_worker, worker_settings

# Helpers that assert on the tests' behalf: their failures show the values compared.
pytest.register_assert_rewrite(
    "tests.streams.topology.agents.pipeline",
    "tests.streams.domain.properties",
    "tests.streams.domain.ledger",
)


@pytest.fixture
def settings(kafka_broker: Any, topic_prefix: str, tmp_path: Path) -> Settings:
    """Settings of one test: its own topics, consumer group and state directory."""
    return worker_settings(kafka_broker.bootstrap_servers, topic_prefix, tmp_path / "data")


@pytest.fixture
def topics(settings: Settings) -> TopicCatalog:
    catalog = TopicCatalog.from_settings(settings)
    ensure_topics(
        settings.confluent_config(), catalog, changelogs=changelog_sources(settings.app_id)
    )
    return catalog


@pytest.fixture
def start_worker(settings: Settings, tmp_path: Path) -> Iterator[Callable[[], WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        worker = spawn_worker(settings, tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
