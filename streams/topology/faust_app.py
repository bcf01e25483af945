"""The faust.App erpbridge runs: Faust's, guarded against losing records around rebalances.

After a recovery that reads changelogs (a worker killed with kill -9, an empty data
directory, a partition moving in), faust-streaming 0.15 seeks the stream partitions to
their committed offsets and then clears every stream queue as it resumes the flow: records
fetched in between are dropped while the consumer counts them as read (faust-streaming
issue #596), and Faust has more such holes (streams.topology.cursors).

Two guards:
- on resume, queued records of stream partitions this worker owns are kept (in order), so
  a recovery does not leave a hole to re-read; revocation still drops everything queued;
- the consumer commits only what the agents handled without a hole (`Cursors`), and a
  partition with a hole is sought back to it: a record Faust dropped is read again, never
  skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

import faust
from faust.exceptions import ConsumerNotStarted
from faust.transport.drivers.aiokafka import Consumer
from faust.types import TP, ConsumerT
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent

from streams.ops.health import PartitionSample
from streams.topology.cursors import Cursors
from streams.topology.producer import RecordProducer

log = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 30.0
"""How long an agent waits for a partition's first offset before it stops the worker."""
STALL_LOOK_SECONDS = 5.0
"""How often partitions left behind their high watermark are looked for: a record Faust
dropped as the last one fetched is read again within two looks."""
RECOVERY_STALL_SECONDS = 20.0
"""How long a changelog partition being restored may give no record, while records remain
to read, before it is read again from where its restore stands."""


class _HandledOffsetsConsumer(Consumer):
    """Commits what the agents handled (`Cursors`), not what Faust acknowledged."""

    app: StreamApp

    def _new_offset(self, tp: TP) -> int | None:
        if tp.topic not in self.app.stream_topics:
            new: int | None = super()._new_offset(tp)
            return new
        # Faust's own bookkeeping of acknowledged offsets is not used: keep it from growing.
        # A partition no agent started commits nothing: Faust may have acknowledged records
        # it never delivered.
        self._acked[tp].clear()
        self._acked_index[tp].clear()
        return self.app.cursors.committable(tp)


class _KeepStreamsOnResume(FlowControlEvent):
    """Resuming keeps what streams have queued; only revocation (`clear`) drops it.

    Faust clears every queue on resume, after it has sought the stream partitions to
    their committed offsets: records fetched in between were lost. Revocation clears the
    queues of partitions that leave; on resume every queued stream record belongs to a
    partition this worker owns, so it is kept and processed in order.
    """

    def __init__(self, app: StreamApp) -> None:
        super().__init__(loop=app.loop)
        self._app = app

    def resume(self) -> None:
        self._suspend.clear()
        self._resume.set()
        owned = set(self._app.assignor.assigned_actives())
        for queue in self._queues:
            items: Any = queue._queue  # type: ignore[attr-defined]
            kept = [item for item in items if self._app.owns_stream_record(item, owned)]
            items.clear()
            items.extend(kept)


