"""Fixtures for the ERP connector on the session broker and the session's Tryton."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.erp.adapters import adapter_for
from connectors.erp.sink import ErpSink
from streams.contracts.topics import TopicCatalog
from streams.local.tryton import Tryton
from streams.ops.settings import RateLimit, Settings
from streams.ops.topic_admin import ensure_topics
from tests.connectors.erp.records import CODEC
from tests.support import RunningService, worker_settings


@pytest.fixture
def connector_settings(
    kafka_broker: Any, topic_prefix: str, tryton: Tryton, tmp_path: Path
) -> Settings:
    """A connector of its own group on the test's topics, with retries quick enough to watch."""
    return worker_settings(
        kafka_broker.bootstrap_servers,
        topic_prefix,
        tmp_path / "data",
        erp_url=tryton.url,
        erp_login=tryton.login,
        erp_password=tryton.password,
        erp_rate_limits={"tryton": RateLimit(rate=100, burst=20)},
        erp_backoff_initial_seconds=0.1,
        erp_backoff_max_seconds=1.0,
        erp_give_up_seconds=120,
        connector_commit_interval_seconds=0.2,
    )


@pytest.fixture
def erp_topics(connector_settings: Settings) -> TopicCatalog:
    catalog = TopicCatalog.from_settings(connector_settings)
    ensure_topics(connector_settings.confluent_config(), catalog)
    return catalog


@pytest.fixture
def start_sink(
    connector_settings: Settings, erp_topics: TopicCatalog
) -> Iterator[Callable[..., RunningService[ErpSink]]]:
    started: list[RunningService[ErpSink]] = []

    def start(**overrides: Any) -> RunningService[ErpSink]:
        settings = connector_settings.model_copy(update=overrides)
        running = RunningService(
            lambda: ErpSink(settings, erp_topics, CODEC, adapter_for(settings))
        )
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()
