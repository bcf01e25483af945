"""`erpbridge replay` on the real broker: by offsets, time and key, its refusals, and with a
real worker, a replayed range that the topology counts as duplicates, doubling nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from confluent_kafka import Producer

from streams.contracts.codec import Codec
from streams.contracts.jsonlines import format_timestamp, parse_line, to_datum
from streams.contracts.topics import ORDERS, TopicCatalog
from streams.ops.settings import Settings
from streams.sample.generator import DEFAULT_START, Catalogue, generate
from streams.topology.agents.intake import partition_for
from tests.streams.topology.agents.pipeline import (
    TopologyState,
    order_projection,
    produce,
    quiesce,
    read_all,
)
from tests.support import STORE, WorkerProcess, lines_of, run, wait_for

CODEC = Codec(STORE)
HEADERS = [("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]
SHIPPED = "450789469"
"""The fixture's order with three records (placed, fulfilled, refunded)."""


class Stored(NamedTuple):
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]

    @property
    def event_id(self) -> str:
        event_id: str = CODEC.decode(self.value).datum["event_id"]
        return event_id


def produce_orders(settings: Settings, topics: TopicCatalog, times: list[datetime] | None = None) -> None:
    """The commerce.orders fixture (five records of three orders) with headers and, given
    `times`, those timestamps, partitioned by murmur2 like every producer must."""
    physical = topics.physical(ORDERS)
    schema = STORE.current("erpbridge.OrderEvent")
    producer = Producer(settings.producer_config())
    for i, line in enumerate(lines_of(ORDERS)):
        datum = to_datum(schema, parse_line(line))
        stamp = {} if times is None else {"timestamp": int(times[i].timestamp() * 1000)}
        producer.produce(
            physical,
            key=datum["order_id"].encode(),
            value=CODEC.encode("erpbridge.OrderEvent", datum, topic=physical),
            headers=HEADERS,
            **stamp,
        )
    assert producer.flush(30) == 0


def stored(settings: Settings, topics: TopicCatalog) -> list[Stored]:
    return sorted(
        Stored(m.partition(), m.offset(), m.key(), m.value(), list(m.headers() or []))
        for m in read_all(settings, topics.physical(ORDERS))
    )


def appended(before: list[Stored], after: list[Stored]) -> list[Stored]:
    ends = {r.partition: r.offset for r in before}
    return [r for r in after if r.offset > ends.get(r.partition, -1)]


def same_records(copies: list[Stored], originals: list[Stored]) -> bool:
    """Same key, value, headers and partition, whatever the offsets."""
    def strip(records: list[Stored]) -> list[tuple[Any, ...]]:
        return sorted((r.partition, r.key, r.value, r.headers) for r in records)

    return strip(copies) == strip(originals)


def event_ids() -> list[str]:
    return [parse_line(line)["event_id"] for line in lines_of(ORDERS)]


def test_replay_by_offsets_resends_key_value_and_headers_on_the_same_partition(
    settings: Settings, topics: TopicCatalog, cli_env: dict[str, str | None]
) -> None:
    physical = topics.physical(ORDERS)
    produce_orders(settings, topics)
    before = stored(settings, topics)
    partition = partition_for(SHIPPED.encode(), 3)
    in_partition = [r for r in before if r.partition == partition]

    result = run(
        ["replay", ORDERS, "--partition", str(partition), "--from-offset", "1", "--to-offset", "2"],
        cli_env,
    )

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"{physical} partition {partition}: read offsets 1..2, re-sent 2",
        f"re-sent 2 records to {physical}; the topology counts those it applied already as "
        "duplicates",
    ]
    copies = appended(before, stored(settings, topics))
    assert same_records(copies, in_partition[1:3])
    assert all(copy.headers == HEADERS for copy in copies)


def test_replay_by_time_range_resends_what_was_written_within_it(
    settings: Settings, topics: TopicCatalog, cli_env: dict[str, str | None]
) -> None:
    start = datetime.now(UTC) - timedelta(minutes=10)
    produce_orders(settings, topics, [start + timedelta(minutes=i) for i in range(5)])
    before = stored(settings, topics)

    result = run(
        [
            "replay",
            ORDERS,
            "--from",
            format_timestamp(start + timedelta(seconds=90)),
            "--to",
            format_timestamp(start + timedelta(minutes=4)),  # excluded
        ],
        cli_env,
    )

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 4  # one per partition, then the total
    assert lines[-1].startswith(f"re-sent 2 records to {topics.physical(ORDERS)};")
    copies = appended(before, stored(settings, topics))
    # Written at start + 2 and 3 minutes; start + 4 minutes is the excluded end.
    ids = event_ids()
    assert sorted(copy.event_id for copy in copies) == sorted(ids[2:4])
    assert same_records(copies, [r for r in before if r.event_id in ids[2:4]])
