"""Create and inspect the topics of the catalogue on a cluster (confluent_kafka AdminClient).

`ensure_topics` is idempotent, so workers, tests and the CLI can all call it at start-up.
A topic that exists with another partition count is an error and is left alone: keys
would map to other partitions, so changing it is an operator's decision, never automatic.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exported without __all__
    AdminClient,
    ConfigResource,
    ConfigSource,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

from streams.contracts.topics import COPARTITIONED, SPECS, TopicCatalog

_POLL_INTERVAL = 0.2
_LATEST = OffsetSpec.latest()  # type: ignore[no-untyped-call]  # untyped in confluent-kafka


@dataclass
class TopicReport:
    """Physical topic names by outcome; `errors` maps a topic to what is wrong with it."""

    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    partitions: dict[str, int] = field(default_factory=dict)
    """Every topic's partition count as wanted (the catalogue's, or a changelog's source's)."""

    @property
    def ok(self) -> bool:
        return not self.errors

    def __str__(self) -> str:
        summary = f"{len(self.created)} created, {len(self.existing)} existing"
        if self.errors:
            summary += f", {len(self.errors)} errors: " + "; ".join(self.errors.values())
        return summary


@dataclass(frozen=True)
class TopicState:
    """One catalogue topic as the cluster has it; partitions is None when it does not exist."""

    name: str
    wanted_partitions: int
    partitions: int | None
    wanted_configs: dict[str, str]
    configs: dict[str, str]
    """Configs set on the topic itself (not broker defaults), plus the catalogue's keys."""


def ensure_topics(
    config: dict[str, str],
    catalog: TopicCatalog,
    *,
    changelogs: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> TopicReport:
    """Create the catalogue's missing topics; report existing ones and partition-count conflicts.

    `changelogs` (a changelog's physical name -> the logical topic its table is partitioned
    like) are created too, compacted: Faust would create them itself, but checks their
    partition count before the new topic shows in its metadata and crashes the agent.
    """
    admin = _admin(config)
    wanted = {t.name: (t.partitions, t.configs) for t in catalog.physical_topics(changelogs or {})}
    counts = _partition_counts(admin, timeout)
    report = TopicReport(partitions={name: wanted[name][0] for name in wanted})
    new = [
        NewTopic(
            name,
            num_partitions=partitions,
            replication_factor=catalog.replication_factor,
            config=configs,
        )
        for name, (partitions, configs) in wanted.items()
        if name not in counts
    ]
    created: set[str] = set()
    if new:
        futures = admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout)
        for name, future in futures.items():
            try:
                future.result(timeout=timeout)
            except KafkaException as exc:
                error = exc.args[0]
                # Another process created it in between: judge it like any existing topic.
                if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    report.errors[name] = f"{name}: could not be created: {error.str()}"
            else:
                created.add(name)
        # Creation returns before the partitions serve; callers produce right after.
        counts, unready = _await_topics(
            admin, [n for n in wanted if n not in report.errors], timeout
        )
        for name in unready:
            report.errors[name] = f"{name}: partitions not serving requests after {timeout}s"
    for name, (partitions, _) in wanted.items():
        if name in report.errors:
            continue
        actual = counts[name]
        if actual != partitions:
            report.errors[name] = (
                f"{name} exists with {actual} partitions but the catalogue says {partitions}; "
                "keys would map to other partitions, so it is left alone"
            )
        elif name in created:
            report.created.append(name)
        else:
            report.existing.append(name)
    return report


def topic_states(
    config: dict[str, str], catalog: TopicCatalog, *, timeout: float = 30.0
) -> list[TopicState]:
    """Every catalogue topic with its partition count and configs on the cluster."""
    admin = _admin(config)
    counts = _partition_counts(admin, timeout)
    names = {catalog.physical(s.name): s for s in SPECS}
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in names if name in counts]
    described = admin.describe_configs(resources, request_timeout=timeout) if resources else {}
    configs = {
        resource.name: future.result(timeout=timeout) for resource, future in described.items()
    }
    states = []
    for name, spec in names.items():
        wanted = dict(spec.configs)
        entries = configs.get(name, {})
        states.append(
            TopicState(
                name=name,
                wanted_partitions=catalog.partitions(spec.name),
                partitions=counts.get(name),
                wanted_configs=wanted,
                configs={
                    key: entry.value or ""
                    for key, entry in sorted(entries.items())
                    if key in wanted
                    or ConfigSource(entry.source) is ConfigSource.DYNAMIC_TOPIC_CONFIG
                },
            )
        )
    return states


