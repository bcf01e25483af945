"""Fulfilments handed back to the storefront an order was placed on: once each, never the
storefront's own, only for routes that push tracking, identical when re-sent."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from streams.contracts.codec import Codec
from streams.contracts.schema_store import SchemaStore
from streams.domain.events import InputEvent
from streams.domain.orders import Order, Verdict
from streams.domain.tracking import TrackingPolicy, tracking_pushes
from streams.ops.settings import REPO_ROOT
from tests.streams.domain.builders import T0, WEST, apply, fulfilled, line, placed

POLICY = TrackingPolicy(frozenset({"main"}))


def storefront_order(storefront: str | None = "main") -> Order:
    order = Order("O-1")
    apply(
        order,
        placed("O-1", [line("L1", "SKU-A", 3, "10.00")], storefront=storefront, source="shopify"),
    )
    return order


def shipped(fulfillment_id: str, quantity: int, *, source: str, at: int) -> InputEvent:
    return replace(
        fulfilled("O-1", fulfillment_id, WEST, {"SKU-A": quantity}, at=at), source=source
    )


def test_each_fulfilment_the_storefront_did_not_report_goes_back_once() -> None:
    order = storefront_order()
    apply(order, shipped("F-1", 1, source="wms", at=T0 + 10))
    [push] = tracking_pushes(order, POLICY)
    assert push.push_id == "O-1/storefront-fulfilment/F-1"
    assert push.to_datum() == {
        "event_id": "O-1/storefront-fulfilment/F-1",
        "occurred_at": datetime.fromtimestamp((T0 + 10) / 1000, UTC),
        "source": "erpbridge",
        "route": "main",
        "order_id": "O-1",
        "fulfillment_id": "F-1",
        "warehouse_id": WEST,
        "carrier": "ups",
        "tracking_number": "1Z0001",
        "lines": [{"sku": "SKU-A", "quantity": 1}],
    }
    assert tracking_pushes(order, POLICY) == []
    # The storefront's own fulfilment (its webhook) is not told back to it.
    apply(order, shipped("F-2", 1, source="shopify", at=T0 + 20))
    assert tracking_pushes(order, POLICY) == []
    apply(order, shipped("F-3", 1, source="erp:tryton", at=T0 + 30))
    [second] = tracking_pushes(order, POLICY)
    assert second.fulfillment_id == "F-3"
    # A redelivery hands every push on again, the same.
    again = tracking_pushes(order, POLICY, replay=True)
    assert [p.to_datum() for p in again] == [push.to_datum(), second.to_datum()]


def test_only_orders_of_routes_that_push_tracking_get_pushes() -> None:
    for storefront in (None, "other"):
        order = storefront_order(storefront)
        apply(order, shipped("F-1", 1, source="wms", at=T0 + 10))
        assert tracking_pushes(order, POLICY) == []
    order = Order("O-2")
    assert tracking_pushes(order, POLICY) == []


def test_a_push_encodes_as_a_storefront_fulfilment() -> None:
    order = storefront_order()
    apply(order, shipped("F-1", 2, source="wms", at=T0 + 10))
    [push] = tracking_pushes(order, POLICY)
    codec = Codec(SchemaStore.from_directory(REPO_ROOT / "schemas"))
    value = codec.encode("erpbridge.StorefrontFulfilment", push.to_datum(), topic="t")
    assert codec.decode(value).datum == push.to_datum()


def test_the_storefronts_report_of_a_told_fulfilment_is_its_echo_not_more_goods_shipped() -> None:
    order = storefront_order()  # 3 of SKU-A, placed on the storefront
    apply(order, shipped("F-1", 1, source="wms", at=T0 + 10))  # tracking 1Z0001
    untracked = replace(shipped("F-2", 1, source="wms", at=T0 + 20), payload={
        **shipped("F-2", 1, source="wms", at=T0 + 20).payload, "tracking_number": None})  # fmt: skip
    apply(order, untracked)
    tracking_pushes(order, POLICY)  # both told to the storefront
    # Shopify's fulfilments/create webhooks for what erpbridge created there.
    apply(order, shipped("SHOP-77", 1, source="shopify", at=T0 + 11))
    echo = replace(shipped("SHOP-78", 1, source="shopify", at=T0 + 21), payload={
        **shipped("SHOP-78", 1, source="shopify", at=T0 + 21).payload, "tracking_number": None})  # fmt: skip
    effect = apply(order, echo)
    assert effect.verdict is Verdict.DUPLICATE
    assert order.echoes == {"SHOP-77": "F-1", "SHOP-78": "F-2"}
    assert set(order.fulfilments) == {"F-1", "F-2"}
    assert order.lines["L1"].fulfilled == 2
    # Redelivered: still nothing more shipped. The merchant's own third shipment is real.
    apply(order, shipped("SHOP-77", 1, source="shopify", at=T0 + 11))
    apply(order, replace(shipped("SHOP-79", 1, source="shopify", at=T0 + 30), payload={
        **shipped("SHOP-79", 1, source="shopify", at=T0 + 30).payload, "tracking_number": "9X"}))  # fmt: skip
    assert order.lines["L1"].fulfilled == 3
    assert set(order.fulfilments) == {"F-1", "F-2", "SHOP-79"}
    assert tracking_pushes(order, POLICY) == []  # the storefront's own is not told back
