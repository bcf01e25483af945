"""The ERP sink: erp.commands executed by one ERP adapter, answers on erp.results.

- At least once: an offset is committed only once every command before it in its partition
  was confirmed by the ERP or dead-lettered; the adapter's lookup by command id makes a
  redelivered command find its document instead of creating a second one.
- The ERP is protected: at most `erp_max_in_flight` commands run at once, attempts are paced
  by the target's rate limit (this connector's share of it, by partitions owned), and
  transient failures retry the command with exponential backoff and jitter, never sooner
  than the ERP's Retry-After. HTTP adapters also protect it per request
  (connectors.erp.http: a cap on requests in flight, throttled requests retried, a
  Retry-After holding back every request).
- One bad command never stalls the others: commands run concurrently up to the cap, and a
  failing one waits for its retry outside the cap. Permanent failures go to
  erp.commands.dlq at once with the ERP's message; transient ones once they outlast
  `erp_give_up_seconds`.
- Commands about one entity (an order, a SKU at a warehouse) run one at a time; a
  command whose prerequisite is not in the ERP yet (a shipment before its sales order)
  fails transiently and retries.
- Commands addressed to another ERP are left to that ERP's connector (its own group).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from mode import Service
from prometheus_client import Histogram

from connectors.erp.adapter import (
    UNREACHED,
    Document,
    ErpAdapter,
    ErpError,
    PermanentError,
    TransientError,
)
from connectors.erp.checks import refuse
from connectors.erp.retry import Backoff
from streams.contracts.codec import Codec, DecodeError
from streams.contracts.deadletter import of_consumed
from streams.contracts.groups import connector_group
from streams.contracts.topics import ERP_COMMANDS, ERP_RESULTS, TopicCatalog, dead_letter_of, spec
from streams.domain.commands import Command, Kind
from streams.domain.dispatch import Source, TokenBucket
from streams.ops.metrics import LATENCY_BUCKETS
from streams.ops.settings import Settings
from streams.topology.committer import Committer, idempotent_producer, stop_step

log = logging.getLogger(__name__)

STAGE = "erp"
_FETCH_TIMEOUT_MS = 200
_SEND_RETRY_DELAY = 1.0
_IDLE = 0.05


@dataclass(frozen=True, slots=True)
class Answer:
    """What became of one command."""

    document: Document | None
    error: ErpError | None
    attempts: int
    latency_ms: int


def entity_of(command: Command) -> str:
    """What the command changes in the ERP: commands about one entity run one at a time, so
    a cancellation never meets its sales order half made. erp.commands is keyed by command
    id, so they may come from different partitions. Journal entries are the entity of a
    PostJournalEntry: after a crash the dispatcher batches re-sent entries anew, under other
    ids, so batches that share entries run one at a time and each finds what the last
    posted."""
    if command.kind is Kind.POST_JOURNAL_ENTRY:
        return "journal"
    body = command.body
    if "order_id" in body:
        return f"order:{body['order_id']}"
    if "sku" in body:
        return f"stock:{body['sku']}@{body['warehouse_id']}"
    return command.command_id


class _KeyedLocks:
    """One lock per key, dropped once nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class ErpSink(Service):
    """Start and stop it like any mode service, or run it beside a Faust worker."""

    def __init__(
        self,
        settings: Settings,
        catalog: TopicCatalog,
        codec: Codec,
        adapter: ErpAdapter,
        *,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        super().__init__()
        self._settings = settings
        self._codec = codec
        self._adapter = adapter
        self._clock = clock
        self._rand = rand
        self._commands = catalog.physical(ERP_COMMANDS)
        self._results = catalog.physical(ERP_RESULTS)
        self._dead_letters = catalog.physical(dead_letter_of(ERP_COMMANDS))
        self._partitions = catalog.partitions(ERP_COMMANDS)
        self.group = connector_group(settings.app_id, adapter.name)
        self._backoff = Backoff.from_settings(settings)
        limit = settings.erp_rate_limits.get(adapter.name)
        self._bucket = (
            None if limit is None else TokenBucket(limit.rate, limit.burst, clock, share=0.0)
        )
        self._slots = asyncio.Semaphore(settings.erp_max_in_flight.get(adapter.name, 1))
        self._entities = _KeyedLocks()
        self._opened = False
        self._opening = asyncio.Lock()
        self._progress = Committer([self._commands], f"connector {adapter.name}")
        self._handling: dict[TopicPartition, set[asyncio.Task[None]]] = {}
        self._loops: list[asyncio.Future[None]] = []
        self._producer: Any = None
        self._tally: Counter[str] = Counter()
        """calls, paced (attempts that waited for the rate limit), dead_lettered, ignored
        (other targets); the rest of `counts` is derived."""
        self.running = 0
        self.max_running = 0
        self.answered: Counter[tuple[Kind, bool]] = Counter()
        """Commands answered, by kind and whether they succeeded."""
        self.retry_reasons: Counter[str] = Counter()
        """Retries, by the transient failure's code."""
        self.erp_up: bool | None = None
        """Whether the last ERP call reached the ERP (None before the first)."""
        # Unregistered: connectors.erp.metrics collects it into the connector's registry.
        self.request_seconds = Histogram(
            "erpbridge_connector_erp_request_seconds",
            "One attempt at executing one command in the ERP.",
            ["target", "kind"],
            buckets=LATENCY_BUCKETS,
            registry=None,
        )

    async def on_start(self) -> None:
        self._producer = idempotent_producer(self._settings, self.group)
        await self._producer.start()
        await self._progress.subscribe(self._settings, self.group, self.assigned, self.revoked)
        self._loops = [
            self.add_future(self._fetch()),
            self.add_future(
                self._progress.commit_every(self._settings.connector_commit_interval_seconds)
            ),
        ]

    async def on_stop(self) -> None:
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        if self._progress.consumer is not None:
            await self._cancel(set(self._handling))
            await self._progress.close()
        if self._producer is not None:
            await stop_step(self._producer.stop(), f"{self._progress.name}: stopping the producer")
        await self._adapter.close()

    # --- rebalancing ------------------------------------------------------------------

    def assigned(self, partitions: set[TopicPartition]) -> None:
        self._progress.owned = set(partitions)
        self._resize()
        log.info("connector %s: owns %s", self._adapter.name, self._owned_partitions())

    async def revoked(self, partitions: set[TopicPartition]) -> None:
        """Commit what is done and drop the rest: their next owner runs it again, and the
        ERP lookup by command id keeps a command that already ran from running twice."""
        await self._cancel(partitions)
        await self._progress.release(partitions)
        self._resize()

    def _resize(self) -> None:
        if self._bucket is not None:
            self._bucket.resize(len(self._progress.owned) / self._partitions)

    async def _cancel(self, partitions: Iterable[TopicPartition]) -> None:
        tasks = [t for p in partitions for t in self._handling.pop(p, set())]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- reading ----------------------------------------------------------------------

    def held(self) -> int:
        return sum(len(tasks) for tasks in self._handling.values())

    async def _fetch(self) -> None:
        while True:
            self._backpressure()
            batches = await self._progress.consumer.getmany(
                timeout_ms=_FETCH_TIMEOUT_MS,
                max_records=max(1, self._settings.connector_buffer - self.held()),
            )
            for tp, records in batches.items():
                if tp not in self._progress.owned:
                    continue  # revoked while fetched: its next owner reads it
                for record in records:
                    self._take(record)

    def _backpressure(self) -> None:
        full = self.held() >= self._settings.connector_buffer
        self._progress.pause_only(set(self._progress.owned) if full else set())

    def _take(self, record: ConsumerRecord) -> None:
        source = Source(record.topic, record.partition, record.offset)
        self._progress.received(source)
        tasks = self._handling.setdefault(TopicPartition(record.topic, record.partition), set())
        task = asyncio.ensure_future(self._handle(record, source))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        task.add_done_callback(self._crash_on_bug)

    def _crash_on_bug(self, task: asyncio.Task[None]) -> None:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            # A bug here must stop the connector, not leave an offset stuck for ever.
            self.add_future(self.crash(error))

    # --- executing --------------------------------------------------------------------

    async def _handle(self, record: ConsumerRecord, source: Source) -> None:
        try:
            datum = self._codec.decode(record.value, expected=spec(ERP_COMMANDS).value_schema).datum
            command = Command.from_datum(datum)
        except DecodeError as error:
            await self._dead_letter(record, error.reason, str(error))
            self._progress.done(source)
            return
        context = {"command_id": command.command_id}
        if "order_id" in command.body:
            context["order_id"] = command.body["order_id"]
        # Every log line about this command, from here down, carries its ids.
        with structlog.contextvars.bound_contextvars(**context):
            if command.target != self._adapter.name:
                self._tally["ignored"] += 1
            else:
                refusal = refuse(command)
                if refusal is not None:
                    answer = Answer(None, refusal, 0, 0)
                else:
                    answer = await self._execute(command)
                await self._answer(record, command, answer)
        self._progress.done(source)

    async def _execute(self, command: Command) -> Answer:
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            async with self._entities.hold(entity_of(command)), self._slots:
                try:
                    # Logged in before the pace: tokens taken while waiting for the login
                    # would let the attempts behind it reach the ERP all at once.
                    await self._open()
                    await self._pace()
                    document = await self._call(command)
                    self.erp_up = True
                    return Answer(document, None, attempt, self._ms_since(started))
                except PermanentError as error:
                    self.erp_up = True
                    return Answer(None, error, attempt, self._ms_since(started))
                except TransientError as error:
                    self.erp_up = error.code not in UNREACHED
                    failure = error
                except (KeyError, TypeError, ValueError) as error:
                    # The ERP answered something the adapter cannot read: no retry will help.
                    reason = PermanentError("adapter-error", repr(error))
                    log.exception("connector: %s failed in the adapter", command.command_id)
                    return Answer(None, reason, attempt, self._ms_since(started))
            delay = self._backoff.delay(attempt, failure.retry_after, self._rand)
            elapsed = self._clock() - started
            if self._backoff.gives_up(elapsed, delay):
                # Final for this connector; a replay from the dead-letter topic may succeed.
                gave_up = PermanentError(
                    failure.code,
                    f"{failure.message} (still failing after {attempt} attempts in {elapsed:.0f}s)",
                )
                return Answer(None, gave_up, attempt, self._ms_since(started))
            self.retry_reasons[failure.code] += 1
            log.info(
                "connector: %s failed (%s), retry in %.1fs", command.command_id, failure, delay
            )
            await asyncio.sleep(delay)

    async def _call(self, command: Command) -> Document:
        """One attempt at `command` in the ERP, counted and timed."""
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        self._tally["calls"] += 1
        try:
            with self.request_seconds.labels(self._adapter.name, command.kind.value).time():
                return await self._adapter.execute(command)
        finally:
            self.running -= 1

    async def _open(self) -> None:
        async with self._opening:
            if not self._opened:
                await self._adapter.open()
                self._opened = True

    async def _pace(self) -> None:
        if self._bucket is None or self._bucket.take():
            return
        # Counted, so an operator (and a test) can tell the rate limit from the ERP holding
        # the connector back.
        self._tally["paced"] += 1
        while not self._bucket.take():
            delay = self._bucket.delay()
            await asyncio.sleep(_IDLE if delay is None else max(delay, 0.001))

    def _ms_since(self, started: float) -> int:
        return int((self._clock() - started) * 1000)

    # --- answering --------------------------------------------------------------------

    async def _answer(self, record: ConsumerRecord, command: Command, answer: Answer) -> None:
        error = answer.error
        self.answered[command.kind, error is None] += 1
        if error is not None:
            await self._dead_letter(record, error.code, error.message)
        status = "SUCCEEDED" if error is None else "FAILED"
        datum = {
            "event_id": f"{command.command_id}/{status.lower()}",
            "occurred_at": datetime.now(UTC),
            "source": f"erp:{self._adapter.name}",
            "command_id": command.command_id,
            "target": command.target,
            "status": status,
            "kind": command.kind.value,
            "order_id": command.body.get("order_id"),
            "document_type": None if answer.document is None else answer.document.type,
            "document_id": None if answer.document is None else answer.document.id,
            "error": None
            if error is None
            else {"code": error.code, "message": error.message, "permanent": error.permanent},
            "attempts": answer.attempts,
            "latency_ms": answer.latency_ms,
        }
        value = self._codec.encode(spec(ERP_RESULTS).value_schema or "", datum, topic=self._results)
        await self._send(self._results, command.command_id.encode(), value, [])

    async def _dead_letter(self, record: ConsumerRecord, reason: str, error: str) -> None:
        letter = of_consumed(record, self._dead_letters, stage=STAGE, reason=reason, error=error)
        log.warning(
            "connector: %s offset %d dead-lettered: %s %s",
            record.topic,
            record.offset,
            reason,
            error,
        )
        await self._send(letter.topic, letter.key, letter.value, letter.headers, letter.partition)
        self._tally["dead_lettered"] += 1

    async def _send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
        partition: int | None = None,
    ) -> None:
        # The offset waits for this: a result or dead letter is never lost to a broker hiccup.
        while True:
            try:
                await self._producer.send_and_wait(
                    topic, value=value, key=key, headers=headers, partition=partition
                )
                return
            except KafkaError as exc:
                log.warning("connector: sending to %s failed, again: %r", topic, exc)
                await asyncio.sleep(_SEND_RETRY_DELAY)

    # --- observing --------------------------------------------------------------------

    @property
    def target(self) -> str:
        return self._adapter.name

    @property
    def joined(self) -> bool:
        return self._progress.joined

    def consumer(self) -> Any:
        """The connector's group consumer, once started."""
        return self._progress.consumer

    @property
    def counts(self) -> Counter[str]:
        """succeeded, failed, dead_lettered, retries, calls, paced, ignored (other targets)."""
        succeeded = sum(n for (_, ok), n in self.answered.items() if ok)
        return self._tally + Counter(
            succeeded=succeeded,
            failed=self.answered.total() - succeeded,
            retries=self.retry_reasons.total(),
        )

    @property
    def executed(self) -> Counter[Kind]:
        """Commands the ERP confirmed, by kind."""
        return Counter({kind: n for (kind, ok), n in self.answered.items() if ok})

    def _owned_partitions(self) -> list[int]:
        """The erp.commands partitions it owns: the only topic it reads."""
        return sorted(tp.partition for tp in self._progress.owned)

    def snapshot(self) -> dict[str, Any]:
        counts = self.counts
        return {
            "group": self.group,
            "target": self._adapter.name,
            "owned_partitions": self._owned_partitions(),
            "held": self.held(),
            "running": self.running,
            "max_running": self.max_running,
            **{
                k: counts[k]
                for k in ("succeeded", "failed", "retries", "calls", "paced", "ignored")
            },
            "executed": {kind.value: n for kind, n in sorted(self.executed.items())},
        }
