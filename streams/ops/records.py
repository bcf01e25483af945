"""Stored records read by partition and offset, and records sent with the broker's
confirmation: what the operator verbs (replay, resync, dlq replay) do with Kafka.

The reader joins no consumer group and commits nothing, so it never moves a worker's or a
connector's offsets.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar, cast

from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AclOperation, AdminClient  # type: ignore[attr-defined]

from streams.contracts.groups import READER_GROUP_PREFIX, reader_group
from streams.contracts.jsonlines import format_timestamp
from streams.ops.kafka_security import refusal

_LEADER_WAIT_SECONDS = 30.0
_RETRY_SECONDS = 0.1
_POLL_SECONDS = 0.5
_LEADER_MOVING = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE}
_T = TypeVar("_T")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class RecordsError(RuntimeError):
    """What stops an operator verb, naming the topic, partition or offset at fault."""


def missing_topic(topic: str) -> RecordsError:
    return RecordsError(f"topic {topic} does not exist; run `erpbridge topics create`")


def unavailable_topic(
    config: Mapping[str, Any], topic: str, error: KafkaError | None, operation: str
) -> RecordsError:
    """Why the metadata lacks `topic`: not allowed to this principal (`operation`, such as
    "Read", is what it wanted), or missing; with ACLs a listing of every topic leaves out
    those a principal may not describe."""
    if error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
        return RecordsError(refusal(config, operation, f"topic {topic}"))
    return missing_topic(topic)


def refused_read(config: Mapping[str, Any], topic: str, error: KafkaError) -> RecordsError | None:
    """A fetch's authorization failure as what it means (a principal that may write a topic
    may describe it, so it finds the partitions, but not read them); None for other errors."""
    if error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
        return RecordsError(refusal(config, "Read", f"topic {topic}"))
    return None


def _refused_producer(config: Mapping[str, Any], topic: str, error: KafkaError) -> str | None:
    """What a producer's authorization failure means, or None for any other error. The
    broker gives an idempotent producer its id only if it may write some topic."""
    if error.code() in (
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    ):
        return refusal(config, "Write to", f"topic {topic}")
    return None


def retrying(query: Callable[[], _T]) -> _T:
    """Run an offset query, again while the partition's leader is still taking over.

    A partition answers "not leader" for a moment after its topic is created or its
    leader moves; librdkafka does not retry these one-off queries itself.
    """
    deadline = time.monotonic() + _LEADER_WAIT_SECONDS
    while True:
        try:
            return query()
        except KafkaException as exc:
            if exc.args[0].code() not in _LEADER_MOVING or time.monotonic() >= deadline:
                raise
        time.sleep(_RETRY_SECONDS)


@dataclass(frozen=True)
class Record:
    """A stored record as read, headers included."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    @classmethod
    def of(cls, message: Message) -> Record:
        kind, millis = message.timestamp()
        # Consumed messages carry headers as a list of pairs (a dict only when producing).
        headers = cast(list[tuple[str, bytes | None]], message.headers() or [])
        return cls(
            topic=message.topic() or "",
            partition=cast(int, message.partition()),
            offset=cast(int, message.offset()),
            timestamp_ms=None if kind == TIMESTAMP_NOT_AVAILABLE else millis,
            key=message.key(),
            value=message.value(),
            headers=tuple((k, v or b"") for k, v in headers),
        )

    def __str__(self) -> str:
        key = "no key" if self.key is None else f"key {self.key.decode(errors='backslashreplace')}"
        if self.timestamp_ms is None:
            return f"partition {self.partition} offset {self.offset} {key}"
        written = format_timestamp(_EPOCH + timedelta(milliseconds=self.timestamp_ms))
        return f"partition {self.partition} offset {self.offset} {key} written {written}"

    def resend(self, label: str) -> Outgoing:
        """The same key, value and headers again, onto the same topic and partition."""
        return Outgoing(self.topic, self.partition, self.key, self.value, self.headers, label)


