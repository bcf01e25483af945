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


def produce_orders(
    settings: Settings, topics: TopicCatalog, times: list[datetime] | None = None
) -> None:
    """The Shopify story of the commerce.orders fixture (five records of three orders) with
    headers and, given `times`, those timestamps, partitioned by murmur2 like every producer
    must."""
    physical = topics.physical(ORDERS)
    schema = STORE.current("erpbridge.OrderEvent")
    producer = Producer(settings.producer_config())
    for i, line in enumerate(story()):
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


def story() -> list[str]:
    """The fixture's Shopify records: placements, a fulfilment, a refund, a cancellation."""
    return [line for line in lines_of(ORDERS) if parse_line(line)["source"] == "shopify"]


def event_ids() -> list[str]:
    return [parse_line(line)["event_id"] for line in story()]


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


def test_replay_by_key_lists_on_a_dry_run_then_resends_only_that_keys_records(
    settings: Settings, topics: TopicCatalog, cli_env: dict[str, str | None]
) -> None:
    physical = topics.physical(ORDERS)
    produce_orders(settings, topics)
    before = stored(settings, topics)
    shipped = [r for r in before if r.key == SHIPPED.encode()]
    partition = shipped[0].partition

    listed = run(["replay", ORDERS, "--key", SHIPPED, "--dry-run"], cli_env)

    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert [line.split(" written ")[0] for line in lines[:3]] == [
        f"would re-send partition {partition} offset {r.offset} key {SHIPPED}" for r in shipped
    ]
    held = len([r for r in before if r.partition == partition])
    assert lines[3:] == [
        f"{physical} partition {partition}: read offsets 0..{held - 1}, would re-send 3",
        f"dry run: 3 records would be re-sent to {physical}; nothing sent",
    ]
    assert stored(settings, topics) == before

    result = run(["replay", ORDERS, "--key", SHIPPED], cli_env)

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1].startswith(f"re-sent 3 records to {physical};")
    assert same_records(appended(before, stored(settings, topics)), shipped)


def test_replay_refuses_a_key_partition_or_offset_that_does_not_exist_sending_nothing(
    settings: Settings, topics: TopicCatalog, cli_env: dict[str, str | None]
) -> None:
    physical = topics.physical(ORDERS)
    produce_orders(settings, topics)
    before = stored(settings, topics)
    partition = partition_for(SHIPPED.encode(), 3)
    held = len([r for r in before if r.partition == partition])
    refusals = [
        (
            ["--key", SHIPPED, "--key", "no-such-order"],
            1,
            f"Error: {physical}: no record with key no-such-order in the range read (partition",
        ),
        (
            ["--partition", "3"],
            1,
            f"Error: {physical} has partitions 0..2; partition 3 does not exist",
        ),
        (
            ["--partition", str(partition), "--from-offset", str(held)],
            1,
            f"Error: {physical} partition {partition} holds offsets 0..{held - 1}; "
            f"offset {held} does not exist",
        ),
        (
            ["--partition", str((partition + 1) % 3), "--key", SHIPPED],
            2,
            f"Error: key {SHIPPED} belongs on partition {partition} of {physical} (murmur2), "
            f"not {(partition + 1) % 3}",
        ),
        (["--to-offset", "1"], 2, "Error: --from-offset and --to-offset need --partition"),
        (
            ["--from", "2026-11-26T10:00:00Z", "--partition", "0", "--from-offset", "0"],
            2,
            "Error: give a time range (--from, --to) or offsets, not both",
        ),
    ]
    for options, exit_code, message in refusals:
        result = run(["replay", ORDERS, *options], cli_env)
        assert (result.exit_code, result.stdout) == (exit_code, ""), (options, result.output)
        assert message in result.stderr, (options, result.stderr)
    assert stored(settings, topics) == before


