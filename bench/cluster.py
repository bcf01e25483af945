"""Kafka plumbing of the benchmark: preloading topics, group progress, clean-up."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator

from confluent_kafka import (
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exported without __all__
    AdminClient,
    NewTopic,
    OffsetSpec,
)

from bench.workload import Workload
from streams.contracts.topics import ERP_COMMANDS, ERP_PENDING, INPUTS, SPECS, TopicCatalog
from streams.ops.records import PartitionReader, Record
from streams.ops.settings import Settings

_REQUEST_TIMEOUT = 15.0
_DRAIN_INTERVAL = 0.5


class BenchError(RuntimeError):
    """A step of the benchmark could not be completed; the message says which and why."""


_admins: dict[str, AdminClient] = {}


def admin(settings: Settings) -> AdminClient:
    """One client per cluster for the whole run: each new one costs a connection, and a
    dropped one logs about its unserved background events."""
    bootstrap = settings.require_bootstrap()
    if bootstrap not in _admins:
        config: dict[str, str | int | float | bool] = {**settings.confluent_config()}
        _admins[bootstrap] = AdminClient(config)
    return _admins[bootstrap]


class _Deliveries:
    def __init__(self) -> None:
        self.delivered = 0
        self.errors: list[str] = []

    def report(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            self.delivered += 1
        elif len(self.errors) < 5:
            self.errors.append(f"{message.topic()}: {error.str()}")
        else:
            self.errors.append("")


def preload(
    settings: Settings,
    workload: Workload,
    *,
    start: int = 0,
    stop: int | None = None,
    timeout: float = 300.0,
) -> float:
    """Produce events `start` to `stop` (default: all) of `workload` to the input topics of
    `settings`, as fast as the broker takes them; return the seconds it took. Raises
    BenchError unless all are confirmed."""
    catalog = TopicCatalog.from_settings(settings)
    physical = [catalog.physical(name) for name in workload.topics]
    producer = Producer(
        {
            **settings.producer_config(),
            "linger.ms": 20,
            "message.timeout.ms": int(timeout * 1000),
            # Errors only: the first producer on a new broker warns while the transaction
            # coordinator loads, and retries; failures come back as delivery reports.
            "log_level": 3,
        }
    )
    deliveries = _Deliveries()
    started = time.monotonic()
    stop = len(workload) if stop is None else stop
    for index in range(start, stop):
        topic = physical[workload.topic_of[index]]
        key, value = workload.keys[index], workload.values[index]
        while True:
            try:
                producer.produce(topic, key=key, value=value, on_delivery=deliveries.report)
                break
            except BufferError:  # local queue full: let deliveries drain it
                producer.poll(0.1)
        if index % 1000 == 0:
            producer.poll(0)
    unconfirmed = producer.flush(timeout)
    if unconfirmed or deliveries.errors:
        raise BenchError(
            f"preloading {stop - start:,} events: {len(deliveries.errors)} failed, "
            f"{unconfirmed} unconfirmed: {'; '.join(e for e in deliveries.errors if e)}"
        )
    return time.monotonic() - started


def create_topic(settings: Settings, name: str, partitions: int) -> None:
    client = admin(settings)
    futures = client.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=settings.replication_factor)],
        operation_timeout=_REQUEST_TIMEOUT,
        request_timeout=_REQUEST_TIMEOUT,
    )
    for future in futures.values():
        try:
            future.result(timeout=_REQUEST_TIMEOUT)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise BenchError(f"cannot create topic {name}: {exc}") from exc


def topics_with_prefix(settings: Settings) -> list[str]:
    metadata = admin(settings).list_topics(timeout=_REQUEST_TIMEOUT)
    return [name for name in metadata.topics if name.startswith(settings.topic_prefix)]


def end_offsets(settings: Settings, topics: Iterable[str]) -> dict[TopicPartition, int]:
    """The log-end offset of every partition of the `topics` that exist."""
    client = admin(settings)
    wanted = set(topics)
    metadata = client.list_topics(timeout=_REQUEST_TIMEOUT)
    partitions = [
        TopicPartition(name, p)
        for name, topic in metadata.topics.items()
        if name in wanted and topic.error is None
        for p in topic.partitions
    ]
    if not partitions:
        return {}
    latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]  # untyped in confluent-kafka
    futures = client.list_offsets(
        {tp: latest for tp in partitions}, request_timeout=_REQUEST_TIMEOUT
    )
    return {tp: future.result(timeout=_REQUEST_TIMEOUT).offset for tp, future in futures.items()}


def committed_offsets(settings: Settings, group: str) -> dict[TopicPartition, int]:
    """Every offset `group` has committed (none for a group that never committed)."""
    client = admin(settings)
    futures = client.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group)], request_timeout=_REQUEST_TIMEOUT
    )
    result = futures[group].result(timeout=_REQUEST_TIMEOUT)
    return {
        TopicPartition(tp.topic, tp.partition): tp.offset
        for tp in result.topic_partitions or ()
        if tp.offset >= 0
    }


def group_assigned(settings: Settings, group: str) -> bool:
    """True once `group` is stable with at least one member that has partitions."""
    client = admin(settings)
    futures = client.describe_consumer_groups([group], request_timeout=_REQUEST_TIMEOUT)
    try:
        description = futures[group].result(timeout=_REQUEST_TIMEOUT)
    except KafkaException:  # e.g. the group coordinator still loading on a new broker
        return False
    if description.state != ConsumerGroupState.STABLE:
        return False
    return any(
        member.assignment is not None and member.assignment.topic_partitions
        for member in description.members
    )


def changelog_topics(settings: Settings) -> list[str]:
    """The app's table changelogs, `<app id>-<table>-changelog`, whatever tables it has."""
    return sorted(
        name
        for name in topics_with_prefix(settings)
        if name.startswith(f"{settings.app_id}-") and name.endswith("-changelog")
    )


