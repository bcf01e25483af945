"""Reconciliation alerts on the real broker: each type opened once and resolved once, with
business time moved by the test through the worker's injectable clock, and no duplicate
alert when two workers share the partitions."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from streams.contracts.codec import Codec
from streams.contracts.topics import (
    ALERTS,
    AVAILABILITY,
    ERP_RESULTS,
    INVENTORY,
    ORDERS,
    PAYMENTS,
    STOREFRONT_CATALOG_RESULTS,
    STOREFRONT_CUSTOMER_RESULTS,
    STOREFRONT_FULFILMENT_RESULTS,
    STOREFRONT_RESULTS,
    TopicCatalog,
)
from streams.domain.alerts import (
    AMOUNT_MISMATCH,
    BACKORDER,
    ERP_COMMAND_FAILED,
    ORDER_WITHOUT_PAYMENT,
    OVERSOLD,
    PAYMENT_FOR_UNKNOWN_ORDER,
    PAYMENT_WITHOUT_SALES_ORDER,
    STOCK_DRIFT,
    STOREFRONT_CUSTOMER_REFUSED,
    STOREFRONT_FULFILMENT_REFUSED,
    STOREFRONT_LEVEL_REFUSED,
    STOREFRONT_PRODUCT_REFUSED,
)
from streams.domain.commands import sales_order_id
from streams.domain.events import InputEvent
from streams.ops.settings import Settings
from streams.sample.generator import SampleEvent
from streams.topology.agents.intake import partition_for
from tests.streams.clocked_worker import advance
from tests.streams.domain.builders import (
    WEST,
    adjusted,
    cancelled,
    captured,
    line,
    placed,
    snapshot,
    to_datetime,
)
from tests.streams.topology.agents.pipeline import members_with_partitions, produce, read_all
from tests.support import STORE, WorkerProcess, spawn_worker, wait_for

CODEC = Codec(STORE)
MINUTE_MS = 60_000


def envelope(event: InputEvent) -> SampleEvent:
    """The Avro datum the codec writes for a rules-level event."""
    if event.kind.startswith("Stock"):
        topic, schema, key_field = INVENTORY, "erpbridge.InventoryEvent", "sku"
    elif event.kind.startswith("Payment"):
        topic, schema, key_field = PAYMENTS, "erpbridge.PaymentEvent", "order_id"
    else:
        topic, schema, key_field = ORDERS, "erpbridge.OrderEvent", "order_id"
    datum = {
        "event_id": event.event_id,
        "occurred_at": to_datetime(event.occurred_ms),
        "source": event.source,
        key_field: event.key,
        "event": (f"erpbridge.{event.kind}", event.payload),
    }
    return SampleEvent(topic, event.key, schema, datum)


def erp_result(
    settings: Settings,
    catalog: TopicCatalog,
    command_id: str,
    order_id: str | None,
    *,
    failed: bool = False,
) -> None:
    topic = catalog.physical(ERP_RESULTS)
    datum = {
        "event_id": uuid.uuid4().hex,
        "occurred_at": datetime.now(UTC),
        "source": "connector:test",
        "command_id": command_id,
        "target": "tryton",
        "status": "FAILED" if failed else "SUCCEEDED",
        "order_id": order_id,
        "document_type": None if failed else "sale.sale",
        "document_id": None if failed else "42",
        "error": {"code": "validation", "message": "unknown product", "permanent": True}
        if failed
        else None,
        "attempts": 1,
        "latency_ms": 12,
    }
    producer = Producer(settings.producer_config())
    producer.produce(
        topic,
        key=command_id.encode(),
        value=CODEC.encode("erpbridge.ErpResult", datum, topic=topic),
    )
    assert producer.flush(30) == 0


def storefront_result(
    settings: Settings,
    catalog: TopicCatalog,
    key: str,
    *,
    refused: bool = False,
    customer: bool = False,
) -> None:
    """A stock level's result (`key` <route>:<sku>@<warehouse>), a fulfilment's
    (<route>:<order>/<fulfilment>), a product's (<route>:<sku>) or with `customer` a
    customer's (<route>:<customer id>), as the storefront sink writes it."""
    route, _, what = key.partition(":")
    common = {
        "event_id": uuid.uuid4().hex,
        "occurred_at": datetime.now(UTC),
        "source": "erpbridge",
        "route": route,
        "provider": "shopify",
        "message": "ITEM_NOT_STOCKED_AT_LOCATION: not stocked" if refused else None,
        "attempts": 1,
        "latency_ms": 30,
        "permanent": refused,
    }
    if customer:
        name, schema = STOREFRONT_CUSTOMER_RESULTS, "erpbridge.StorefrontCustomerResult"
        datum = common | {"customer_id": what, "storefront_id": None,
                          "status": "FAILED" if refused else "UPDATED"}  # fmt: skip
    elif "@" in what:
        name, schema = STOREFRONT_RESULTS, "erpbridge.StorefrontResult"
        sku, _, warehouse = what.partition("@")
        datum = common | {"sku": sku, "warehouse_id": warehouse, "quantity": 4,
                          "status": "FAILED" if refused else "SET"}  # fmt: skip
    elif "/" in what:
        name, schema = STOREFRONT_FULFILMENT_RESULTS, "erpbridge.StorefrontFulfilmentResult"
        order, _, fulfilment = what.partition("/")
        datum = common | {"order_id": order, "fulfillment_id": fulfilment, "storefront_id": None,
                          "status": "FAILED" if refused else "CREATED"}  # fmt: skip
    else:
        name, schema = STOREFRONT_CATALOG_RESULTS, "erpbridge.StorefrontProductResult"
        datum = common | {"sku": what, "storefront_id": None,
                          "status": "FAILED" if refused else "UPDATED"}  # fmt: skip
    topic = catalog.physical(name)
    producer = Producer(settings.producer_config())
    producer.produce(topic, key=key.encode(), value=CODEC.encode(schema, datum, topic=topic))
    assert producer.flush(30) == 0


