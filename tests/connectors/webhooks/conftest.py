"""The webhooks service on the session broker, with a route per provider."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from connectors.webhooks.service import WebhookService
from streams.contracts.topics import TopicCatalog
from streams.ops.settings import Settings
from streams.ops.topic_admin import ensure_topics
from tests.connectors.webhooks.hooks import CODEC, ROUTES, SECRETS, Hooks
from tests.support import RunningService, free_port, worker_settings


@pytest.fixture
def webhook_settings(kafka_broker: Any, topic_prefix: str, tmp_path: Path) -> Settings:
    return worker_settings(
        kafka_broker.bootstrap_servers,
        topic_prefix,
        tmp_path / "data",
        webhook_routes=ROUTES,
        webhook_secrets=SecretStr(json.dumps(SECRETS)),
        webhook_web_port=free_port(),
        webhook_ack_timeout_seconds=2.0,
    )


@pytest.fixture
def webhook_topics(webhook_settings: Settings) -> TopicCatalog:
    catalog = TopicCatalog.from_settings(webhook_settings)
    ensure_topics(webhook_settings.confluent_config(), catalog)
    return catalog


@pytest.fixture
def start_webhooks(
    webhook_settings: Settings, webhook_topics: TopicCatalog
) -> Iterator[Callable[..., RunningService[WebhookService]]]:
    started: list[RunningService[WebhookService]] = []

    def start(**overrides: Any) -> RunningService[WebhookService]:
        settings = webhook_settings.model_copy(update=overrides)
        running = RunningService(lambda: WebhookService(settings, webhook_topics, CODEC))
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def hooks(
    webhook_settings: Settings, start_webhooks: Callable[..., RunningService[WebhookService]]
) -> Hooks:
    """A running service and a client of it."""
    start_webhooks()
    return Hooks(webhook_settings.webhook_web_port)
