"""The partitions of one topic a consumer owns, what of them may be committed, and pausing.

For services whose records finish out of order (the dispatcher, the ERP connector): an
offset is committed only up to the first record of its partition not done yet, so a crash
re-reads, never skips.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError

from streams.domain.dispatch import OffsetTracker, Source
from streams.ops.kafka_security import aiokafka_security
from streams.ops.settings import Settings

log = logging.getLogger(__name__)

STOP_STEP_SECONDS = 5.0
"""How long each step of a client's shutdown may take (last commit, consumer, producer):
with the broker gone aiokafka would wait for it without end, and Kubernetes kills a pod
that overstays its grace period (45 s for the connector, 60 s for the worker)."""


async def stop_step(step: Awaitable[Any], what: str, timeout: float = STOP_STEP_SECONDS) -> None:
    """Await one shutdown step, giving up after `timeout` so the next step still runs.

    What a step leaves undone is safe to lose: offsets not committed are read again by the
    partition's next owner, and everything downstream de-duplicates.
    """
    try:
        await asyncio.wait_for(step, timeout)
    except TimeoutError:
        log.warning("%s did not finish within %g s (broker unreachable?); going on", what, timeout)
    except KafkaError as exc:
        log.warning("%s failed: %r; going on", what, exc)
    except asyncio.CancelledError:
        # aiokafka's fetcher, closing, awaits the fetch tasks it has just cancelled: one in
        # its retry back-off (the broker is gone) re-raises that cancellation here. Only a
        # cancellation of this task itself goes on up.
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        log.warning("%s was cut short inside aiokafka (broker unreachable?); going on", what)


class Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """Hands a rebalance's partition numbers to the service."""

    def __init__(
        self,
        assigned: Callable[[set[int]], None],
        revoked: Callable[[set[int]], Awaitable[None]],
    ) -> None:
        self._assigned = assigned
        self._revoked = revoked

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self._revoked({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self._assigned({tp.partition for tp in assigned})


def idempotent_producer(settings: Settings, client_id: str) -> Any:
    """An aiokafka producer that writes each record once, acknowledged by all replicas."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.require_bootstrap(),
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        **aiokafka_security(settings),
    )


class Committer:
    """`consumer` is the group consumer of `topic`, once `subscribe` started it."""

    def __init__(self, topic: str, name: str) -> None:
        self.topic = topic
        self.name = name
        self.consumer: Any = None
        self.owned: set[int] = set()
        self.paused: set[int] = set()
        self.joined = False
        """The group gave this consumer its partitions (maybe none) since the last revocation."""
        self._offsets = OffsetTracker()
        self._committed: dict[int, int] = {}

    async def subscribe(
        self,
        settings: Settings,
        group: str,
        assigned: Callable[[set[int]], None],
        revoked: Callable[[set[int]], Awaitable[None]],
    ) -> None:
        """Start a consumer in `group` that never commits by itself, subscribed to the topic."""
        session_ms = int(settings.session_timeout_seconds * 1000)
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.require_bootstrap(),
            client_id=group,
            group_id=group,
            # Static membership, like the worker's Faust consumer (None: dynamic).
            group_instance_id=settings.group_instance_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=min(3000, session_ms // 3),
            **aiokafka_security(settings),
        )
        await self.consumer.start()

        def on_assigned(partitions: set[int]) -> None:
            self.joined = True
            assigned(partitions)

        async def on_revoked(partitions: set[int]) -> None:
            self.joined = False
            await revoked(partitions)

        self.consumer.subscribe([self.topic], listener=Rebalance(on_assigned, on_revoked))

    def received(self, source: Source) -> None:
        self._offsets.received(source)

    def done(self, source: Source) -> None:
        self._offsets.done(source)

    async def release(self, partitions: set[int]) -> None:
        """On revocation, once nothing of `partitions` is in flight: commit, then forget
        them; their next owner reads from the committed offsets."""
        await self.commit()
        self.owned -= partitions
        self._offsets.forget(partitions)
        for partition in partitions:
            self._committed.pop(partition, None)

    async def close(self) -> None:
        """The last commit, then the consumer stopped, each bounded (see `stop_step`)."""
        await stop_step(self.commit(), f"{self.name}: the last commit")
        await stop_step(self.consumer.stop(), f"{self.name}: stopping the consumer")

    async def commit_every(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.commit()

    async def commit(self) -> None:
        offsets = {
            p: o
            for p, o in self._offsets.committable().items()
            if p in self.owned and self._committed.get(p) != o
        }
        if not offsets:
            return
        try:
            await self.consumer.commit(self.tps_at(offsets))
        except KafkaError as exc:
            # The group moved on (too slow, or leaving): the next owner re-reads from the
            # last commit, which sinks de-duplicate.
            log.warning("%s: commit of %s failed: %r", self.name, offsets, exc)
            return
        self._committed.update(offsets)

    def pause_only(self, wanted: set[int]) -> None:
        """Pause exactly `wanted` of the assigned partitions, resuming the others: paused,
        not left unpolled, so the consumer keeps its place in the group."""
        assigned = {tp.partition for tp in self.consumer.assignment()}
        wanted &= assigned
        self.paused &= assigned
        self.consumer.pause(*self.tps(wanted - self.paused))
        self.consumer.resume(*self.tps(self.paused - wanted))
        self.paused = wanted

    def tps(self, partitions: Iterable[int]) -> list[TopicPartition]:
        return [TopicPartition(self.topic, p) for p in partitions]

    def tps_at(self, offsets: dict[int, int]) -> dict[TopicPartition, int]:
        return {TopicPartition(self.topic, p): o for p, o in offsets.items()}
