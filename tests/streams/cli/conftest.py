"""Fixtures for tests that drive the CLI against the session broker."""

from __future__ import annotations

from typing import Any

import pytest

from streams.ops.settings import Settings
from tests.support import settings_env


@pytest.fixture
def env(kafka_broker: Any, topic_prefix: str) -> dict[str, str | None]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
        "ERPBRIDGE_TOPIC_PREFIX": topic_prefix,
        "ERPBRIDGE_SCHEMA_REGISTRY_URL": None,
    }


@pytest.fixture
def cli_env(settings: Settings, kafka_broker: Any) -> dict[str, str | None]:
    """The environment that gives the CLI the settings of the test's worker (its partition
    counts and app id), on the session broker."""
    return {
        **settings_env(settings),
        "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
        "ERPBRIDGE_SCHEMA_REGISTRY_URL": None,
    }
