"""The faust.App erpbridge runs: Faust's, guarded against its lost-record race.

After a recovery that reads changelogs (a worker killed with kill -9, an empty data
directory, a partition moving in), faust-streaming 0.15 may drop records it has fetched
for a stream partition: they are cleared from the stream queues while the consumer counts
them as read (faust-streaming issue #596). They are never processed nor acknowledged.
Faust then either stops committing the partition for good — the worker looks healthy and
stalls — or, when only the record at the committed offset is missing, commits past it
(its gap check lets one missing offset through, issue #606) and the record is lost.

Two guards, both only ever moving backwards:
- the consumer never commits past a missing record at the committed offset (the topics
  agents read have no compaction or transaction gaps, which Faust records apart);
- a watchdog seeks a partition back to its committed offset when it has lag and, at two
  checks in a row with the same committed offset, the record at that offset was neither
  queued for a stream nor being processed.
Records processed since come again; every rule is idempotent, so they count as duplicates.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from faust.transport.drivers.aiokafka import Consumer
from faust.types import TP, ConsumerT
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent

log = logging.getLogger(__name__)

WATCHDOG_INTERVAL_S = 5.0


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
        self._suspects: dict[TP, int | None] = {}
        self.timer(WATCHDOG_INTERVAL_S, name="stream-watchdog")(self._watch)

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

    async def _watch(self) -> None:
        consumer: Any = self.consumer
        if self.rebalancing or not consumer.flow_active:
            self._suspects.clear()
            return
        suspects: dict[TP, int | None] = {}
        for tp in self.assignor.assigned_actives():
            if tp.topic in self._stream_topics and self._stalled(tp):
                suspects[tp] = self._committed(tp)
        for tp, committed in suspects.items():
            if tp in self._suspects and self._suspects[tp] == committed:
                await self._reread(tp, committed)
        self._suspects = {tp: c for tp, c in suspects.items() if tp not in self._suspects}

    def _committed(self, tp: TP) -> int | None:
        consumer: Any = self.consumer
        committed: int | None = consumer._committed_offset.get(tp)
        return committed

    def _stalled(self, tp: TP) -> bool:
        """Lag on `tp` while the record at its committed offset is nowhere in the worker."""
        consumer: Any = self.consumer
        committed = self._committed(tp) or 0
        highwater = consumer.highwater(tp)
        if highwater is None or highwater <= committed:
            return False
        return not self._in_flight(tp, committed)

    def _in_flight(self, tp: TP, offset: int) -> bool:
        """A record of `tp` at or before `offset` is queued for a stream or being processed."""
        consumer: Any = self.consumer
        if any(m.tp == tp and m.offset <= offset for m in consumer._unacked_messages):
            return True
        conductor: Any = self.topics
        return any(
            event.message.tp == tp and event.message.offset <= offset
            for channel in conductor._topics
            for event in list(channel.queue._queue)
        )

    async def _reread(self, tp: TP, committed: int | None) -> None:
        offset = committed if committed is not None else 0
        log.warning(
            "%s[%d] has lag and made no progress from offset %d: re-reading from there "
            "(faust-streaming #596)",
            tp.topic,
            tp.partition,
            offset,
        )
        await self.consumer.seek(tp, offset)