class StreamApp(faust.App):
    def __init__(
        self,
        *args: Any,
        stream_topics: frozenset[str],
        producer_config: Mapping[str, Any],
        stall_look_seconds: float = STALL_LOOK_SECONDS,
        **kwargs: Any,
    ) -> None:
        """`producer_config`: librdkafka settings of the producer every batch is written
        with (`Settings.producer_config`); Faust's own producer carries nothing of ours."""
        super().__init__(*args, **kwargs)
        self.stream_topics = stream_topics
        self.records = RecordProducer(producer_config)
        self.add_dependency(self.records)
        self.assigned = False
        """The group gave this worker its partitions (maybe none) since the last revocation."""
        self.cursors = Cursors()
        self.timer(stall_look_seconds, name="erpbridge.reread_stalled")(self.reread_stalled)
        self.timer(stall_look_seconds, name="erpbridge.unstick_recovery")(self.unstick_recovery)

    async def _on_partitions_revoked(self, revoked: set[TP]) -> None:
        self.assigned = False
        # Faust waits for the agents to finish what they took and commits it, then the
        # cursors start again from the group's commits at the next assignment.
        await super()._on_partitions_revoked(revoked)
        self.cursors.forget()

    async def _on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        self.assigned = True
        await super()._on_partitions_assigned(assigned, generation_id)

    async def stream_samples(self) -> list[PartitionSample]:
        """The stream partitions this worker owns, for health and lag. Progress is the
        committed offset: records fetched but never processed (the race above) still
        wait. During a rebalance or a recovery waiting is expected."""
        consumer: Any = self.consumer
        expected = self.rebalancing or not self.tables.actives_ready
        try:
            assignment = consumer.assignment()
        except ConsumerNotStarted:
            return []
        samples = []
        for tp in sorted(assignment):
            if tp.topic not in self.stream_topics:
                continue
            samples.append(
                PartitionSample(
                    tp.topic,
                    tp.partition,
                    consumer.highwater(tp),
                    await consumer.position(tp),
                    consumer._committed_offset.get(tp),
                    expected,
                )
            )
        return samples

    async def start_cursors(self, tps: set[TP]) -> dict[TP, int]:
        """Start the cursors of newly read partitions where the group committed (or, with
        no commit, at the log's first offset: Faust's committed 0 reads as None); the
        offsets they start at."""
        consumer: Any = self.consumer
        committed = {tp: consumer._committed_offset.get(tp) for tp in tps}
        missing = [tp for tp, offset in committed.items() if offset is None]
        earliest = {}
        while missing:
            # A call to the consumer's thread: bounded, so that an agent never hangs on it,
            # and asked again while the broker does not answer (a restart, a network
            # partition): these partitions cannot be read before it does, and stopping the
            # worker would not bring it back sooner.
            try:
                earliest = await asyncio.wait_for(
                    consumer.earliest_offsets(*missing), timeout=START_TIMEOUT_SECONDS
                )
                break
            except TimeoutError:
                log.warning(
                    "no answer in %.0f s about where %d partitions without a commit start "
                    "(is the broker up?); asking again",
                    START_TIMEOUT_SECONDS,
                    len(missing),
                )
        starts = {
            tp: offset if offset is not None else earliest[tp] for tp, offset in committed.items()
        }
        for tp, offset in starts.items():
            self.cursors.start(tp, offset)
        return starts

    async def seek_back(self, holes: dict[TP, int], why: str) -> None:
        """Read `holes`' partitions again from the offsets given (not during a rebalance:
        the next assignment seeks every partition to its commit anyway)."""
        if self.rebalancing or not holes:
            return
        consumer: Any = self.consumer
        owned = consumer.assignment()
        seeks = {tp: offset for tp, offset in holes.items() if tp in owned}
        for tp, offset in seeks.items():
            log.warning(
                "reading %s[%d] again from offset %d: %s", tp.topic, tp.partition, offset, why
            )
        if seeks:
            # On the consumer's own thread: `seek` would move aiokafka's fetcher from this
            # one while that thread reads from it (a KeyError that stopped the worker).
            await consumer.seek_wait(seeks)

    async def reread_stalled(self) -> None:
        """Seek back the partitions left behind their high watermark without a record to
        show the hole (it was the last one fetched), or without any record having reached
        their agent since the assignment."""
        if self.rebalancing or not self.tables.actives_ready:
            return
        consumer: Any = self.consumer
        try:
            owned = consumer.assignment()
        except ConsumerNotStarted:
            return
        highwaters = {
            tp: highwater
            for tp in owned
            if tp.topic in self.stream_topics and (highwater := consumer.highwater(tp)) is not None
        }
        waiting = {
            tp
            for tp, highwater in highwaters.items()
            if highwater > (consumer._committed_offset.get(tp) or 0)
        }
        holes, unstarted = self.cursors.look(highwaters, waiting)
        if unstarted:
            try:
                holes.update(await self.start_cursors(unstarted))
            except TimeoutError:
                log.warning("no first offsets for %s yet; looking again", sorted(unstarted))
        await self.seek_back(holes, "records fetched were not delivered")

    async def unstick_recovery(self) -> None:
        """Read again the changelog partitions a recovery waits on that gave no record for
        RECOVERY_STALL_SECONDS while records remain: after a rebalance under load, Faust's
        recovery was seen waiting forever on partitions whose records never reached it
        (a test's worker stuck for minutes, its changelogs full)."""
        tables: Any = self.tables
        recovery = tables.recovery
        if self.rebalancing or not recovery.in_recovery or recovery._recovery_started_at is None:
            return
        now = time.monotonic()
        received = recovery._active_events_received_at
        stuck = {
            tp: max(offset + 1, 0)
            for tp, highwater in recovery.active_highwaters.items()
            if (offset := recovery.active_offsets.get(tp, -1)) < highwater
            and now - received.get(tp, recovery._recovery_started_at) > RECOVERY_STALL_SECONDS
        }
        if not stuck:
            return
        consumer: Any = self.consumer
        log.warning(
            "recovery has had no record of %s for %.0f s: reading them again from %s",
            sorted(f"{tp.topic}[{tp.partition}]" for tp in stuck),
            RECOVERY_STALL_SECONDS,
            sorted(stuck.values()),
        )
        consumer.resume_partitions(stuck)
        await consumer.seek_wait(stuck)
        for tp in stuck:
            received[tp] = now  # a look, not a record: the next look waits as long again

    @cached_property
    def flow_control(self) -> FlowControlEvent:
        return _KeepStreamsOnResume(self)

    def owns_stream_record(self, item: Any, owned: set[TP]) -> bool:
        message = getattr(item, "message", None)
        return message is not None and message.tp in owned and message.topic in self.stream_topics

    def _new_consumer(self) -> ConsumerT:
        return _HandledOffsetsConsumer(
            self.transport,
            callback=self.topics.on_message,
            on_partitions_revoked=self._on_partitions_revoked,
            on_partitions_assigned=self._on_partitions_assigned,
            beacon=self.beacon,
            loop=self.loop,
        )
