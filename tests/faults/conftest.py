"""Fixtures of the fault-injection suite: the whole loop on the session's broker and Tryton,
with a Tryton database of the run's own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.local.tryton import Tryton
from tests.faults.loop import Loop, loop_settings


@pytest.fixture(scope="session")
def erp_databases(tryton: Tryton, request: pytest.FixtureRequest) -> Iterator[Tryton]:
    """A database for each test of the session that asks for one, made at once: trytond
    restarts to open new databases, so once is cheaper than once a test."""
    wanted = sum(1 for item in request.session.items if "erp_database" in item.fixturenames)
    run = uuid.uuid4().hex[:8]
    return iter(tryton.new_databases([f"faults_{run}_{n}" for n in range(wanted)]))


@pytest.fixture
def erp_database(erp_databases: Iterator[Tryton]) -> Tryton:
    """A fresh copy of the prepared ERP database: its stock is the sample's opening stock
    and it holds no document but the run's, so the check compares absolute figures."""
    return next(erp_databases)


@pytest.fixture
def loop(
    kafka_broker: Any, topic_prefix: str, erp_database: Tryton, tmp_path: Path
) -> Iterator[Loop]:
    settings = loop_settings(kafka_broker.bootstrap_servers, topic_prefix, erp_database, tmp_path)
    run = Loop(settings, erp_database, tmp_path)
    yield run
    run.close()