class CopartitioningError(RuntimeError):
    """Topics read together, or a table's changelog, disagree on their partition counts."""


def check_copartitioning(
    config: dict[str, str],
    catalog: TopicCatalog,
    changelogs: Mapping[str, str],
    *,
    timeout: float = 30.0,
) -> None:
    """Fail, naming every topic and its partition count, unless each co-partitioned group
    exists with one partition count, and each existing changelog matches its group.

    `changelogs` maps a changelog topic's physical name to a logical topic of its group.
    """
    counts = _partition_counts(_admin(config), timeout)
    problems = []
    for group in COPARTITIONED:
        names = [catalog.physical(name) for name in group]
        names += [c for c, source in changelogs.items() if source in group and c in counts]
        missing = [name for name in names if name not in counts]
        if missing:
            problems.append(
                f"missing topics {', '.join(missing)} (create them: erpbridge topics create)"
            )
            continue
        if len({counts[name] for name in names}) > 1:
            listing = ", ".join(f"{name} ({counts[name]} partitions)" for name in names)
            problems.append(
                "topics read together must have the same partition count, so that a key "
                f"lands on the same partition in each: {listing}"
            )
    if problems:
        raise CopartitioningError("; ".join(problems))


def consumer_lag(
    config: dict[str, str], group: str, topics: list[str], *, timeout: float = 10.0
) -> dict[tuple[str, int], int]:
    """Records not yet committed by consumer group `group`, per (topic, partition)."""
    consumer = Consumer({**config, "group.id": group, "enable.auto.commit": False})
    try:
        metadata = consumer.list_topics(timeout=timeout)
        partitions = [
            TopicPartition(topic, p) for topic in topics for p in metadata.topics[topic].partitions
        ]
        lag = {}
        for tp in consumer.committed(partitions, timeout=timeout):
            low, high = consumer.get_watermark_offsets(tp, timeout=timeout)
            position = tp.offset if tp.offset >= 0 else low
            lag[(tp.topic, tp.partition)] = max(high - position, 0)
        return lag
    finally:
        consumer.close()


def _admin(config: dict[str, str]) -> AdminClient:
    settings: dict[str, str | int | float | bool] = {**config}
    return AdminClient(settings)


def _partition_counts(admin: AdminClient, timeout: float) -> dict[str, int]:
    metadata = admin.list_topics(timeout=timeout)
    return {name: len(t.partitions) for name, t in metadata.topics.items() if t.error is None}


def _await_topics(
    admin: AdminClient, wanted: list[str], timeout: float
) -> tuple[dict[str, int], set[str]]:
    """Partition counts, and the wanted topics still not serving, once all serve or at the deadline.

    A new partition is in the metadata (with a leader) a moment before its leader
    answers requests, so readiness is a successful offset query on every partition.
    """
    deadline = time.monotonic() + timeout
    while True:
        metadata = admin.list_topics(timeout=timeout)
        counts = {n: len(t.partitions) for n, t in metadata.topics.items() if t.error is None}
        partitions = [
            TopicPartition(name, p)
            for name in wanted
            if name in counts
            for p in metadata.topics[name].partitions
        ]
        futures = (
            admin.list_offsets({tp: _LATEST for tp in partitions}, request_timeout=timeout)
            if partitions
            else {}
        )
        unready = {name for name in wanted if name not in counts}
        for partition, future in futures.items():
            if future.exception() is not None:
                unready.add(partition.topic)
        if not unready or time.monotonic() >= deadline:
            return counts, unready
        time.sleep(_POLL_INTERVAL)
