"""Fixtures of the business-rule tests: plain objects, no Kafka."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.domain.orders import Order
from streams.domain.routing import RoutingRules
from streams.ops.settings import REPO_ROOT


@pytest.fixture
def routing_json() -> Path:
    return REPO_ROOT / "config" / "routing.json"


@pytest.fixture
def configured_rules(routing_json: Path) -> RoutingRules:
    """The routing rules the project ships with."""
    return RoutingRules.from_file(routing_json)


@pytest.fixture
def order() -> Order:
    return Order("O-1")
