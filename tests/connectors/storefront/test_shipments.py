"""The storefront sink showing storefront.fulfilments on the storefronts' orders, on the
session broker against the Shopify double (its 2026-01 schema, fulfillment orders and
`fulfillmentCreate`'s rules) and the WooCommerce double (order notes as its API index
describes them): each fulfilment once however often it is asked, refusals dead-lettered
with the storefront's words."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.contracts.topics import STOREFRONT_FULFILMENT_RESULTS, STOREFRONT_FULFILMENTS
from streams.ops.settings import Settings, WebhookRoute
from tests.connectors.storefront.flow import (
    dead_letters,
    drain,
    fulfilment,
    new_sink,
    produce,
    sink_settings,
)
from tests.connectors.webhooks.doubles import (
    SHOPIFY_TOKEN,
    WOO_KEY,
    WOO_SECRET,
    Double,
    shopify_admin,
    woocommerce_admin,
)
from tests.support import wait_for

ORDER = "gid://shopify/Order/450789469"
FO_EAST, FO_WEST = "gid://shopify/FulfillmentOrder/1", "gid://shopify/FulfillmentOrder/2"
EAST, WEST = "gid://shopify/Location/10", "gid://shopify/Location/20"


@pytest.fixture
def shop() -> Iterator[Double]:
    with shopify_admin() as double:
        double.orders[ORDER] = {
            "fulfillments": [],
            "fulfillmentOrders": [
                {"id": FO_EAST, "status": "OPEN", "location": EAST, "lineItems": [
                    {"id": "gid://shopify/FulfillmentOrderLineItem/11", "sku": "SKU-A",
                     "remainingQuantity": 2},
                    {"id": "gid://shopify/FulfillmentOrderLineItem/12", "sku": "SKU-B",
                     "remainingQuantity": 2}]},
                {"id": FO_WEST, "status": "OPEN", "location": WEST, "lineItems": [
                    {"id": "gid://shopify/FulfillmentOrderLineItem/21", "sku": "SKU-C",
                     "remainingQuantity": 1}]},
            ],
        }  # fmt: skip
        yield double


def _shopify_settings(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, shop: Double
) -> Settings:
    routes = {
        "main": WebhookRoute(
            provider="shopify",
            warehouses={"10": "WH-1", "20": "WH-2"},
            admin_url=shop.url,
            push_tracking=True,
        ),
        "quiet": WebhookRoute(provider="shopify", admin_url=shop.url),
    }
    return sink_settings(kafka_broker, topic_prefix, tmp_path, routes, {"main": SHOPIFY_TOKEN})


def test_shopify_gets_each_fulfilment_once_at_its_warehouses_location_with_its_tracking(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, shop: Double
) -> None:
    settings = _shopify_settings(kafka_broker, topic_prefix, tmp_path, shop)
    tracked = fulfilment("main", "450789469", "FUL-1", {"SKU-A": 2}, tracking="1Z999AA1")
    # Untracked, and leaving one SKU-A to ship: nothing but the order's tag says it was made.
    untracked = fulfilment("main", "450789469", "FUL-2", {"SKU-B": 1})
    sink = new_sink(settings)
    produce(
        settings,
        [
            tracked,
            untracked,
            fulfilment("main", "999", "FUL-9", {"SKU-A": 1}),  # no such order on the shop
            fulfilment(
                "main", "450789469", "FUL-3", {"SKU-C": 1}
            ),  # at WH-2's location, not WH-1's
            fulfilment("quiet", "450789469", "FUL-4", {"SKU-A": 1}),  # no push_tracking there
        ],
        STOREFRONT_FULFILMENTS,
    )
    sink.start()
    try:
        first = drain(sink, settings, 4, STOREFRONT_FULFILMENT_RESULTS)

        def three_letters() -> list[tuple[str, str, str]] | None:
            found = dead_letters(settings, STOREFRONT_FULFILMENTS)
            if len(found) == 3:
                return found
            sink.poll(timeout=0.5)
            return None

        letters = wait_for(three_letters, timeout=60, what="three dead letters")
    finally:
        sink.close()
    by_id = {r["fulfillment_id"]: r for r in first}
    assert {f: (r["status"], r["permanent"]) for f, r in by_id.items()} == {
        "FUL-1": ("CREATED", False),
        "FUL-2": ("CREATED", False),
        "FUL-9": ("FAILED", True),
        "FUL-3": ("FAILED", True),
    }
    assert "Shopify has no order 999" in by_id["FUL-9"]["message"]
    assert "no location of warehouse WH-1" in by_id["FUL-3"]["message"]
    made = shop.orders[ORDER]["fulfillments"]
    assert [(f["id"], f["trackingInfo"], f["message"]) for f in made] == [
        (by_id["FUL-1"]["storefront_id"], [{"number": "1Z999AA1", "company": "UPS"}],
         "[erpbridge FUL-1]"),
        (by_id["FUL-2"]["storefront_id"], [], "[erpbridge FUL-2]"),
    ]  # fmt: skip
    east, west = shop.orders[ORDER]["fulfillmentOrders"]
    assert (east["status"], west["status"]) == ("IN_PROGRESS", "OPEN")
    assert shop.orders[ORDER]["tags"] == ["erpbridge-FUL-1", "erpbridge-FUL-2"]
    said = sorted((key, reason, error.split(":")[0]) for key, reason, error in letters)
    assert said == [
        ("450789469", "storefront-refused", "route main"),  # FUL-3, at WH-2
        ("450789469", "unknown-route", "fulfilment FUL-4 of order 450789469 is for route quiet, "
         "which has no push_tracking in this connector's ERPBRIDGE_WEBHOOK_ROUTES"),
        ("999", "storefront-refused", "route main"),
    ]  # fmt: skip

    # Asked again by a sink that remembers nothing (a redelivery, a replayed order): the
    # order's tags say both were made.
    produce(settings, [tracked, untracked], STOREFRONT_FULFILMENTS)
    again = new_sink(settings)
    again.start()
    try:
        second = drain(again, settings, 6, STOREFRONT_FULFILMENT_RESULTS)
    finally:
        again.close()
    assert sorted((r["fulfillment_id"], r["status"]) for r in second if r not in first) == [
        ("FUL-1", "ALREADY_THERE"),
        ("FUL-2", "ALREADY_THERE"),
    ]
    assert len(shop.orders[ORDER]["fulfillments"]) == 2


@pytest.fixture
def woo() -> Iterator[Double]:
    with woocommerce_admin() as double:
        double.notes[1187] = [{"id": 1, "author": "system", "date_created": "2026-12-06T10:00:00",
                               "note": "Order status changed.", "customer_note": False}]  # fmt: skip
        yield double


def test_woocommerce_gets_each_fulfilment_once_as_a_customer_note(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, woo: Double
) -> None:
    route = WebhookRoute(provider="woocommerce", admin_url=woo.url, push_tracking=True)
    settings = sink_settings(
        kafka_broker, topic_prefix, tmp_path, {"woo": route}, {"woo": f"{WOO_KEY}:{WOO_SECRET}"}
    )
    shipped = fulfilment("woo", "1187", "FUL-91", {"SKU-7": 1, "SKU-8": 2}, tracking="1Z42")
    sink = new_sink(settings)
    produce(
        settings,
        [shipped, fulfilment("woo", "404", "FUL-92", {"SKU-7": 1})],
        STOREFRONT_FULFILMENTS,
    )
    sink.start()
    try:
        first = drain(sink, settings, 2, STOREFRONT_FULFILMENT_RESULTS)
        produce(settings, [shipped], STOREFRONT_FULFILMENTS)
        [again] = [
            r for r in drain(sink, settings, 3, STOREFRONT_FULFILMENT_RESULTS) if r not in first
        ]
    finally:
        sink.close()
    by_id = {r["fulfillment_id"]: r for r in first}
    assert by_id["FUL-91"]["status"] == "CREATED"
    assert (by_id["FUL-92"]["status"], by_id["FUL-92"]["permanent"]) == ("FAILED", True)
    assert "woocommerce_rest_order_invalid_id" in by_id["FUL-92"]["message"]
    assert (again["status"], again["storefront_id"]) == (
        "ALREADY_THERE",
        by_id["FUL-91"]["storefront_id"],
    )
    customer = [n for n in woo.notes[1187] if n["customer_note"]]
    assert [n["note"] for n in customer] == [
        "Shipped with UPS: 1 x SKU-7, 2 x SKU-8, tracking number 1Z42. [erpbridge FUL-91]"
    ]
    [(key, reason, error)] = dead_letters(settings, STOREFRONT_FULFILMENTS)
    assert (key, reason) == ("404", "storefront-refused") and "Invalid order ID" in error


def test_a_fulfilment_the_storefront_never_answers_for_is_dead_lettered_for_a_replay(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, woo: Double
) -> None:
    route = WebhookRoute(provider="woocommerce", admin_url=woo.url, push_tracking=True)
    settings = sink_settings(
        kafka_broker, topic_prefix, tmp_path, {"woo": route}, {"woo": f"{WOO_KEY}:{WOO_SECRET}"}
    ).model_copy(update={"erp_give_up_seconds": 0.5})
    woo.failing = True
    sink = new_sink(settings)
    produce(
        settings,
        [fulfilment("woo", "1187", f"FUL-{n}", {"SKU-7": 1}) for n in (1, 2)],
        STOREFRONT_FULFILMENTS,
    )
    sink.start()
    try:
        results = drain(sink, settings, 2, STOREFRONT_FULFILMENT_RESULTS)
    finally:
        sink.close()
    assert [(r["status"], r["permanent"]) for r in results] == [("FAILED", False)] * 2
    # Waited out once: the batch's other fulfilment for the same storefront failed at once.
    assert sorted(r["attempts"] for r in results)[0] == 0
    letters = dead_letters(settings, STOREFRONT_FULFILMENTS)
    assert sorted(reason for _, reason, _ in letters) == ["storefront-unavailable"] * 2
    assert woo.notes[1187][1:] == []
