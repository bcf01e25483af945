"""The dispatcher: ERP commands from internal.erp-pending, and journal entries from
finance.journal, to erp.commands at each target's rate.

Not a Faust agent: holding records while they wait for tokens would block Faust's single
consumer (and every other agent) and stall rebalances on unacknowledged events. It has
its own aiokafka consumer, in the group `<app id>-dispatch`, subscribed to both topics,
and its own producer.

- Each journal entry is written once, to finance.journal; read back, it becomes the
  PostJournalEntry `entry_command` makes of it, addressed to ERPBRIDGE_ERP_TARGET. The
  PostJournalEntry commands an older release put on the pending topic are dispatched like
  any other command.
- The limit is shared: this worker's share of every target's rate and burst is the
  fraction of the two topics' partitions it owns, recomputed on each rebalance.
- Nothing is lost: a record's offset commits only once the command standing for it is
  acknowledged on erp.commands (or the record is on its topic's dead-letter topic), never
  past a record of its topic-partition still waiting; after a crash the records since the
  last commit are read again and re-sent (sinks de-duplicate on command ids, and on the
  parts of merged commands). Lanes reorder sends, so a partition's commit waits for its
  oldest waiting record: what a crash re-sends is what was sent after that record arrived,
  not only the last second.
- Memory is bounded: past three quarters of `dispatch_buffer` held, topic-partitions with
  records waiting in the least urgent lane pause; at `dispatch_buffer`, all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from mode import Service
from prometheus_client import Histogram

from streams.contracts import deadletter
from streams.contracts.codec import Codec, DecodeError
from streams.contracts.groups import dispatch_group
from streams.contracts.journal import InvalidEntry, decode_entry
from streams.contracts.topics import (
    DISPATCH_SOURCES,
    ERP_COMMANDS,
    JOURNAL,
    TopicCatalog,
    dead_letter_of,
)
from streams.domain.commands import Command, Kind
from streams.domain.dispatch import (
    MERGING,
    Clock,
    Dispatch,
    DispatchQueue,
    Partition,
    Pending,
    Source,
    TokenBucket,
)
from streams.domain.finance import entry_command
from streams.ops.metrics import LATENCY_BUCKETS
from streams.ops.settings import Settings
from streams.topology.committer import Committer, idempotent_producer, stop_step

log = logging.getLogger(__name__)

DISPATCH_PATH = "/erpbridge/dispatch/"
ERP_COMMAND = "erpbridge.ErpCommand"
COMMIT_INTERVAL = 1.0
"""Seconds between offset commits."""
_FETCH_TIMEOUT_MS = 200
_FETCH_MAX_RECORDS = 500
_RETRY_DELAY = 1.0


class _Rejected(Exception):
    def __init__(self, stage: str, reason: str, error: str) -> None:
        super().__init__(f"{reason}: {error}")
        self.stage = stage
        self.reason = reason
        self.error = error


@dataclass
class _Target:
    bucket: TokenBucket
    queue: DispatchQueue
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    saved: int = 0
    emitted: Counter[Kind] = field(default_factory=Counter)
    """Commands sent, by kind."""
    failed_sends: int = 0
    """Sends the producer could not complete (each retried)."""

    @property
    def sent(self) -> int:
        return self.emitted.total()


@dataclass(frozen=True)
class TargetFigures:
    """One target's figures for /metrics."""

    emitted: Mapping[Kind, int]
    waiting: int
    """ERP calls waiting for the limiter."""
    saved: int


