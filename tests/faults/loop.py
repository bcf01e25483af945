"""The whole loop as production runs it, for fault injection: `erpbridge worker` processes
(Faust agents and the dispatcher), `erpbridge connector erp` processes, a sample fed to the
input topics, and a Tryton database of the run's own, on a real broker and PostgreSQL.

A test (or the soak in bench/) starts the processes, feeds the sample, does something bad
to one of them, waits for the loop to drain and then makes the one check of
tests.faults.check. Everything a run creates is its own: topics under its prefix, consumer
groups under its app id, data directories and logs under its run directory, documents in
its database.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from pydantic import SecretStr

from streams.contracts.changelogs import changelog_sources
from streams.contracts.codec import Codec
from streams.contracts.groups import connector_group, dispatch_group
from streams.contracts.topics import (
    AGENT_SOURCES,
    ERP_COMMANDS,
    ERP_PENDING,
    ERP_RESULTS,
    INPUTS,
    JOURNAL,
    TopicCatalog,
)
from streams.local.tryton import Tryton
from streams.ops.health import READINESS_PATH
from streams.ops.settings import RateLimit, Settings
from streams.ops.topic_admin import ensure_topics
from streams.sample.generator import DEFAULT_START, Catalogue, SampleEvent, generate
from streams.topology.app import ACCOUNTING_PATH
from tests.faults.faulty import KILLED
from tests.support import STORE, free_port, record_count, spawn, wait_for

CODEC = Codec(STORE)

ORDERS = 10
"""Orders of a run in the suite: each fault's short version (bench/soak.py runs long ones)."""
RATE = 20.0
"""Events fed per second: the sample arrives over seconds and many batches, so a fault
injected once some of it is processed lands mid-stream."""

SETTLED_FOR = 3.0
"""Seconds the loop must stay drained and unchanged: longer than any process's commit
interval (Faust's 2.8 s), so a record between two topics shows as lag or a new offset."""


def loop_settings(bootstrap: str, prefix: str, erp: Tryton | None, run_dir: Path) -> Settings:
    """A run's settings: its own topics and groups, its ERP database (None: no ERP, the
    commands stay on erp.commands), the ERP's pacing opened wide (Tryton, not erpbridge, is
    the slow part) and quick retries."""
    settings = Settings(
        kafka_bootstrap_servers=bootstrap,
        topic_prefix=prefix,
        app_id=f"{prefix}app",
        data_dir=run_dir / "data",
        partitions=3,
        # Short, so a worker or connector killed with -9 hands its partitions over quickly.
        session_timeout_seconds=6,
        # Timers often enough that time-based findings settle while the loop drains.
        expiry_interval_seconds=2,
        erp_rate_limits={"tryton": RateLimit(rate=1000, burst=1000)},
        erp_max_in_flight={"tryton": 4},
        erp_backoff_initial_seconds=0.2,
        erp_backoff_max_seconds=2.0,
        connector_commit_interval_seconds=0.5,
    )
    if erp is None:
        return settings
    return settings.model_copy(
        update={
            "erp_url": erp.url,
            "erp_login": erp.login,
            "erp_password": SecretStr(erp.password),
        }
    )


def sample(seed: int, orders: int, start: datetime = DEFAULT_START) -> list[SampleEvent]:
    return list(generate(seed, orders, Catalogue.default(), start))


def around_now(seed: int, orders: int, minutes: int) -> list[SampleEvent]:
    """The sample's first 2 x `minutes` minutes (its opening snapshots, orders and payments),
    moved to happen from `minutes` ago to `minutes` from now."""
    start = datetime.now(UTC) - timedelta(minutes=minutes)
    end = start + timedelta(minutes=2 * minutes)
    return [e for e in sample(seed, orders, start) if e.datum["occurred_at"] < end]


