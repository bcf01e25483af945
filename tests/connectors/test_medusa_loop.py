"""The loop with the live Medusa: an order checked out in the store and paid comes in
through `connector medusa-source`, the worker reserves its stock and sends the ERP its sales order;
the storefront sink sets Medusa's level so that Medusa sells what erpbridge says is
available; the warehouse's shipment goes back to Medusa's order with its tracking number,
and Medusa's record of it does not come back in as a second shipment."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from streams.contracts.changelogs import changelog_sources
from streams.contracts.topics import (
    AVAILABILITY,
    ERP_COMMANDS,
    INVENTORY,
    ORDERS,
    PAYMENTS,
    STOREFRONT_FULFILMENT_RESULTS,
    TopicCatalog,
)
from streams.local.medusa import Medusa
from streams.ops.settings import Settings, WebhookRoute
from streams.ops.topic_admin import ensure_topics
from streams.sample.generator import Catalogue, SampleEvent
from tests.connectors.storefront.flow import CODEC, drain, new_sink
from tests.streams.local.test_medusa import address
from tests.streams.topology.agents.pipeline import produce, read_all
from tests.support import run, settings_env, spawn_worker, wait_for, worker_settings

CATALOGUE = Catalogue.default()
# tests/connectors/webhooks/medusa/test_poll.py's SKU; its orders there are shipped or
# cancelled before this runs, and Medusa's level here is compared with its reservations.
SKU = CATALOGUE.skus[-6].code
WAREHOUSE = "WH-EAST"  # the seeded stock location's warehouse: it serves the whole US
CUSTOMER = next(c for c in CATALOGUE.customers if c.address.region == "NY")
ON_HAND = 50


def _settings(kafka_broker: Any, topic_prefix: str, tmp_path: Path, medusa: Medusa) -> Settings:
    key = medusa.secret_key(topic_prefix)
    route = WebhookRoute(
        provider="medusa",
        warehouses={medusa.stock_location_id: WAREHOUSE},
        admin_url=medusa.url,
        push_stock=True,
        push_tracking=True,
    )
    settings = worker_settings(
        kafka_broker.bootstrap_servers,
        topic_prefix,
        tmp_path / "data",
        webhook_routes={"medusa": route},
        webhook_admin_tokens=SecretStr(json.dumps({"medusa": key})),
    )
    ensure_topics(
        settings.confluent_config(),
        TopicCatalog.from_settings(settings),
        changelogs=changelog_sources(settings.app_id),
    )
    return settings


def _poll(settings: Settings, *options: str) -> str:
    result = run(["connector", "medusa-source", "--once", *options], settings_env(settings))
    assert result.exit_code == 0, result.output + result.stderr
    return str(result.output)


def _event_ids(settings: Settings, order_id: str) -> list[str]:
    topics = TopicCatalog.from_settings(settings)
    return [
        CODEC.decode(m.value()).datum["event_id"]
        for name in (ORDERS, PAYMENTS)
        for m in read_all(settings, topics.physical(name))
        if m.key() == order_id.encode()
    ]


def _available_here(settings: Settings) -> int | None:
    """erpbridge's latest available of the SKU at the warehouse."""
    topics = TopicCatalog.from_settings(settings)
    latest = None
    for m in read_all(settings, topics.physical(AVAILABILITY)):
        if m.key() == SKU.encode():
            latest = CODEC.decode(m.value()).datum
    if latest is None:
        return None
    (level,) = [w for w in latest["warehouses"] if w["warehouse_id"] == WAREHOUSE]
    return int(level["available"])


def _medusa_level(medusa: Medusa) -> dict[str, Any]:
    item = medusa.variants[SKU].inventory_item_id
    with medusa.admin() as admin:
        levels = admin.get(f"/admin/inventory-items/{item}/location-levels")["inventory_levels"]
    (level,) = [lv for lv in levels if lv["location_id"] == medusa.stock_location_id]
    return dict(level)


def _sales_orders(settings: Settings, order_id: str) -> list[str]:
    topics = TopicCatalog.from_settings(settings)
    found = []
    for m in read_all(settings, topics.physical(ERP_COMMANDS)):
        datum = CODEC.decode(m.value()).datum
        name, command = datum["command"]
        if name == "erpbridge.CreateSalesOrder" and command["order_id"] == order_id:
            found.append(datum["command_id"])
    return found