def available(settings: Settings, catalog: TopicCatalog, sku: str) -> int | None:
    """The latest `available` figure inventory.availability published for `sku`."""
    latest = None
    for record in read_all(settings, catalog.physical(AVAILABILITY)):
        if record.key() == sku.encode():
            latest = CODEC.decode(record.value()).datum["available"]
    return latest


def alert_records(settings: Settings, catalog: TopicCatalog) -> list[dict[str, Any]]:
    return [CODEC.decode(r.value()).datum for r in read_all(settings, catalog.physical(ALERTS))]


def statuses(settings: Settings, catalog: TopicCatalog) -> dict[tuple[str, str], list[str]]:
    """(alert type, entity id) -> the status of each record, in topic order."""
    found: dict[tuple[str, str], list[str]] = {}
    for datum in alert_records(settings, catalog):
        found.setdefault((datum["alert_type"], datum["entity_id"]), []).append(datum["status"])
    return found


def wait_for_statuses(
    settings: Settings,
    catalog: TopicCatalog,
    wanted: dict[tuple[str, str], list[str]],
    *,
    timeout: float,
    what: str,
) -> dict[tuple[str, str], list[str]]:
    """Wait until each (type, entity) has exactly the wanted records; name what differs."""
    found: dict[tuple[str, str], list[str]] = {}

    def reached() -> bool:
        found.clear()
        found.update(statuses(settings, catalog))
        return all(found.get(k) == v for k, v in wanted.items())

    try:
        wait_for(reached, timeout=timeout, what=what)
    except AssertionError as error:
        differing = {k: found.get(k) for k, v in wanted.items() if found.get(k) != v}
        raise AssertionError(f"{error}; differing: {differing}; all: {found}") from None
    return found


@pytest.fixture
def clock_file(tmp_path: Path) -> Path:
    path = tmp_path / "clock"
    path.write_text("0")
    return path


