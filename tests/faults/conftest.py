"""Fixtures of the fault-injection suite: the whole loop on the session's broker and Tryton,
with a Tryton database of the run's own.

Each test runs one seed (`@pytest.mark.seed(n)`): the short versions the suite's budget
allows. FAULT_SEEDS=k runs each on k seeds, n, n + 100, ...: more seeds, for a long run."""

from __future__ import annotations

import errno
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from streams.local.tryton import Tryton
from tests.faults.loop import Loop, loop_settings

SEEDS = "FAULT_SEEDS"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"seed(n): a fault run's first sample seed ({SEEDS})")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("seed")
    if marker is not None:
        first: int = marker.args[0]
        runs = int(os.environ.get(SEEDS, "1"))
        seeds = [first + 100 * run for run in range(runs)]
        metafunc.parametrize("seed", seeds, ids=[f"seed{seed}" for seed in seeds])


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


_TEARDOWN_SECONDS = 30.0
"""Of the test's pytest-timeout, what stopping the loop's processes may take after a wait."""


@pytest.fixture
def loop(
    kafka_broker: Any,
    topic_prefix: str,
    erp_database: Tryton,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Loop]:
    settings = loop_settings(kafka_broker.bootstrap_servers, topic_prefix, erp_database, tmp_path)
    # Waits end before pytest-timeout stops the test, so a stuck loop says where it is stuck.
    budget = float(request.config.getini("timeout") or 0) - _TEARDOWN_SECONDS
    run = Loop(settings, erp_database, tmp_path, time.monotonic() + budget if budget > 0 else None)
    yield run
    run.close()


@dataclass
class Volume:
    """A small filesystem of the test's own (tmpfs) for a worker's data directory, which the
    test can fill up or make read-only, and mend again."""

    path: Path

    @property
    def _ballast(self) -> Path:
        return self.path / "ballast"

    def fill(self) -> None:
        chunk = b"\0" * (1 << 20)
        with self._ballast.open("ab", buffering=0) as ballast:
            while True:
                try:
                    ballast.write(chunk)
                except OSError as error:
                    assert error.errno == errno.ENOSPC, error
                    return

    def free(self) -> None:
        self._ballast.unlink()

    def read_only(self) -> None:
        _mount("-o", "remount,ro", str(self.path))

    def writable(self) -> None:
        _mount("-o", "remount,rw", str(self.path))


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Volume]:
    # Filling a disk or making it read-only under a running worker takes a filesystem of
    # its own; mounting one takes root (as root, file permissions would not stop a write).
    assert os.geteuid() == 0, "the data-directory faults mount a tmpfs: they need root"
    path = tmp_path / "volume"
    path.mkdir()
    _mount("-t", "tmpfs", "-o", "size=64m", "tmpfs", str(path))
    try:
        yield Volume(path)
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=False)
