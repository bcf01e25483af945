"""Fixtures every test package may use: one real Kafka broker, schema registry and Tryton ERP
per session, unique topic names."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from streams.local.kafka import Broker, running_broker
from streams.local.medusa import Medusa, running_medusa
from streams.local.registry import Registry, running_registry
from streams.local.tryton import Tryton, running_tryton

FIGURES = pytest.StashKey[list[str]]()
"""Lines tests report for the end of the run (examples run, time taken)."""


def pytest_configure(config: pytest.Config) -> None:
    config.stash[FIGURES] = []


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if config.stash.get(FIGURES, []):
        terminalreporter.section("figures")
        for line in config.stash[FIGURES]:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def report_figure(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Print a line in the run's summary, whatever the output capture."""
    return request.config.stash[FIGURES].append


@pytest.fixture(scope="session")
def kafka_broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    # The broker log outlives the session only when it may explain a failure.
    with running_broker(keep_log=lambda: request.session.testsfailed > 0) as broker:
        yield broker


@pytest.fixture(scope="session")
def schema_registry(request: pytest.FixtureRequest) -> Iterator[Registry]:
    # Started only when a test asks for it; subjects follow topics, so `topic_prefix` keeps
    # tests sharing it apart.
    with running_registry(keep_log=lambda: request.session.testsfailed > 0) as registry:
        yield registry


@pytest.fixture(scope="session")
def tryton(request: pytest.FixtureRequest) -> Iterator[Tryton]:
    # One ERP database for the session: tests keep apart by unique order and command ids.
    with running_tryton(keep_log=lambda: request.session.testsfailed > 0) as erp:
        yield erp


@pytest.fixture(scope="session")
def medusa(request: pytest.FixtureRequest) -> Iterator[Medusa]:
    # One storefront for the session: tests keep apart by their own carts, orders and SKUs.
    with running_medusa(keep_log=lambda: request.session.testsfailed > 0) as shop:
        yield shop


@pytest.fixture
def topic_prefix(request: pytest.FixtureRequest) -> str:
    """`t-<test name>-<random>-`: tests sharing the session broker never share topics or groups."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    return f"t-{name}-{uuid.uuid4().hex[:8]}-"
