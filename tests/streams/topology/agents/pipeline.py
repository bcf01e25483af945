"""Driving the topology on the real broker and comparing it with the reference model.

Final state is read the way a recovering worker reads it: from the tables' changelog topics.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]
from rocksdict import AccessType, Options, Rdict

from streams.contracts import deadletter
from streams.contracts.changelogs import (
    ORDERS_TABLE,
    STOCK_TABLE,
    TABLE_SOURCES,
    changelog_sources,
    changelog_topic,
)
from streams.contracts.codec import Codec
from streams.contracts.journal import entry_of
from streams.contracts.topics import (
    AGENT_SOURCES,
    ALERTS,
    AVAILABILITY,
    ERP_PENDING,
    INPUTS,
    JOURNAL,
    ORDER_STATUS,
    TopicCatalog,
    dead_letter_of,
    spec,
)
from streams.domain import statejson
from streams.domain.commands import Command, journal_command_id
from streams.domain.events import InputEvent
from streams.domain.finance import FinanceMapping, entry_command
from streams.domain.model import ReferenceModel
from streams.domain.orders import Order
from streams.domain.routing import RoutingRules
from streams.domain.statecodec import decode_order, decode_sku
from streams.domain.stock import SkuStock
from streams.ops.settings import Settings
from streams.ops.topic_admin import consumer_lag
from streams.sample.generator import SampleEvent
from streams.topology.agents.intake import partition_for
from streams.topology.app import alert_policy_of, command_policy_of, policy_of
from tests.support import wait_for


def namespaced(event: SampleEvent, prefix: str) -> SampleEvent:
    """The event with its order ids and SKUs prefixed, so examples share topics unharmed."""

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: prefix + v if k in ("order_id", "sku") and isinstance(v, str) else walk(v)
                for k, v in value.items()
            }
        if isinstance(value, tuple):
            return tuple(walk(v) for v in value)
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return SampleEvent(event.topic, prefix + event.key, event.schema_name, walk(event.datum))


def produce(
    settings: Settings, catalog: TopicCatalog, codec: Codec, events: Iterable[SampleEvent]
) -> int:
    producer = Producer(settings.producer_config())
    count = 0
    for event in events:
        topic = catalog.physical(event.topic)
        producer.produce(
            topic,
            key=event.key.encode(),
            value=codec.encode(event.schema_name, event.datum, topic=topic),
        )
        count += 1
        if count % 1000 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0, "events were not delivered"
    return count


def produce_placed(
    settings: Settings, catalog: TopicCatalog, codec: Codec, events: Iterable[SampleEvent]
) -> list[tuple[SampleEvent, tuple[str, int, int]]]:
    """Like `produce`, and where each record landed: (physical topic, partition, offset)."""
    producer = Producer(settings.producer_config())
    records = list(events)
    landed: dict[int, tuple[str, int, int]] = {}

    def report(index: int) -> Callable[[Any, Message], None]:
        def delivered(error: Any, message: Message) -> None:
            assert error is None, error
            landed[index] = (message.topic(), message.partition(), message.offset())

        return delivered

    for i, event in enumerate(records):
        topic = catalog.physical(event.topic)
        producer.produce(
            topic,
            key=event.key.encode(),
            value=codec.encode(event.schema_name, event.datum, topic=topic),
            on_delivery=report(i),
        )
        if i % 1000 == 999:
            producer.poll(0)
    assert producer.flush(30) == 0, "events were not delivered"
    return [(event, landed[i]) for i, event in enumerate(records)]


def committed_offsets(
    settings: Settings, topics: Iterable[str]
) -> dict[tuple[str, int], tuple[int, int]]:
    """Per (physical topic, partition): the worker group's committed offset (the low
    watermark when none) and the end of the partition."""
    consumer = Consumer(
        {**settings.confluent_config(), "group.id": settings.app_id, "enable.auto.commit": False}
    )
    try:
        metadata = consumer.list_topics(timeout=10)
        partitions = [
            TopicPartition(topic, p) for topic in topics for p in metadata.topics[topic].partitions
        ]
        found = {}
        for tp in consumer.committed(partitions, timeout=10):
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            found[tp.topic, tp.partition] = (tp.offset if tp.offset >= 0 else low, high)
        return found
    finally:
        consumer.close()


def quiesce(settings: Settings, catalog: TopicCatalog, *, timeout: float = 120) -> None:
    """Wait until the worker group has committed everything on every topic it reads.

    Faust flushes what a record produced before committing the record, so nothing is in
    flight once every source topic, the internal ones included, has no lag; it must hold
    twice in a row, a commit interval apart, to rule out a record between two reads.
    """
    topics = [catalog.physical(name) for name in AGENT_SOURCES]
    config = settings.confluent_config()

    last: dict[tuple[str, int], int] = {}

    def idle() -> bool:
        last.clear()
        last.update(consumer_lag(config, settings.app_id, topics))
        return not any(last.values())

    def idle_twice() -> bool:
        if not idle():
            return False
        time.sleep(3)  # one Faust commit interval (2.8 s), so a late commit shows as lag
        return idle()

    try:
        wait_for(idle_twice, timeout=timeout, what=f"group {settings.app_id} to commit everything")
    except AssertionError as error:
        lagging = {f"{t}[{p}]": n for (t, p), n in last.items() if n}
        raise AssertionError(f"{error}; lag: {lagging}") from None


def read_all(settings: Settings, topic: str, *, timeout: float = 60) -> list[Message]:
    """Every record of `topic` from the beginning to its current end."""
    consumer = Consumer(
        {
            **settings.confluent_config(),
            "group.id": f"reader-{topic}-{time.monotonic_ns()}",
            "enable.auto.commit": False,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        ends = {}
        for p in metadata.topics[topic].partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        records: list[Message] = []
        positions = {p: 0 for p in ends}
        deadline = time.monotonic() + timeout
        while any(positions[p] < ends[p] for p in ends):
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            records.append(message)
            positions[message.partition()] = message.offset() + 1
        return records
    finally:
        consumer.close()


def latest_by_key(records: Sequence[Message]) -> dict[bytes, bytes | None]:
    latest: dict[bytes, bytes | None] = {}
    for record in records:
        latest[record.key()] = record.value()
    return latest


def changelog_state(
    settings: Settings, table: str, catalog: TopicCatalog
) -> dict[bytes, bytes | None]:
    """The latest state per key in a table's changelog, each record checked to be on its
    key's partition: where the worker owning that partition restores it from. (A batch
    holds records of many partitions; state written under another partition's event would
    be lost to the key's next owner.)"""
    topic = changelog_topic(settings.app_id, table)
    records = read_all(settings, topic)
    partitions = catalog.partitions(changelog_sources(settings.app_id)[topic])
    misplaced = [
        (r.key(), r.partition())
        for r in records
        if r.partition() != partition_for(r.key(), partitions)
    ]
    assert not misplaced, f"{table}: state on another partition than its key's: {misplaced[:5]}"
    return latest_by_key(records)