class Dispatcher(Service):
    """Start and stop it like any mode service (`await d.start()`, `await d.stop()`), or
    attach it to the Faust app, which then starts and stops it with the worker."""

    def __init__(
        self,
        settings: Settings,
        catalog: TopicCatalog,
        codec: Codec,
        clock: Clock = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self._settings = settings
        self._codec = codec
        self._wall_clock = wall_clock
        self._journal = catalog.physical(JOURNAL)
        self._commands = catalog.physical(ERP_COMMANDS)
        # Each topic read, by its physical name: its logical name and its dead-letter topic.
        self._logical = {catalog.physical(name): name for name in DISPATCH_SOURCES}
        self._dead_letters = {
            physical: catalog.physical(dead_letter_of(name))
            for physical, name in self._logical.items()
        }
        self._partitions = sum(catalog.partitions(name) for name in self._logical.values())
        self.group = dispatch_group(settings.app_id)
        # No share before the first assignment: a bucket only ever fills at this worker's share.
        self._targets = {
            name: _Target(
                TokenBucket(limit.rate, limit.burst, clock, share=0.0),
                DispatchQueue(settings.journal_batch_size),
            )
            for name, limit in settings.erp_rate_limits.items()
        }
        self._progress = Committer(list(self._logical), "dispatch")
        self._in_flight: set[asyncio.Future[None]] = set()
        self._loops: list[asyncio.Future[None]] = []
        self._dead_lettered: Counter[tuple[str, str]] = Counter()
        """By (logical topic, reason)."""
        self._producer: Any = None
        # Unregistered: streams.ops.metrics collects them into the worker's registry.
        self.wait_seconds = Histogram(
            "erpbridge_dispatch_wait_seconds",
            "Time a command waited for the rate limiter: from the pending topic (or the "
            "journal) to its release.",
            ["target"],
            buckets=LATENCY_BUCKETS,
            registry=None,
        )
        self.event_to_command_seconds = Histogram(
            "erpbridge_event_to_command_seconds",
            "From the input event's time to its ERP command published on erp.commands.",
            ["target"],
            buckets=LATENCY_BUCKETS,
            registry=None,
        )
        for name in self._targets:
            self.wait_seconds.labels(name)
            self.event_to_command_seconds.labels(name)

    async def on_start(self) -> None:
        self._producer = idempotent_producer(self._settings, self.group)
        await self._producer.start()
        await self._progress.subscribe(self._settings, self.group, self.assigned, self.revoked)
        self._loops = [
            self.add_future(self._fetch()),
            self.add_future(self._progress.commit_every(COMMIT_INTERVAL)),
            *(self.add_future(self._dispatch(t)) for t in self._targets.values()),
        ]

    async def on_stop(self) -> None:
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        if self._progress.consumer is not None:
            await stop_step(self._drain(), f"{self._progress.name}: the sends in flight")
            await self._progress.close()
        if self._producer is not None:
            await stop_step(self._producer.stop(), f"{self._progress.name}: stopping the producer")

    # --- rebalancing ------------------------------------------------------------------

    def assigned(self, partitions: set[TopicPartition]) -> None:
        self._progress.owned = set(partitions)
        self._resize()
        log.info("dispatch: owns %s of %d partitions", _by_topic(partitions), self._partitions)

    async def revoked(self, partitions: set[TopicPartition]) -> None:
        """Stop spending tokens for them, let sends finish and commit, then forget what
        waits from them: their next owner reads it again from the committed offset."""
        self._resize(self._progress.owned - partitions)
        await self._drain()
        await self._progress.release(partitions)
        dropped = sum(t.queue.drop(partitions) for t in self._targets.values())
        log.info(
            "dispatch: revoked %s, %d waiting commands left to their next owner",
            _by_topic(partitions),
            dropped,
        )

    def _resize(self, owned: set[TopicPartition] | None = None) -> None:
        # Counted over both topics' partitions: each has one owner in the group, so the
        # shares add up to the whole limit, and a worker owning journal partitions only
        # still earns tokens to post them. The range assignor (Committer) deals each topic's
        # partitions out alike, so that is also about its part of either topic's traffic.
        share = len(self._progress.owned if owned is None else owned) / self._partitions
        for target in self._targets.values():
            target.bucket.resize(share)
            target.wake.set()

    # --- reading ----------------------------------------------------------------------

    async def _fetch(self) -> None:
        while True:
            self._backpressure()
            room = self._settings.dispatch_buffer - self._held()
            batches = await self._progress.consumer.getmany(
                timeout_ms=_FETCH_TIMEOUT_MS, max_records=max(1, min(room, _FETCH_MAX_RECORDS))
            )
            for tp, records in batches.items():
                if tp not in self._progress.owned:
                    continue  # revoked while fetched: its next owner reads it
                for record in records:
                    await self._intake(record)

    async def _intake(self, record: ConsumerRecord) -> None:
        source = Source(record.topic, record.partition, record.offset)
        self._progress.received(source)
        try:
            command, target = self._parse(record)
            # Checked now, so a command that cannot be sent never blocks its lane; the
            # encoding is kept for the send. Merging kinds are encoded once merged (see
            # _unmerge for one that cannot be).
            value = None if command.kind in MERGING else self._encode(command)
        except _Rejected as rejected:
            await self._dead_letter(record, rejected)
            self._progress.done(source)
            return
        if not len(target.queue):
            target.wake.set()
        target.queue.push(Pending(command, source, record.timestamp, value, record))

    def _parse(self, record: ConsumerRecord) -> tuple[Command, _Target]:
        if record.topic == self._journal:
            command = self._entry_command(record.value)
        else:
            command = _pending_command(record.value)
        target = self._targets.get(command.target)
        if target is None:
            raise _Rejected(
                "rules",
                "unknown-target",
                f"no rate limit for ERP target {command.target!r} (ERPBRIDGE_ERP_RATE_LIMITS)",
            )
        return command, target

    def _entry_command(self, value: bytes | None) -> Command:
        """The PostJournalEntry of a finance.journal record, as the worker addresses commands."""
        try:
            entry = decode_entry(self._codec, value)
        except DecodeError as exc:
            raise _Rejected("decode", exc.reason, exc.detail) from exc
        except InvalidEntry as exc:
            raise _Rejected("rules", "invalid-entry", str(exc)) from exc
        return entry_command(entry, self._settings.erp_target)

    def _encode(self, command: Command) -> bytes:
        try:
            return self._codec.encode(ERP_COMMAND, command.to_datum(), topic=self._commands)
        except (ValueError, KeyError, TypeError) as exc:
            raise _Rejected("decode", "invalid-command", str(exc)) from exc

    async def _dead_letter(self, record: ConsumerRecord, rejected: _Rejected) -> None:
        letter = deadletter.of_consumed(
            record,
            self._dead_letters[record.topic],
            stage=rejected.stage,
            reason=rejected.reason,
            error=rejected.error,
        )
        # Awaited before the offset is done, like every dead letter of the topology.
        await self._producer.send_and_wait(
            letter.topic,
            value=letter.value,
            key=letter.key,
            partition=letter.partition,
            headers=letter.headers,
        )
        self._dead_lettered[self._logical[record.topic], rejected.reason] += 1
        log.warning(
            "dead-lettered %s[%d]@%d (%s): %s",
            record.topic,
            record.partition,
            record.offset,
            rejected.reason,
            rejected.error,
        )

    def _held(self) -> int:
        return sum(t.queue.held for t in self._targets.values())

    def _backpressure(self) -> None:
        held = self._held()
        limit = self._settings.dispatch_buffer
        lanes = [lane for t in self._targets.values() for lane, n in t.queue.depth().items() if n]
        wanted: set[Partition] = set()
        if held >= limit:
            wanted = set(self._progress.owned)
        elif lanes and held >= limit * 3 // 4:
            # Reading on where more urgent work waits lets it overtake; the rest can wait.
            least = max(lanes)
            for t in self._targets.values():
                wanted |= t.queue.partitions_in(least)
        self._progress.pause_only(wanted)

    # --- sending ----------------------------------------------------------------------

    async def _dispatch(self, target: _Target) -> None:
        while True:
            delay = target.bucket.delay() if len(target.queue) else None
            if delay != 0.0:
                await _sleep_or_wake(target.wake, delay)
                continue
            target.bucket.take()
            dispatch = target.queue.pop()
            assert dispatch is not None
            # Stamped when the limiter lets it go, so erp.commands' timestamps show the
            # rate the ERP is held to, however late the event loop gets to the send.
            released_ms = int(self._wall_clock() * 1000)
            queued_ms = min(m.queued_ms for m in dispatch.members)
            self.wait_seconds.labels(dispatch.command.target).observe(
                max(0, released_ms - queued_ms) / 1000
            )
            # Not awaited here: acknowledgements come back while the next tokens accrue. A
            # service future, so a bug crashes the service instead of stalling a partition.
            sending = self.add_future(self._send(target, dispatch, released_ms))
            self._in_flight.add(sending)
            sending.add_done_callback(self._in_flight.discard)

    async def _send(self, target: _Target, dispatch: Dispatch, released_ms: int) -> None:
        command = dispatch.command
        alone = dispatch.members[0].value if len(dispatch.members) == 1 else None
        try:
            value = alone if alone is not None else self._encode(command)
        except _Rejected:
            await self._unmerge(target, dispatch)
            return
        try:
            await self._producer.send_and_wait(
                self._commands,
                value=value,
                key=command.command_id.encode(),
                timestamp_ms=released_ms,
            )
        except KafkaError as exc:
            log.warning("dispatch: sending %s failed, it waits again: %r", command.command_id, exc)
            target.failed_sends += 1
            await asyncio.sleep(_RETRY_DELAY)
            target.queue.requeue(dispatch)
            target.wake.set()
            return
        for source in dispatch.sources:
            self._progress.done(source)
        target.emitted[command.kind] += 1
        target.saved += dispatch.saved
        published_ms = self._wall_clock() * 1000
        self.event_to_command_seconds.labels(command.target).observe(
            max(0.0, published_ms - command.created_ms) / 1000
        )

    async def _unmerge(self, target: _Target, dispatch: Dispatch) -> None:
        """A merged command that cannot be encoded: each member is tried alone; the ones that
        cannot be sent either are dead-lettered, the others wait again, first in their lane,
        to be sent one by one."""
        valid = []
        for member in dispatch.members:
            try:
                valid.append(replace(member, value=self._encode(member.command)))
            except _Rejected as rejected:
                await self._dead_letter(member.record, rejected)
                self._progress.done(member.source)
        target.queue.requeue_apart(valid)
        target.wake.set()

    async def _drain(self) -> None:
        while self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    # --- observing --------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """What GET /erpbridge/dispatch/ shows: per target its rate, this worker's share
        and tokens, ERP calls waiting per lane, the oldest waiting command's age, ERP calls
        sent and saved by coalescing, sends that failed (and wait again); and the partitions
        owned and paused, per topic."""
        now_ms = int(self._wall_clock() * 1000)
        targets = {}
        for name, t in self._targets.items():
            oldest = t.queue.oldest_ms()
            targets[name] = {
                "rate": t.bucket.rate,
                "burst": t.bucket.burst,
                "share": t.bucket.share,
                "tokens": round(t.bucket.tokens(), 3),
                "depth": {lane.name.lower(): n for lane, n in t.queue.depth().items()},
                "held": t.queue.held,
                "oldest_age_seconds": None if oldest is None else max(0, now_ms - oldest) / 1000,
                "sent": t.sent,
                "calls_saved": t.saved,
                "failed_sends": t.failed_sends,
            }
        return {
            "group": self.group,
            "owned_partitions": _by_topic(self._progress.owned),
            "paused_partitions": _by_topic(self._progress.paused),
            "partitions": self._partitions,
            "in_flight": len(self._in_flight),
            "dead_lettered": sum(self._dead_lettered.values()),
            "targets": targets,
        }

    def figures(self) -> dict[str, TargetFigures]:
        return {
            name: TargetFigures(dict(t.emitted), len(t.queue), t.saved)
            for name, t in self._targets.items()
        }

    def dead_letters(self) -> dict[tuple[str, str], int]:
        """Records dead-lettered from the pending topic and the journal, by (logical topic,
        reason)."""
        return dict(self._dead_lettered)

    def consumer(self) -> Any:
        """The dispatcher's group consumer, once started."""
        return self._progress.consumer

    @property
    def joined(self) -> bool:
        return self._progress.joined


def _pending_command(value: bytes | None) -> Command:
    try:
        return Command.decode(value or b"")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _Rejected("decode", "corrupt", repr(exc)) from exc


def _by_topic(partitions: Iterable[TopicPartition]) -> dict[str, list[int]]:
    """Partition numbers per topic, for logs and the snapshot."""
    numbers: dict[str, list[int]] = {}
    for tp in sorted(partitions):
        numbers.setdefault(tp.topic, []).append(tp.partition)
    return numbers


async def _sleep_or_wake(wake: asyncio.Event, timeout: float | None) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(wake.wait(), timeout)
    wake.clear()