def test_a_store_order_reaches_the_erp_and_its_shipment_and_stock_reach_the_store(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, medusa: Medusa
) -> None:
    settings = _settings(kafka_broker, topic_prefix, tmp_path, medusa)
    topics = TopicCatalog.from_settings(settings)
    now = datetime.now(UTC)
    snapshot = {
        "event_id": f"erp:snapshot:{SKU}", "occurred_at": now - timedelta(minutes=1),
        "source": "erp:tryton", "sku": SKU,
        "event": ("erpbridge.StockSnapshot", {"warehouse_id": WAREHOUSE, "on_hand": ON_HAND,
                                              "as_of": now - timedelta(minutes=1)}),
    }  # fmt: skip
    produce(
        settings, topics, CODEC, [SampleEvent(INVENTORY, SKU, "erpbridge.InventoryEvent", snapshot)]
    )
    since = (now - timedelta(seconds=1)).isoformat()
    order = medusa.checkout({medusa.variants[SKU].variant_id: 2}, CUSTOMER.email, address(CUSTOMER))
    order_id = order["id"]
    # The merchant captures the payment: a prepaid order goes to the ERP once paid.
    payment_id = _payment_id(medusa, order_id)
    with medusa.admin() as admin:
        capture = admin.post(
            f"/admin/payments/{payment_id}/capture", {}, {"fields": "id,*captures"}
        )
    (captured,) = capture["payment"]["captures"]
    assert "1 order read, 3 events published" in _poll(settings, "--since", since)

    worker = spawn_worker(settings, tmp_path / "worker.log")
    sink = new_sink(settings)
    sink.start()
    try:
        # The ERP is sent one sales order, and the two units are reserved at the warehouse.
        wait_for(lambda: _sales_orders(settings, order_id), timeout=180, what="the sales order")
        wait_for(
            lambda: _available_here(settings) == ON_HAND - 2,
            timeout=60,
            what=f"{ON_HAND - 2} of {SKU} available in erpbridge",
        )

        # Medusa sells what erpbridge says is available, its own reservation added back.
        def medusa_sells(quantity: int) -> dict[str, Any] | None:
            sink.poll(timeout=0.5)
            level = _medusa_level(medusa)
            return level if level["available_quantity"] == quantity else None

        level = wait_for(lambda: medusa_sells(ON_HAND - 2), timeout=60, what="Medusa's level")
        assert level["stocked_quantity"] == ON_HAND - 2 + level["reserved_quantity"]

        # The warehouse ships both units with a tracking number.
        shipped = {
            "event_id": "wms:shipment:MED-1", "occurred_at": datetime.now(UTC),
            "source": "wms", "order_id": order_id,
            "event": ("erpbridge.OrderFulfilled", {
                "fulfillment_id": "MED-1", "warehouse_id": WAREHOUSE,
                "lines": [{"sku": SKU, "quantity": 2}], "carrier": "UPS",
                "tracking_number": "1ZLOOP0001"}),
        }  # fmt: skip
        produce(
            settings,
            topics,
            CODEC,
            [SampleEvent(ORDERS, order_id, "erpbridge.OrderEvent", shipped)],
        )
        (made,) = drain(sink, settings, 1, STOREFRONT_FULFILMENT_RESULTS)
        assert made["status"] == "CREATED"
        # Stock left the warehouse in both: Medusa still sells what erpbridge has.
        wait_for(lambda: medusa_sells(ON_HAND - 2), timeout=60, what="Medusa's level after")
        assert _available_here(settings) == ON_HAND - 2
    finally:
        sink.close()
        worker.stop()

    with medusa.admin() as admin:
        read = admin.get(
            f"/admin/orders/{order_id}",
            {"fields": "id,fulfillment_status,*fulfillments,*fulfillments.labels"},
        )["order"]
    assert read["fulfillment_status"] == "shipped"
    assert [label["tracking_number"] for f in read["fulfillments"] for label in f["labels"]] == [
        "1ZLOOP0001"
    ]
    # Medusa's record of erpbridge's shipment is no news: polled again, nothing new comes in.
    before = set(_event_ids(settings, order_id))
    assert "1 order read" in _poll(settings)
    assert set(_event_ids(settings, order_id)) == before
    assert before == {
        f"medusa:order:{order_id}",
        f"medusa:payment:{payment_id}",
        f"medusa:capture:{captured['id']}",
        "wms:shipment:MED-1",
    }


def _payment_id(medusa: Medusa, order_id: str) -> str:
    with medusa.admin() as admin:
        order = admin.get(
            f"/admin/orders/{order_id}", {"fields": "id,*payment_collections.payments"}
        )
    return str(order["order"]["payment_collections"][0]["payments"][0]["id"])