PERSISTED_OFFSET_KEY = b"__faust\x00offset__"
"""Where Faust's RocksDB store keeps a partition's changelog offset, beside the keys."""


def assert_tables_hold_their_changelogs(
    settings: Settings, catalog: TopicCatalog, data_dir: Path
) -> None:
    """Every table in a stopped worker's data directory holds what its changelog holds,
    key for key: the worker owned every partition at the end, restored or kept as a
    standby replica, and none of it lost a key (a standby that skipped records would hold
    stale or no state while its offsets said it was complete)."""
    for table in TABLE_SOURCES:
        expected = {
            key: value
            for key, value in changelog_state(settings, table, catalog).items()
            if value is not None
        }
        held: dict[bytes, bytes] = {}
        for path in sorted(data_dir.glob(f"v*/tables/{table}-*.db")):
            database = Rdict(
                str(path), options=Options(raw_mode=True), access_type=AccessType.read_only()
            )
            try:
                held.update((key, value) for key, value in database.items())
            finally:
                database.close()
        held.pop(PERSISTED_OFFSET_KEY, None)
        differing = sorted(
            key for key in expected.keys() | held.keys() if expected.get(key) != held.get(key)
        )
        assert not differing, (
            f"{table} in {data_dir} differs from its changelog at {len(differing)} keys: "
            f"{differing[:5]}"
        )