def topic_reader(settings: Settings) -> PartitionReader:
    """A reader for whole topics, partition after partition."""
    # A short fetch wait: with the default 500 ms, each newly assigned partition waited out
    # the previous partition's long poll first (measured: 0.45 s per partition, 0.02 s so).
    return PartitionReader({**settings.confluent_config(), "fetch.wait.max.ms": "10"})


def read_topic(reader: PartitionReader, topic: str) -> Iterator[Record]:
    """Every record of `topic` as it is now, partition by partition."""
    for partition in reader.partitions(topic):
        low, high = reader.watermarks(topic, partition)
        yield from reader.read(topic, partition, low, high)


def changelog_size(settings: Settings) -> tuple[int, int]:
    """Records (the sum of the end offsets) and bytes (keys and values, as read) of the app's
    table changelogs: what a worker on an empty data directory reads to restore its tables."""
    topics = changelog_topics(settings)
    records = sum(end_offsets(settings, topics).values())
    size = 0
    with topic_reader(settings) as reader:
        for topic in topics:
            size += sum(len(r.key or b"") + len(r.value or b"") for r in read_topic(reader, topic))
    return records, size


def delete_run(settings: Settings, groups: Iterable[str]) -> None:
    """Delete the run's topics (every topic named with its prefix) and consumer groups.

    Best effort: a benchmark on a shared cluster should not leave its data behind, but a
    failure here must not hide the figures.
    """
    client = admin(settings)
    prefix = settings.topic_prefix
    try:
        groups = list(groups)
        if groups:
            for future in client.delete_consumer_groups(
                groups, request_timeout=_REQUEST_TIMEOUT
            ).values():
                # Never created, or still shutting down: the topics matter more.
                with contextlib.suppress(KafkaException):
                    future.result(timeout=_REQUEST_TIMEOUT)
        names = [
            n for n in client.list_topics(timeout=_REQUEST_TIMEOUT).topics if n.startswith(prefix)
        ]
        if names:
            for future in client.delete_topics(
                names, operation_timeout=_REQUEST_TIMEOUT, request_timeout=_REQUEST_TIMEOUT
            ).values():
                future.result(timeout=_REQUEST_TIMEOUT)
    except Exception as exc:  # reported, never fatal
        print(f"note: clean-up of {prefix}* incomplete: {exc}")


def forget_admins() -> None:
    """Drop the cached admin clients, before their broker stops (they would log its loss)."""
    _admins.clear()


def await_drained(
    settings: Settings,
    catalog: TopicCatalog,
    *,
    stall_timeout: float = 60.0,
    on_write: Callable[[float], None] | None = None,
) -> float | None:
    """When the topology was done with the preloaded events: the last time a topic it writes
    (internal, changelog, output, dead-letter) grew, as polled, once every partition of the
    input and internal topics is committed to its end. None if nothing progresses for
    `stall_timeout` seconds first. `on_write` is called with the time of every poll that saw
    a write, so the caller can take its measures at the moment the result will name.

    The last write dates the end of the work to within a poll; the commits only confirm it,
    as they lag by up to one commit interval.
    """
    inputs = {catalog.physical(name) for name in INPUTS}
    # The dispatch stage (the pending topic and the journal, read by a group of its own, to
    # erp.commands) runs at the ERP's rate limit by design: it is not the topology's
    # throughput. The journal is an output, and the agents' group reads no output topic.
    wanted = {catalog.physical(s.name) for s in SPECS if s.role.value in ("input", "internal")} - {
        catalog.physical(ERP_PENDING)
    }
    not_topology = inputs | {catalog.physical(ERP_COMMANDS)}
    written: int | None = None
    last_write = last_progress = time.monotonic()
    progress: tuple[int, int] | None = None
    while True:
        try:
            committed = committed_offsets(settings, settings.app_id)
            ends = end_offsets(settings, topics_with_prefix(settings))
        except KafkaException:  # a coordinator moving or loading: ask again
            if time.monotonic() - last_progress > stall_timeout:
                return None
            time.sleep(_DRAIN_INTERVAL)
            continue
        now = time.monotonic()
        total = sum(end for tp, end in ends.items() if tp.topic not in not_topology)
        if total != written:
            written, last_write = total, now
            if on_write is not None:
                on_write(now)
        if (total, sum(committed.values())) != progress:
            progress, last_progress = (total, sum(committed.values())), now
        # Whatever else the group reads (a future internal topic), but not table changelogs.
        checked = wanted | {tp.topic for tp in committed if not tp.topic.endswith("-changelog")}
        if all(
            end == 0 or committed.get(tp, 0) >= end
            for tp, end in ends.items()
            if tp.topic in checked
        ):
            return last_write
        if now - last_progress > stall_timeout:
            return None
        time.sleep(_DRAIN_INTERVAL)