def test_replay_refuses_a_topic_that_is_not_an_input_or_does_not_exist(
    env: dict[str, str | None], topic_prefix: str
) -> None:
    not_input = run(["replay", "erp.commands"], env)
    assert not_input.exit_code == 2
    assert (
        "erp.commands is not an input topic; it takes commerce.orders, commerce.inventory, "
        "commerce.payments" in not_input.stderr
    )
    missing = run(["replay", ORDERS], env)  # no topic was created under this prefix
    assert missing.exit_code == 1
    assert missing.stderr == (
        f"Error: topic {topic_prefix}{ORDERS} does not exist; run `erpbridge topics create`\n"
    )


def test_replay_refuses_records_older_than_the_deduplication_window(
    settings: Settings, topics: TopicCatalog, cli_env: dict[str, str | None]
) -> None:
    """The topology forgets event ids after ERPBRIDGE_DEDUP_TTL_HOURS: older records could
    apply twice, so replay keeps to what it still recognises."""
    now = datetime.now(UTC)
    old, recent = now - timedelta(hours=2), now - timedelta(minutes=5)
    produce_orders(settings, topics, [old, old, recent, recent, recent])
    before = stored(settings, topics)
    env = {**cli_env, "ERPBRIDGE_DEDUP_TTL_HOURS": "1"}

    refused = run(["replay", ORDERS], env)

    assert refused.exit_code == 1
    olds = sorted({r.partition for r in before if r.event_id in event_ids()[:2]})
    for partition in olds:
        assert f"partition {partition} offsets 0.." in refused.stderr
    assert "ERPBRIDGE_DEDUP_TTL_HOURS (1) ago: the topology may have forgotten their event ids" in (
        refused.stderr
    )
    assert stored(settings, topics) == before

    within = run(["replay", ORDERS, "--from", format_timestamp(now - timedelta(minutes=30))], env)

    assert within.exit_code == 0, within.output
    assert within.stdout.splitlines()[-1] == (
        f"re-sent 3 records to {topics.physical(ORDERS)}; the topology counts those it applied "
        "already as duplicates"
    )


def test_a_replayed_range_doubles_none_of_the_topologys_outputs(
    settings: Settings,
    topics: TopicCatalog,
    cli_env: dict[str, str | None],
    start_worker: Callable[[], WorkerProcess],
) -> None:
    """Every replayed event is counted as a duplicate: no new ERP command id, no new journal
    entry id, the orders' state unchanged; what is re-sent is identical to the first copy."""
    events = list(generate(7, 12, Catalogue.default(), DEFAULT_START))
    since = datetime.now(UTC) - timedelta(seconds=1)
    produce(settings, topics, Codec(STORE), events)
    worker = start_worker()
    quiesce(settings, topics)
    first = TopologyState.read(settings, topics, CODEC)
    assert first.commands and first.journal
    counted = worker.accounting()["topics"][ORDERS]
    replayed = len([e for e in events if e.topic == ORDERS])

    result = run(["replay", ORDERS, "--from", format_timestamp(since)], cli_env)

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1].startswith(f"re-sent {replayed} records")
    wait_for(
        lambda: worker.accounting()["topics"][ORDERS]["consumed"] == counted["consumed"] + replayed,
        timeout=60,
        what=f"the worker to consume the {replayed} replayed events",
    )
    quiesce(settings, topics)
    now = worker.accounting()["topics"][ORDERS]
    assert now["duplicate"] - counted["duplicate"] == replayed
    assert (now["applied"], now["waiting"], now["dead_lettered"]) == (
        counted["applied"],
        counted["waiting"],
        counted["dead_lettered"],
    )
    again = TopologyState.read(settings, topics, CODEC)
    assert again.commands.keys() == first.commands.keys()
    assert again.journal.keys() == first.journal.keys()
    assert any(len(again.commands[c]) > len(first.commands[c]) for c in first.commands)
    for copies in again.commands.values():
        assert all(copy == copies[0] for copy in copies)
    for entries in again.journal.values():
        assert all(entry == entries[0] for entry in entries)
    assert {k: order_projection(o) for k, o in again.orders.items()} == {
        k: order_projection(o) for k, o in first.orders.items()
    }