@dataclass
class TopologyState:
    orders: dict[str, Order]
    stock: dict[str, SkuStock]
    availability: dict[str, dict[str, Any]]
    """Latest inventory.availability value per SKU."""
    statuses: dict[str, list[dict[str, Any]]]
    """orders.status values per order, in topic order, every copy."""
    commands: dict[str, list[Command]]
    """Every copy of every command the dispatcher reads, by command id: those on the pending
    topic, and the PostJournalEntry it makes of each finance.journal record."""
    journal: dict[str, list[dict[str, Any]]]
    """Every copy of every finance.journal entry, by entry id."""
    alerts: dict[str, dict[str, Any]]
    """The latest reconciliation.alerts value per alert id."""

    @classmethod
    def read(cls, settings: Settings, catalog: TopicCatalog, codec: Codec) -> TopologyState:
        orders = {
            key.decode(): decode_order(value)
            for key, value in changelog_state(settings, ORDERS_TABLE, catalog).items()
            if value is not None
        }
        stock = {
            key.decode(): decode_sku(value)
            for key, value in changelog_state(settings, STOCK_TABLE, catalog).items()
            if value is not None
        }
        availability = {
            key.decode(): codec.decode(value).datum
            for key, value in latest_by_key(
                read_all(settings, catalog.physical(AVAILABILITY))
            ).items()
            if value is not None
        }
        statuses: dict[str, list[dict[str, Any]]] = {}
        for record in read_all(settings, catalog.physical(ORDER_STATUS)):
            datum = codec.decode(record.value()).datum
            statuses.setdefault(datum["order_id"], []).append(datum)
        commands: dict[str, list[Command]] = {}
        for record in read_all(settings, catalog.physical(ERP_PENDING)):
            command = Command.decode(record.value())
            commands.setdefault(command.command_id, []).append(command)
        journal: dict[str, list[dict[str, Any]]] = {}
        for record in read_all(settings, catalog.physical(JOURNAL)):
            datum = codec.decode(record.value()).datum
            journal.setdefault(datum["entry_id"], []).append(datum)
            command = entry_command(entry_of(datum), settings.erp_target)
            commands.setdefault(command.command_id, []).append(command)
        alerts = {
            key.decode(): codec.decode(value).datum
            for key, value in latest_by_key(read_all(settings, catalog.physical(ALERTS))).items()
            if value is not None
        }
        return cls(orders, stock, availability, statuses, commands, journal, alerts)


def run_model(events: Iterable[SampleEvent], settings: Settings, codec: Codec) -> ReferenceModel:
    model = ReferenceModel(
        RoutingRules.from_file(settings.routing_rules),
        FinanceMapping.from_file(settings.finance_mapping),
        policy_of(settings),
        command_policy_of(settings),
        alert_policy_of(settings),
    )
    # The worker's clock is processing time, which in a test is all "now".
    now_ms = int(time.time() * 1000)
    for event in events:
        # Through the codec, so the model sees the datum exactly as the worker decodes it.
        datum = codec.decode(codec.encode(event.schema_name, event.datum, topic="model")).datum
        model.feed(event.topic, InputEvent.from_datum(datum, spec(event.topic).key), now_ms)
    return model


def order_projection(order: Order) -> dict[str, Any]:
    """What must not depend on arrival order: everything but reservations and bookkeeping."""
    return {
        "placement": statejson.plain(order.placement),
        "lines": {
            line_id: {
                "sku": line.sku,
                "quantity": line.quantity,
                "fulfilled": line.fulfilled,
                "refunded": line.refunded,
                "restocked": line.restocked,
            }
            for line_id, line in order.lines.items()
        },
        "cancelled_ms": order.cancelled_ms,
        "payments": statejson.plain(order.payments),
        "fulfilments": statejson.plain(order.fulfilments),
        "refunds": statejson.plain(order.refunds),
        "waiting": sorted(w.event.event_id for w in order.waiting),
        "status": order.status,
    }


def stock_projection(stock: SkuStock) -> dict[str, Any]:
    """On hand per warehouse, and each open claim's demand (reserved + backordered); a closed
    claim keeps no lines. Not where the reservations are, which depends on arrival order
    when stock is scarce."""
    return {
        "on_hand": {w: s.on_hand for w, s in sorted(stock.warehouses.items()) if s.on_hand},
        "demand": {
            order_id: {
                line_id: (
                    line.quantity,
                    line.shipped,
                    sum(line.reserved.values()) + line.backordered,
                )
                for line_id, line in claim.lines.items()
            }
            for order_id, claim in sorted(stock.claims.items())
        },
    }