@pytest.fixture
def clocked(
    settings: Settings, topics: TopicCatalog, clock_file: Path, tmp_path: Path
) -> Iterator[Callable[[Settings], WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(config: Settings) -> WorkerProcess:
        worker = spawn_worker(
            config, tmp_path / f"worker-{len(started)}.log", clock_file=clock_file
        )
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def quick(settings: Settings) -> Settings:
    return settings.model_copy(update={"expiry_interval_seconds": 0.5})


def test_every_alert_type_opens_once_and_resolves_once(
    settings: Settings,
    topics: TopicCatalog,
    clocked: Callable[[Settings], WorkerProcess],
    clock_file: Path,
) -> None:
    config = quick(settings)
    clocked(config)
    now = int(time.time() * 1000)
    unpaid, unconfirmed, overpaid, ghost = "O-unpaid", "O-unconfirmed", "O-overpaid", "O-ghost"
    short, drifting, oversold = "SKU-SHORT", "SKU-DRIFT", "SKU-OVERSOLD"

    def order(order_id: str, sku: str = "SKU-PLENTY", quantity: int = 1) -> InputEvent:
        return placed(order_id, [line("L1", sku, quantity, "10.00")], at=now)

    def send(*events: InputEvent) -> None:
        produce(config, topics, CODEC, [envelope(e) for e in events])

    # Stock first: a reservation must find the snapshot's units (inventory and orders are
    # separate topics, read in no particular order relative to each other).
    send(
        snapshot("SKU-PLENTY", WEST, 100, now - 60 * MINUTE_MS),
        snapshot(short, WEST, 1, now - 60 * MINUTE_MS),
        snapshot(oversold, WEST, 5, now - 60 * MINUTE_MS),
        snapshot(drifting, WEST, 10, now - 120 * MINUTE_MS),
        replace(adjusted(drifting, WEST, -3, at=now - 90 * MINUTE_MS), source="wms"),
        snapshot(drifting, WEST, 9, now - 60 * MINUTE_MS),
    )
    wait_for(
        lambda: available(config, topics, short) == 1 and available(config, topics, oversold) == 5,
        timeout=60,
        what="the snapshots to apply",
    )
    send(
        order(unpaid),
        order(unconfirmed),
        captured(unconfirmed, "10.00", at=now),
        order(overpaid),
        captured(overpaid, "12.00", at=now),
        captured(ghost, "10.00", at=now),
        order("O-backordered", short, 3),
        order("O-oversold", oversold, 5),
    )
    wait_for(
        lambda: available(config, topics, oversold) == 0,
        timeout=60,
        what="the order to reserve the last units",
    )
    send(snapshot(oversold, WEST, 2, now - 30 * MINUTE_MS))  # a count finds fewer
    erp_result(config, topics, "C-bad/sales-order/1", None, failed=True)
    level, shipment, product = f"shop:SKU-PLENTY@{WEST}", "shop:O-unpaid/FUL-1", "shop:SKU-PLENTY"
    storefront_result(config, topics, level, refused=True)
    storefront_result(config, topics, shipment, refused=True)
    storefront_result(config, topics, product, refused=True)
    account = "shop:CUST-1"
    storefront_result(config, topics, account, refused=True, customer=True)

    at_once = {
        (AMOUNT_MISMATCH, overpaid),
        (BACKORDER, "O-backordered"),
        (OVERSOLD, oversold),
        (STOCK_DRIFT, drifting),
        (ERP_COMMAND_FAILED, "C-bad/sales-order/1"),
        (STOREFRONT_LEVEL_REFUSED, level),
        (STOREFRONT_FULFILMENT_REFUSED, shipment),
        (STOREFRONT_PRODUCT_REFUSED, product),
        (STOREFRONT_CUSTOMER_REFUSED, account),
    }
    wait_for_statuses(
        config,
        topics,
        {k: ["OPEN"] for k in at_once},
        timeout=90,
        what="the alerts that need no time to pass",
    )
    timed = {
        (ORDER_WITHOUT_PAYMENT, unpaid),
        (PAYMENT_WITHOUT_SALES_ORDER, unconfirmed),
        (PAYMENT_FOR_UNKNOWN_ORDER, ghost),
    }
    assert not timed & statuses(config, topics).keys(), "a timed alert opened before its time"

    advance(clock_file, 61 * MINUTE_MS)
    wait_for_statuses(
        config,
        topics,
        {k: ["OPEN"] for k in timed},
        timeout=60,
        what="the alerts that open after minutes of business time",
    )

    # What resolves each one.
    later = now + 61 * MINUTE_MS
    produce(
        config,
        topics,
        CODEC,
        [
            envelope(e)
            for e in [
                captured(unpaid, "10.00", at=later),
                cancelled(overpaid, at=later),
                order(ghost),
                cancelled("O-backordered", at=later),
                snapshot(oversold, WEST, 10, now),
                snapshot(drifting, WEST, 9, now),
            ]
        ],
    )
    erp_result(config, topics, sales_order_id(unconfirmed), unconfirmed)
    erp_result(config, topics, "C-bad/sales-order/1", None)
    storefront_result(config, topics, level)
    storefront_result(config, topics, shipment)
    storefront_result(config, topics, product)
    storefront_result(config, topics, account, customer=True)

    everything = at_once | timed
    wait_for_statuses(
        config,
        topics,
        {k: ["OPEN", "RESOLVED"] for k in everything},
        timeout=60,
        what="every alert to be resolved once",
    )
    records = alert_records(config, topics)
    for datum in records:
        if (datum["alert_type"], datum["entity_id"]) in everything:
            assert datum["severity"] in ("INFO", "WARNING", "CRITICAL")
            assert datum["evidence"] and datum["summary"]
            assert datum["first_seen_at"] <= (datum["resolved_at"] or datum["first_seen_at"])
    ids = {(d["alert_type"], d["entity_id"]): d["alert_id"] for d in records}
    assert len({ids[k] for k in everything}) == len(everything)


def test_two_workers_raise_each_timed_alert_once(
    settings: Settings,
    topics: TopicCatalog,
    clocked: Callable[[Settings], WorkerProcess],
    clock_file: Path,
) -> None:
    config = quick(settings)
    clocked(config)
    clocked(config.model_copy(update={"data_dir": config.data_dir.with_name("data-2")}))
    wait_for(
        lambda: members_with_partitions(config, topics) == 2,
        timeout=90,
        what="both workers to own partitions",
    )
    now = int(time.time() * 1000)
    orders = [f"O-{i}" for i in range(12)]
    produce(
        config,
        topics,
        CODEC,
        [envelope(placed(o, [line("L1", "SKU-X", 1, "10.00")], at=now)) for o in orders],
    )
    wait_for(
        lambda: (
            not [k for k in statuses(config, topics) if k[0] == ORDER_WITHOUT_PAYMENT]
            and members_with_partitions(config, topics) == 2
        ),
        timeout=30,
        what="the orders to be taken in, with no alert yet",
    )
    advance(clock_file, 61 * MINUTE_MS)
    expected = {(ORDER_WITHOUT_PAYMENT, o) for o in orders}
    wait_for(
        lambda: expected <= statuses(config, topics).keys(),
        timeout=60,
        what="an order-without-payment alert for every order",
    )
    # Markers on every partition open only after a tick of each worker that follows the
    # first alerts; by then any second alert for the same order would be on the topic too.
    partitions = topics.partitions(ORDERS)
    markers = {partition_for(f"M-{i}".encode(), partitions): f"M-{i}" for i in range(40)}
    assert len(markers) == partitions
    advance(clock_file, 5 * MINUTE_MS)
    marker_time = int(time.time() * 1000)
    produce(
        config,
        topics,
        CODEC,
        [
            envelope(placed(m, [line("L1", "SKU-X", 1, "10.00")], at=marker_time))
            for m in markers.values()
        ],
    )
    wait_for(
        lambda: (
            {(ORDER_WITHOUT_PAYMENT, m) for m in markers.values()}
            <= statuses(config, topics).keys()
        ),
        timeout=60,
        what="the markers' alerts",
    )
    found = statuses(config, topics)
    assert {k: found[k] for k in expected} == {k: ["OPEN"] for k in expected}
