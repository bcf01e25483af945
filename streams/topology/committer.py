"""The topic-partitions a consumer owns, what of them may be committed, and pausing.

For services whose records finish out of order (the dispatcher, the ERP connector): an
offset is committed only up to the first record of its topic-partition not done yet, so a
crash re-reads, never skips. Partitions are aiokafka TopicPartitions throughout, whether
the consumer reads one topic (the connector) or several (the dispatcher).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.errors import KafkaError

from streams.domain.dispatch import OffsetTracker, Partition, Source
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


Assigned = Callable[[set[TopicPartition]], None]
Revoked = Callable[[set[TopicPartition]], Awaitable[None]]


class Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """Hands a rebalance's topic-partitions to the service."""

    def __init__(self, assigned: Assigned, revoked: Revoked) -> None:
        self._assigned = assigned
        self._revoked = revoked

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self._revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self._assigned(set(assigned))


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
    """`consumer` is the group consumer of `topics`, once `subscribe` started it."""

    def __init__(self, topics: Sequence[str], name: str) -> None:
        self.topics = tuple(topics)
        self.name = name
        self.consumer: Any = None
        self.owned: set[TopicPartition] = set()
        self.paused: set[TopicPartition] = set()
        self.joined = False
        """The group gave this consumer its partitions (maybe none) since the last revocation."""
        self._offsets = OffsetTracker()
        self._committed: dict[Partition, int] = {}

    async def subscribe(
        self, settings: Settings, group: str, assigned: Assigned, revoked: Revoked
    ) -> None:
        """Start a consumer in `group` that never commits by itself, subscribed to the topics."""
        session_ms = int(settings.session_timeout_seconds * 1000)
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.require_bootstrap(),
            client_id=group,
            group_id=group,
            # Static membership, like the worker's Faust consumer (None: dynamic).
            group_instance_id=settings.group_instance_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # Range deals each topic's partitions out alike, so a member owns about the
            # same fraction of every topic it reads (the share of the rate limits it takes);
            # round robin stays offered for the members of older releases, which know only
            # it, during a rolling upgrade.
            partition_assignment_strategy=(RangePartitionAssignor, RoundRobinPartitionAssignor),
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=min(3000, session_ms // 3),
            **aiokafka_security(settings),
        )
        await self.consumer.start()

        def on_assigned(partitions: set[TopicPartition]) -> None:
            self.joined = True
            assigned(partitions)

        async def on_revoked(partitions: set[TopicPartition]) -> None:
            self.joined = False
            await revoked(partitions)

        self.consumer.subscribe(list(self.topics), listener=Rebalance(on_assigned, on_revoked))

    def received(self, source: Source) -> None:
        self._offsets.received(source)

    def done(self, source: Source) -> None:
        self._offsets.done(source)

    async def release(self, partitions: set[TopicPartition]) -> None:
        """On revocation, once nothing of `partitions` is in flight: commit, then forget
        them; their next owner reads from the committed offsets."""
        await self.commit()
        self.owned -= partitions
        self._offsets.forget(partitions)
        for tp in partitions:
            self._committed.pop(tp, None)

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
            TopicPartition(*tp): o
            for tp, o in self._offsets.committable().items()
            if tp in self.owned and self._committed.get(tp) != o
        }
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except KafkaError as exc:
            # The group moved on (too slow, or leaving): the next owner re-reads from the
            # last commit, which sinks de-duplicate.
            log.warning("%s: commit of %s failed: %r", self.name, offsets, exc)
            return
        self._committed.update(offsets)

    def pause_only(self, wanted: Iterable[Partition]) -> None:
        """Pause exactly `wanted` of the assigned topic-partitions, resuming the others:
        paused, not left unpolled, so the consumer keeps its place in the group."""
        assigned = set(self.consumer.assignment())
        # aiokafka takes only its own TopicPartitions, not plain (topic, partition) pairs.
        pause = {TopicPartition(*tp) for tp in wanted} & assigned
        self.paused &= assigned
        self.consumer.pause(*(pause - self.paused))
        self.consumer.resume(*(self.paused - pause))
        self.paused = pause