def assert_consistent(state: TopologyState, prefix: str) -> None:
    """Invariants of the topology's own state, whatever the arrival order."""
    for sku, stock in state.stock.items():
        if not sku.startswith(prefix):
            continue
        for warehouse, level in stock.warehouses.items():
            claimed = sum(
                line.reserved.get(warehouse, 0)
                for claim in stock.claims.values()
                for line in claim.lines.values()
            )
            assert level.reserved == claimed, (
                f"{sku}@{warehouse}: reserved {level.reserved} != claims {claimed}"
            )
            assert level.reserved >= 0
        for order_id, claim in stock.claims.items():
            order = state.orders[order_id]
            for line_id, line in claim.lines.items():
                seen_by_order = order.lines[line_id]
                # The order hears of a claim while it is (or just stopped being) backordered,
                # all its rules use a reservation for.
                assert seen_by_order.backordered == line.backordered, (
                    f"{order_id}/{line_id} backorder differs"
                )
                if line.backordered:
                    assert seen_by_order.reserved == line.reserved, (
                        f"{order_id}/{line_id} reservation differs"
                    )
        figures = stock.availability()
        published = state.availability[sku]
        assert (published["on_hand"], published["reserved"], published["available"]) == (
            figures.on_hand,
            figures.reserved,
            figures.available,
        ), f"{sku}: inventory.availability is not the table's latest figure"
    for order_id, order in state.orders.items():
        if not order_id.startswith(prefix) or order.status is None:
            continue
        records = state.statuses[order_id]
        # What the README promises a consumer: the last record is the current status, and
        # the transitions told apart by their sequence form the order's history, unbroken.
        assert records[-1]["status"] == order.status.value, (
            f"{order_id}: last status differs: records "
            f"{[(r['status'], r['sequence'], r['cause_event_id']) for r in records]}, "
            f"state {[(t.status.value, t.sequence, t.cause_event_id) for t in order.transitions]}"
        )
        history = sorted({r["sequence"]: r for r in records}.values(), key=lambda r: r["sequence"])
        assert [r["sequence"] for r in history] == list(range(1, len(order.transitions) + 1))
        assert [(r["status"], r["cause_event_id"]) for r in history] == [
            (t.status.value, t.cause_event_id) for t in order.transitions
        ], f"{order_id}: the numbered records are not the order's transitions"
        for before, after in itertools.pairwise(history):
            assert after["previous_status"] == before["status"], f"{order_id}: broken chain"


def assert_matches_model(state: TopologyState, model: ReferenceModel, prefix: str) -> None:
    mine = {k: order_projection(v) for k, v in state.orders.items() if k.startswith(prefix)}
    expected = {k: order_projection(v) for k, v in model.orders.items()}
    assert mine.keys() == expected.keys()
    for order_id in expected:
        differing = {
            k: (mine[order_id][k], v)
            for k, v in expected[order_id].items()
            if mine[order_id][k] != v
        }
        assert not differing, (
            f"order {order_id} differs from the model (topology, model): {differing}"
        )
    stock = {k: stock_projection(v) for k, v in state.stock.items() if k.startswith(prefix)}
    expected_stock = {k: stock_projection(v) for k, v in model.stock.items()}
    differing_stock = {
        sku: (stock.get(sku), expected_stock.get(sku))
        for sku in stock.keys() | expected_stock.keys()
        if stock.get(sku) != expected_stock.get(sku)
    }
    assert not differing_stock, f"stock differs from the model (topology, model): {differing_stock}"
    for sku, availability in model.availability.items():
        published = state.availability[sku]
        assert published["on_hand"] == availability.on_hand, f"{sku}: published on hand"
        assert {
            w["warehouse_id"]: w["on_hand"] for w in published["warehouses"] if w["on_hand"]
        } == {w: on_hand for w, on_hand, _, _ in availability.warehouses if on_hand}, (
            f"{sku}: published on hand per warehouse"
        )
    assert_consistent(state, prefix)


