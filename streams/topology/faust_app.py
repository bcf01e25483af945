"""The faust.App erpbridge runs: Faust's, guarded against its lost-record race.

After a recovery that reads changelogs (a worker killed with kill -9, an empty data
directory, a partition moving in), faust-streaming 0.15 seeks the stream partitions to
their committed offsets and then clears every stream queue as it resumes the flow: records
fetched in between are dropped while the consumer counts them as read (faust-streaming
issue #596). They are never processed nor acknowledged. Faust then either stops committing
the partition for good — the worker looks healthy and stalls — or, when only the record at
the committed offset is missing, commits past it (its gap check lets one missing offset
through, issue #606) and the record is lost.

Two guards:
- on resume, queued records of stream partitions this worker owns are kept (in order);
  revocation still drops everything queued, so no partition that left is processed;
- the consumer never commits past a missing record at the committed offset (the topics
  agents read have no compaction or transaction gaps, which Faust records apart), so a
  loss that remains shows as lag and is read again after a restart, never skipped.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.exceptions import ConsumerNotStarted
from faust.transport.drivers.aiokafka import Consumer
from faust.types import TP, ConsumerT
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent

from streams.ops.health import PartitionSample


class _StrictConsumer(Consumer):
    def _new_offset(self, tp: TP) -> int | None:
        acked = self._acked[tp]
        committed = self._committed_offset[tp]
        if acked and committed is not None and min(acked) > committed and not self._gap[tp]:
            return None
        new: int | None = super()._new_offset(tp)
        return new


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
    def __init__(self, *args: Any, stream_topics: frozenset[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stream_topics = stream_topics
        self.assigned = False
        """The group gave this worker its partitions (maybe none) since the last revocation."""

    async def _on_partitions_revoked(self, revoked: set[TP]) -> None:
        self.assigned = False
        await super()._on_partitions_revoked(revoked)

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
            if tp.topic not in self._stream_topics:
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

    @cached_property
    def flow_control(self) -> FlowControlEvent:
        return _KeepStreamsOnResume(self)

    def owns_stream_record(self, item: Any, owned: set[TP]) -> bool:
        message = getattr(item, "message", None)
        return message is not None and message.tp in owned and message.topic in self._stream_topics

    def _new_consumer(self) -> ConsumerT:
        return _StrictConsumer(
            self.transport,
            callback=self.topics.on_message,
            on_partitions_revoked=self._on_partitions_revoked,
            on_partitions_assigned=self._on_partitions_assigned,
            beacon=self.beacon,
            loop=self.loop,
        )