def skewed(events: Sequence[SampleEvent], skews: Mapping[str, timedelta]) -> list[SampleEvent]:
    """Every time an event carries moved by its source's clock error (by `source`)."""

    def shift(value: Any, by: timedelta) -> Any:
        if isinstance(value, datetime):
            return value + by
        if isinstance(value, dict):
            return {k: shift(v, by) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(shift(v, by) for v in value)
        return value

    return [
        replace(event, datum=shift(event.datum, skews.get(event.datum["source"], timedelta())))
        for event in events
    ]


@dataclass
class Process:
    """A worker or connector process of the run, its log, and its web port."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    web_port: int

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.web_port}{path}", timeout=3
            ) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    def readiness(self) -> dict[str, Any]:
        """Each check of /readyz: {"ok": ..., "detail": ...} by name."""
        _, body = self.get(READINESS_PATH)
        checks: dict[str, Any] = body["checks"]
        return checks

    def kill(self) -> None:
        """kill -9, from outside, wherever the process is."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> int:
        """SIGTERM, as Kubernetes stops a pod; killed if it overstays."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode

    def wait_killed_by_fault(self, timeout: float) -> None:
        """Wait for the process to kill itself at its armed point (tests.faults.faulty); one
        that does not is reported with the end of its log (where a recovery stalled)."""
        try:
            wait_for(
                lambda: self.process.poll() is not None,
                timeout=timeout,
                what=f"{self.name} to reach its fault point",
            )
        except AssertionError as late:
            raise AssertionError(f"{late}; its log ends:\n{self.log_tail(80)}") from None
        log = self.log_path.read_text(errors="replace")
        assert self.process.returncode == -signal.SIGKILL and KILLED in log, (
            f"{self.name} exited {self.process.returncode}, not at its fault: {self.log_tail()}"
        )

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class Feed(threading.Thread):
    """Produces events to the input topics in the background, `rate` per second."""

    def __init__(self, settings: Settings, catalog: TopicCatalog, events: Sequence[SampleEvent],
                 rate: float) -> None:  # fmt: skip
        super().__init__(name="fault-feed", daemon=True)
        self._settings, self._catalog, self._events, self._rate = settings, catalog, events, rate
        self.error: BaseException | None = None

    def run(self) -> None:
        # One producer for the whole feed, which waits out a broker that is restarting.
        producer = Producer({**self._settings.producer_config(), "message.timeout.ms": 300_000})
        started = time.monotonic()
        try:
            for index, event in enumerate(self._events):
                if self._rate:
                    due = started + index / self._rate
                    time.sleep(max(0.0, due - time.monotonic()))  # pacing, not waiting
                topic = self._catalog.physical(event.topic)
                value = CODEC.encode(event.schema_name, event.datum, topic=topic)
                while True:
                    try:
                        producer.produce(topic, key=event.key.encode(), value=value)
                        break
                    except BufferError:  # its queue full: let deliveries drain it
                        producer.poll(0.5)
                producer.poll(0)
            assert producer.flush(300) == 0, "events were not delivered"
        except BaseException as exc:  # reported by `Loop.fed`, not lost in the thread
            self.error = exc


class Loop:
    """One run of the whole loop; `close` stops whatever it started."""

    def __init__(
        self,
        settings: Settings,
        erp: Tryton | None,
        run_dir: Path,
        deadline: float | None = None,
    ) -> None:
        """`deadline` (monotonic): when the test must have finished waiting."""
        self.settings = settings
        self._deadline = deadline
        self.erp = erp
        self.run_dir = run_dir
        self.catalog = TopicCatalog.from_settings(settings)
        ensure_topics(
            settings.confluent_config(), self.catalog, changelogs=changelog_sources(settings.app_id)
        )
        self.processes: list[Process] = []
        self.events: list[SampleEvent] = []
        self._feeds: list[Feed] = []
        self._last: tuple[float, dict[tuple[str, str, int], tuple[int, int]]] | None = None

    # --- processes ------------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str], fault: tuple[str, int] | None,
               settings: Settings, port_variable: str) -> Process:  # fmt: skip
        launcher = ["-m", "streams.cli"]
        if fault is not None:
            launcher = ["-m", "tests.faults.faulty", fault[0], str(fault[1])]
        port = free_port()
        log_path = self.run_dir / f"{name}.log"
        process = spawn([*launcher, *args], settings, log_path, **{port_variable: str(port)})
        started = Process(name, process, log_path, port)
        self.processes.append(started)
        return started

    def start_worker(self, name: str = "worker", *, fault: tuple[str, int] | None = None,
                     data_dir: Path | None = None) -> Process:  # fmt: skip
        """`erpbridge worker`; `fault` = (point, n) of tests.faults.faulty. Workers of one
        run share the data directory unless given their own (a second pod)."""
        settings = self.settings
        if data_dir is not None:
            settings = settings.model_copy(update={"data_dir": data_dir})
        return self._spawn(
            name, ["worker", "--loglevel", "info"], fault, settings, "ERPBRIDGE_WEB_PORT"
        )

    def start_connector(self, name: str = "connector", *, fault: tuple[str, int] | None = None,
                        **overrides: Any) -> Process:  # fmt: skip
        settings = self.settings.model_copy(update=overrides)
        return self._spawn(
            name,
            ["connector", "erp", "--loglevel", "info"],
            fault,
            settings,
            "ERPBRIDGE_CONNECTOR_WEB_PORT",
        )

    def close(self) -> None:
        """kill -9 whatever still runs: the run is over (and checked), only its logs stay."""
        for process in self.processes:
            if process.process.poll() is None:
                process.kill()

    # --- input ----------------------------------------------------------------------------

    def feed(self, events: Sequence[SampleEvent], *, rate: float = 0) -> Feed:
        """Produce `events` in the background (`rate` events/s, 0 = at once)."""
        self.events += events
        feed = Feed(self.settings, self.catalog, events, rate)
        feed.start()
        self._feeds.append(feed)
        return feed

    def fed(self) -> bool:
        for feed in self._feeds:
            if feed.error is not None:
                raise AssertionError(f"feeding the sample failed: {feed.error!r}")
        return not any(feed.is_alive() for feed in self._feeds)

    # --- progress -------------------------------------------------------------------------

    def groups(self) -> dict[str, list[str]]:
        """Each consumer group of the loop and the topics it reads."""
        groups = {
            self.settings.app_id: [self.catalog.physical(n) for n in AGENT_SOURCES],
            dispatch_group(self.settings.app_id): [
                self.catalog.physical(ERP_PENDING),
                self.catalog.physical(JOURNAL),
            ],
        }
        if self.erp is not None:
            connector = connector_group(self.settings.app_id, "tryton")
            groups[connector] = [self.catalog.physical(ERP_COMMANDS)]
        return groups

    def positions(self) -> dict[tuple[str, str, int], tuple[int, int]]:
        """(committed offset, end offset) per group, topic and partition."""
        config = self.settings.confluent_config()
        found: dict[tuple[str, str, int], tuple[int, int]] = {}
        for group, topics in self.groups().items():
            consumer = Consumer({**config, "group.id": group, "enable.auto.commit": False})
            try:
                partitions = [
                    TopicPartition(topic, p)
                    for topic in topics
                    for p in range(self.catalog.partitions(self.catalog.logical(topic)))
                ]
                for tp in consumer.committed(partitions, timeout=10):
                    low, high = consumer.get_watermark_offsets(tp, timeout=10)
                    committed = tp.offset if tp.offset >= 0 else low
                    found[group, tp.topic, tp.partition] = (committed, high)
            finally:
                consumer.close()
        return found

    def lag(self) -> dict[str, int]:
        """Records not yet committed, per group."""
        lag: dict[str, int] = {}
        for (group, _, _), (committed, high) in self.positions().items():
            lag[group] = lag.get(group, 0) + high - committed
        return lag

    def drained(self) -> bool:
        """Everything fed, every group committed to the end of what it reads, and nothing
        moved for SETTLED_FOR seconds."""
        if not self.fed():
            return False
        now, positions = time.monotonic(), self.positions()
        if any(committed != high for committed, high in positions.values()):
            self._last = None
            return False
        if self._last is None or self._last[1] != positions:
            self._last = (now, positions)
            return False
        return now - self._last[0] >= SETTLED_FOR

    def wait_drained(self, timeout: float) -> None:
        if self._deadline is not None:
            timeout = min(timeout, self._deadline - time.monotonic())
        try:
            wait_for(self.drained, timeout=timeout, what="the whole loop to drain")
        except AssertionError as error:
            alive = {p.name: p.process.poll() for p in self.processes}
            raise AssertionError(f"{error}; lag {self.lag()}; processes {alive}") from None

    def answered(self) -> int:
        """Results the connectors have published: commands the ERP executed (or refused)."""
        return record_count(self.settings.require_bootstrap(), self.catalog.physical(ERP_RESULTS))

    def wait_consumed(
        self, worker: Process, count: int, timeout: float, topics: Sequence[str] = INPUTS
    ) -> None:
        """Wait for `worker` to have consumed `count` events of `topics` (logical names)
        since it started."""

        def consumed() -> int:
            _, page = worker.get(ACCOUNTING_PATH)
            return sum(page["topics"].get(name, {}).get("consumed", 0) for name in topics)

        wait_for(
            lambda: consumed() >= count,
            timeout=timeout,
            what=f"{worker.name} to consume {count} events of {', '.join(topics)}",
        )
