"""Working a stream in batches: Faust's per-event and per-send costs paid once per batch.

Each batch is split by partition, because Faust writes a table change to the store and
changelog partition of the stream's current event: an agent handles one partition's
events at a time with the current event set to one of them. What an agent sends goes
straight to the producer through the Outbox; the batch is confirmed by the broker
before the next one is taken, and so before its offsets can be committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import cast

import faust
from faust.streams import Stream
from faust.types import EventT, StreamT, TopicT


@dataclass(frozen=True)
class BatchShape:
    max_events: int
    window_seconds: float


@dataclass
class Outbox:
    """Records sent for the current batch, awaited together instead of one by one."""

    app: faust.App
    _pending: list[Awaitable[object]] = field(default_factory=list)

    async def send(self, topic: TopicT, key: bytes, value: bytes) -> None:
        # Faust's producer.send only enqueues (it waits when aiokafka's buffer is full)
        # and returns the delivery future.
        delivery = await self.app.producer.send(
            topic.get_topic_name(), key, value, None, None, None
        )
        self._pending.append(delivery)

    async def confirm(self) -> None:
        """Wait until the broker has every record sent since the last confirm; raise if one failed."""
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)


async def partition_groups(
    stream: StreamT[bytes], shape: BatchShape, outbox: Outbox
) -> AsyncIterator[list[EventT[bytes]]]:
    """The stream's events in batches, one partition's events (in arrival order) at a time."""
    # Agents are handed a StreamT, whose interface lacks take_events; it is a Stream.
    concrete = cast(Stream[bytes], stream)
    async for events in concrete.take_events(shape.max_events, within=shape.window_seconds):
        groups: dict[int, list[EventT[bytes]]] = {}
        for event in events:
            groups.setdefault(event.message.partition, []).append(event)
        for group in groups.values():
            # Tables pick the store and changelog partition from the current event.
            concrete._set_current_event(group[-1])
            yield group
        await outbox.confirm()