_COST_ENTRY = ("/journal/cogs/", "/journal/restock/")
"""Cost entries use the unit cost known when the shipment reached the stock agent, which
depends on how inventory and order topics interleave: checked by invariants only."""


def _race_free(command_or_entry_id: str, cancelled: set[str]) -> bool:
    """Whether the id's existence and content depend only on facts, not on arrival order.

    Whether a cancelled order ever became a sales order depends on whether its payment or
    its cancellation came first, as in any real system.
    """
    order_id = command_or_entry_id.split("/", 1)[0]
    return order_id not in cancelled and not any(c in command_or_entry_id for c in _COST_ENTRY)


def assert_handed_on_like_model(
    state: TopologyState, model: ReferenceModel, prefix: str, codec: Codec
) -> None:
    """ERP commands and journal entries: every copy of an id is identical (replays re-send
    the same), each entry goes out once per copy on finance.journal, and what does not
    depend on arrival order equals the model's exactly."""
    for command_id, copies in state.commands.items():
        assert all(c == copies[0] for c in copies), f"{command_id}: copies differ"
    for entry_id, datums in state.journal.items():
        assert all(d == datums[0] for d in datums), f"{entry_id}: copies differ"
        # Each entry goes out once, to finance.journal, not again as a pending command.
        posts = len(state.commands[journal_command_id(entry_id)])
        assert posts == len(datums), f"{entry_id}: {posts} PostJournalEntry, {len(datums)} records"
        lines = datums[0]["lines"]
        assert sum(x["debit"] for x in lines) == sum(x["credit"] for x in lines), entry_id
        assert sum(x["functional_debit"] for x in lines) == sum(
            x["functional_credit"] for x in lines
        ), entry_id
    cancelled = {k for k, o in model.orders.items() if o.cancelled_ms is not None}
    mine = {
        k: v[0].to_json()
        for k, v in state.commands.items()
        if k.startswith(prefix) and _race_free(k, cancelled)
    }
    expected = {k: v.to_json() for k, v in model.commands.items() if _race_free(k, cancelled)}
    for entry in model.journal.values():
        if _race_free(entry.entry_id, cancelled):
            command = entry_command(entry, model.command_policy.target)
            expected[command.command_id] = command.to_json()
    assert mine.keys() == expected.keys(), (
        f"commands only in the topology: {sorted(mine.keys() - expected.keys())}; "
        f"only in the model: {sorted(expected.keys() - mine.keys())}"
    )
    differing = [k for k in expected if mine[k] != expected[k]]
    assert not differing, f"commands differ from the model: {differing}"
    entries = {
        k: v[0]
        for k, v in state.journal.items()
        if k.startswith(prefix) and _race_free(k, cancelled)
    }
    expected_entries = {
        k: codec.decode(codec.encode("erpbridge.JournalEntry", e.to_datum(), topic="model")).datum
        for k, e in model.journal.items()
        if _race_free(k, cancelled)
    }
    assert entries == expected_entries, (
        f"journal entries differ from the model: "
        f"{sorted(k for k in entries.keys() | expected_entries.keys() if entries.get(k) != expected_entries.get(k))}"
    )


def dead_letters(
    settings: Settings, catalog: TopicCatalog, codec: Codec, prefix: str
) -> list[tuple[str, str]]:
    """(event id, reason) of every dead letter of the input topics whose key has `prefix`."""
    found = []
    for name in INPUTS:
        for record in read_all(settings, catalog.physical(dead_letter_of(name))):
            if not (record.key() or b"").decode().startswith(prefix):
                continue
            reason = deadletter.describe(record.headers() or [])[deadletter.REASON]
            found.append((codec.decode(record.value()).datum["event_id"], reason))
    return sorted(found)


def model_dead_letters(model: ReferenceModel) -> list[tuple[str, str]]:
    return sorted((d.event.event_id, d.reason) for d in model.dead_letters)


def members_with_partitions(settings: Settings, catalog: TopicCatalog) -> int:
    """Members of the worker group that own at least one partition of an input topic."""
    admin = AdminClient(settings.confluent_config())
    [future] = admin.describe_consumer_groups([settings.app_id]).values()
    inputs = {catalog.physical(name) for name in INPUTS}
    return sum(
        1
        for member in future.result(timeout=10).members
        if any(tp.topic in inputs for tp in member.assignment.topic_partitions)
    )
