"""The event loop's librdkafka producer on the real broker: a batch's records in order, confirmed together,
the changelog offsets it reports, a full queue waited out, a delivery error raised."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiokafka.partitioner import murmur2
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from streams.ops.async_producer import AsyncProducer, ProducerRecord
from streams.ops.settings import Settings
from tests.streams.topology.agents.pipeline import read_all
from tests.support import worker_settings

T = TypeVar("T")


@pytest.fixture
def settings(kafka_broker: Any, topic_prefix: str, tmp_path: Path) -> Settings:
    return worker_settings(kafka_broker.bootstrap_servers, topic_prefix, tmp_path)


def create(settings: Settings, topic: str, partitions: int) -> str:
    admin = AdminClient(settings.confluent_config())
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result(timeout=30)
    return topic


def with_producer(
    settings: Settings, use: Callable[[AsyncProducer], Awaitable[T]], **config: Any
) -> T:
    async def run() -> T:
        producer = AsyncProducer({**settings.producer_config(), **config})
        try:
            return await use(producer)
        finally:
            assert producer.close(30) == 0

    return asyncio.run(run())


def test_a_batch_lands_in_order_and_reports_its_tracked_offsets(settings: Settings) -> None:
    out = create(settings, f"{settings.topic_prefix}out", 3)
    log = create(settings, f"{settings.topic_prefix}changelog", 3)
    records: list[ProducerRecord] = []
    for i in range(300):
        records.append(
            (out, f"k{i % 7}".encode(), f"v{i}".encode(), None, [("n", b"%d" % i)], False)
        )
        records.append((log, f"s{i}".encode(), b"state", i % 3, None, True))
    records.append((log, b"s0", None, 0, None, True))  # a tombstone

    offsets = with_producer(settings, lambda p: p.deliver(records))

    # 100 states per changelog partition (offsets 0-99), and the tombstone after partition 0's.
    assert offsets == {(log, 0): 100, (log, 1): 99, (log, 2): 99}
    written = read_all(settings, out)
    assert len(written) == 300
    for partition in range(3):
        values = [int(m.value()[1:]) for m in written if m.partition() == partition]
        assert values == sorted(values), "a partition's records out of their batch's order"
    by_key: dict[bytes, set[int]] = {}
    for message in written:
        by_key.setdefault(message.key(), set()).add(message.partition())
        assert message.headers() == [("n", message.value()[1:])]
    # murmur2 like Faust and the Java clients: every key on one partition, the one they pick.
    assert all(len(partitions) == 1 for partitions in by_key.values())
    assert by_key[b"k0"] == {murmur2_partition(b"k0", 3)}
    tombstone = [m for m in read_all(settings, log) if m.key() == b"s0"]
    assert [m.value() for m in tombstone] == [b"state", None]


def murmur2_partition(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def test_a_batch_larger_than_the_queue_waits_for_room_and_loses_nothing(settings: Settings) -> None:
    out = create(settings, f"{settings.topic_prefix}out", 1)
    records: list[ProducerRecord] = [(out, None, b"%d" % i, 0, None, True) for i in range(2_000)]

    offsets = with_producer(
        settings, lambda p: p.deliver(records), **{"queue.buffering.max.messages": 50}
    )

    assert offsets == {(out, 0): 1_999}
    assert [int(m.value()) for m in read_all(settings, out)] == list(range(2_000))


def test_an_empty_batch_is_confirmed_at_once(settings: Settings) -> None:
    assert with_producer(settings, lambda p: p.deliver([])) == {}


def test_a_record_the_broker_refuses_fails_the_batch(settings: Settings) -> None:
    out = create(settings, f"{settings.topic_prefix}out", 1)
    records: list[ProducerRecord] = [
        (out, None, b"fine", 0, None, False),
        (out, None, b"x" * 2_000_000, 0, None, False),  # over the broker's 1 MB limit
    ]

    with pytest.raises(KafkaException, match="MSG_SIZE_TOO_LARGE"):
        with_producer(settings, lambda p: p.deliver(records), **{"message.max.bytes": 3_000_000})