class PartitionReader:
    """Reads partitions of a topic between two offsets."""

    def __init__(self, config: dict[str, str], *, timeout: float = 30.0) -> None:
        self._timeout = timeout
        self._config = config
        self._consumer = Consumer(
            {
                **config,
                # Required by the client; nothing joins or commits, as partitions are assigned.
                "group.id": reader_group(READER_GROUP_PREFIX),
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": True,
            }
        )

    def __enter__(self) -> PartitionReader:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._consumer.close()

    def partitions(self, topic: str) -> list[int]:
        """The topic's partition numbers; RecordsError when it does not exist."""
        described = self._consumer.list_topics(topic, timeout=self._timeout).topics.get(topic)
        if described is None or described.error is not None:
            raise unavailable_topic(self._config, topic, described and described.error, "Read")
        return sorted(described.partitions)

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        """The first offset kept and the offset the next record will get."""
        tp = TopicPartition(topic, partition)
        low, high = retrying(
            lambda: self._consumer.get_watermark_offsets(tp, timeout=self._timeout)
        )
        return low, high

    def offset_at(self, topic: str, partition: int, when: datetime) -> int:
        """The first offset with a timestamp at or after `when`; the end when there is none."""
        wanted = [TopicPartition(topic, partition, (when - _EPOCH) // timedelta(milliseconds=1))]
        (found,) = retrying(lambda: self._consumer.offsets_for_times(wanted, timeout=self._timeout))
        offset: int = found.offset
        return offset if offset >= 0 else self.watermarks(topic, partition)[1]

    def read(self, topic: str, partition: int, start: int, end: int) -> Iterator[Record]:
        """The records at offsets start..end-1 that exist (compaction and transaction markers
        leave gaps), in order; RecordsError when the broker sends nothing for the timeout."""
        if start >= end:
            return
        self._consumer.assign([TopicPartition(topic, partition, start)])
        try:
            deadline = time.monotonic() + self._timeout
            while True:
                message = self._consumer.poll(_POLL_SECONDS)
                if message is None:
                    if time.monotonic() >= deadline:
                        raise RecordsError(
                            f"{topic} partition {partition}: no record within {self._timeout:.0f}s "
                            f"while reading offsets {start}..{end - 1}"
                        )
                    continue
                deadline = time.monotonic() + self._timeout
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        return
                    refused = refused_read(self._config, topic, error)
                    if refused is not None:
                        raise refused
                    if error.fatal():
                        raise KafkaException(error)
                    continue  # the client retries by itself
                record = Record.of(message)
                if record.offset >= end:
                    return
                yield record
                if record.offset == end - 1:
                    return
        finally:
            self._consumer.unassign()

    def table(self, topic: str) -> dict[bytes, bytes]:
        """The latest value of each key in every partition, deleted keys left out: a
        compacted topic's state."""
        found: dict[bytes, bytes] = {}
        for partition in self.partitions(topic):
            for record in self.read(topic, partition, *self.watermarks(topic, partition)):
                if record.key is None:
                    continue
                if record.value is None:
                    found.pop(record.key, None)
                else:
                    found[record.key] = record.value
        return found

    def latest(self, topic: str, partition: int, keys: Iterable[bytes]) -> dict[bytes, Record]:
        """The last record of each of `keys` in the partition (a deletion's value is None);
        keys with none are left out. On a compacted topic, that record is the key's state."""
        wanted = set(keys)
        low, high = self.watermarks(topic, partition)
        return {
            record.key: record
            for record in self.read(topic, partition, low, high)
            if record.key in wanted
        }


@dataclass(frozen=True)
class Outgoing:
    """A record to send; `label` names it in a delivery failure."""

    topic: str
    partition: int | None
    """None: the producer's partitioner (murmur2 on the key) chooses."""
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    label: str


class Sender:
    """Sends records and collects the ones the broker did not confirm."""

    def __init__(self, config: dict[str, str | bool], *, timeout: float = 60.0) -> None:
        self._timeout = timeout
        self._config = config
        self._bootstrap = config["bootstrap.servers"]
        self._undelivered: list[tuple[str, str, KafkaError]] = []
        self._producer = Producer(
            {
                **config,
                # librdkafka then fails undelivered records itself, each with a delivery report.
                "message.timeout.ms": int(timeout * 1000),
            }
        )
        self._topics: set[str] = set()
        self.failures: list[str] = []
        self.sent = 0

    def require_topic(self, topic: str) -> None:
        """RecordsError unless the topic exists and this principal may write to it. Asked
        first: a producer refused every topic fails for good (the broker gives an idempotent
        producer its id only if it may write some topic), and librdkafka then fails records
        in ways no message explains."""
        try:
            metadata = self._producer.list_topics(timeout=self._timeout)
            if topic not in metadata.topics or metadata.topics[topic].error is not None:
                # Asked by name, the broker says whether it is missing or not allowed.
                alone = self._producer.list_topics(topic, timeout=self._timeout).topics.get(topic)
                raise unavailable_topic(self._config, topic, alone and alone.error, "Write to")
            admin = AdminClient({**self._config})
            (described,) = admin.describe_topics(
                TopicCollection([topic]),
                include_authorized_operations=True,
                request_timeout=self._timeout,
            ).values()
            # None: a broker that does not say (before Kafka 2.3); the records will tell.
            allowed = described.result().authorized_operations
        except KafkaException as exc:
            raise RecordsError(f"cannot reach Kafka at {self._bootstrap}: {exc}") from exc
        if allowed is not None and not {AclOperation.WRITE, AclOperation.ALL} & set(allowed):
            raise RecordsError(refusal(self._config, "Write to", f"topic {topic}"))

    def send(self, record: Outgoing) -> None:
        """Queue a record; RecordsError when the broker refuses this principal the topic."""

        def report(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                self._undelivered.append((record.label, record.topic, error))

        extra: dict[str, Any] = {} if record.partition is None else {"partition": record.partition}
        self._topics.add(record.topic)
        while True:
            try:
                self._producer.produce(
                    record.topic,
                    key=record.key,
                    value=record.value,
                    headers=list(record.headers),
                    on_delivery=report,
                    **extra,
                )
                break
            except BufferError:  # local queue full: let deliveries drain it
                self._producer.poll(0.5)
            except KafkaException as exc:
                raise self._refused(record.topic, exc.args[0]) from None
        self._producer.poll(0)
        self.sent += 1

    def _refused(self, topic: str, error: KafkaError) -> Exception:
        cause = error
        if error.code() == KafkaError._FATAL:
            # produce() names a fatal error only as such; polling raises its cause.
            try:
                self._producer.poll(0)
            except KafkaException as exc:
                cause = exc.args[0]
        reason = _refused_producer(self._config, topic, cause)
        return KafkaException(cause) if reason is None else RecordsError(reason)

    def close(self) -> None:
        """Flush and stop the producer: it no longer reconnects to a broker that went away."""
        self._producer.close()

    def finish(self) -> list[str]:
        """Wait for every confirmation; the failures, one per record not confirmed.
        RecordsError when the broker refused this principal a producer id."""
        try:
            remaining = self._producer.flush(self._timeout + 10)
        except KafkaException as exc:
            raise self._refused(", ".join(sorted(self._topics)), exc.args[0]) from None
        for label, topic, error in self._undelivered:
            reason = _refused_producer(self._config, topic, error) or error.str()
            self.failures.append(f"{label}: not delivered: {reason}")
        self._undelivered.clear()
        if remaining:
            self.failures.append(
                f"{remaining} records still unconfirmed after {self._timeout + 10:.0f}s"
            )
        return self.failures
