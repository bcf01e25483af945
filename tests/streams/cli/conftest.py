"""Fixtures for tests that drive the CLI against the session broker."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def env(kafka_broker: Any, topic_prefix: str) -> dict[str, str | None]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
        "ERPBRIDGE_TOPIC_PREFIX": topic_prefix,
        "ERPBRIDGE_SCHEMA_REGISTRY_URL": None,
    }
