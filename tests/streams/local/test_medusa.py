"""streams.local.medusa: a real Medusa 2 storefront holding the sample catalogue with its stock at
the US warehouse, used the way erpbridge uses a storefront: stock pushed through the Admin API
and sold through the Store API, an order placed through the Store API, found by polling the
Admin API on `updated_at`, then fulfilled and shipped with its tracking number; and the
project's subscriber, which POSTs every event to a webhook URL."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from streams.local.medusa import Medusa, running_medusa
from streams.local.medusa_seed import MedusaClient
from streams.sample.generator import Catalogue, Customer
from tests.support import wait_for

CATALOGUE = Catalogue.default()
# The storefront lives for the session: a test that changes stock takes a SKU of its own.
RESTOCKED = CATALOGUE.skus[-1]
ORDERED = CATALOGUE.skus[-2]
# tests/connectors/storefront/test_medusa.py takes the two SKUs before them and
# tests/connectors/webhooks/medusa/test_poll.py the two before those.
UNTOUCHED = {sku.code for sku in CATALOGUE.skus[:-6]}
USD = CATALOGUE.base_currency
SHIPPING = next(m for m in CATALOGUE.shipping_methods if m.code == "standard").prices[USD]


def money(amount: Any) -> Decimal:
    """Medusa's amounts are JSON numbers in major units: 12.5 is $12.50."""
    return Decimal(str(amount)).quantize(Decimal("0.01"))


def level_at(admin: MedusaClient, medusa: Medusa, sku: str) -> dict[str, Any]:
    item = medusa.variants[sku].inventory_item_id
    levels = admin.get(f"/admin/inventory-items/{item}/location-levels")["inventory_levels"]
    (level,) = [lv for lv in levels if lv["location_id"] == medusa.stock_location_id]
    return dict(level)


def address(customer: Customer) -> dict[str, str]:
    first, last = customer.name.split(" ", 1)
    place = customer.address
    return {
        "first_name": first,
        "last_name": last,
        "address_1": place.line1,
        "city": place.city,
        "province": f"{place.country}-{place.region}".lower(),
        "postal_code": place.postal_code or "",
        "country_code": place.country.lower(),
    }


def test_the_catalogue_is_seeded_with_its_stock_at_the_location(medusa: Medusa) -> None:
    with medusa.admin() as admin:
        products = admin.get(
            "/admin/products",
            {"fields": "id,title,status,*variants,*variants.prices,*sales_channels", "limit": 100},
        )["products"]
        by_sku = {p["variants"][0]["sku"]: p for p in products if len(p["variants"]) == 1}
        # Other tests add products and rename or reprice the SKUs they take.
        assert {sku.code for sku in CATALOGUE.skus} <= set(by_sku)
        for sku in (s for s in CATALOGUE.skus if s.code in UNTOUCHED):
            product = by_sku[sku.code]
            assert (product["title"], product["status"]) == (sku.name, "published")
            assert [c["id"] for c in product["sales_channels"]] == [medusa.sales_channel_id]
            prices = {
                p["currency_code"]: money(p["amount"]) for p in product["variants"][0]["prices"]
            }
            assert prices == {"usd": sku.price(USD)}
            assert product["variants"][0]["id"] == medusa.variants[sku.code].variant_id

        stocked = {code: level_at(admin, medusa, code)["stocked_quantity"] for code in UNTOUCHED}
        assert stocked == {s.code: s.target_stock for s in CATALOGUE.skus if s.code in UNTOUCHED}


def test_a_stock_level_set_through_the_admin_api_is_what_the_store_sells(medusa: Medusa) -> None:
    variant = medusa.variants[RESTOCKED.code]
    quantity = RESTOCKED.target_stock + 17
    with medusa.admin() as admin:
        admin.post(
            f"/admin/inventory-items/{variant.inventory_item_id}/location-levels/"
            f"{medusa.stock_location_id}",
            {"stocked_quantity": quantity},
        )
        level = level_at(admin, medusa, RESTOCKED.code)
        assert (level["stocked_quantity"], level["available_quantity"]) == (quantity, quantity)

    def on_sale(store: MedusaClient) -> dict[str, Any]:
        product = store.get(
            f"/store/products/{variant.product_id}",
            {"region_id": medusa.region_id,
             "fields": "id,*variants.calculated_price,+variants.inventory_quantity"},
        )["product"]  # fmt: skip
        return dict(product["variants"][0])

    with medusa.store() as store:
        sold = wait_for(
            lambda: (v := on_sale(store))["inventory_quantity"] == quantity and v,
            timeout=30,
            what=f"the store to offer {quantity} of {RESTOCKED.code}",
        )
    assert sold["id"] == variant.variant_id
    assert money(sold["calculated_price"]["calculated_amount"]) == RESTOCKED.price(USD)


def test_an_order_placed_in_the_store_is_polled_fulfilled_and_shipped(medusa: Medusa) -> None:
    variant = medusa.variants[ORDERED.code]
    customer = next(c for c in CATALOGUE.customers if c.address.country == "US")
    with medusa.admin() as admin:
        stocked = level_at(admin, medusa, ORDERED.code)["stocked_quantity"]
    # Medusa's timestamps have milliseconds; its clock is this machine's.
    watermark = (datetime.now(UTC) - timedelta(milliseconds=1)).isoformat()

    placed = medusa.checkout({variant.variant_id: 2}, customer.email, address(customer))
    order_id = placed["id"]
    assert money(placed["total"]) == 2 * ORDERED.price(USD) + SHIPPING

    fields = "id,email,total,updated_at,payment_status,fulfillment_status,*items"
    with medusa.admin() as admin:

        def polled(since: str) -> dict[str, Any] | None:
            orders = admin.get(
                "/admin/orders",
                {"updated_at[$gt]": since, "order": "updated_at", "fields": fields, "limit": 50},
            )["orders"]
            return next((dict(o) for o in orders if o["id"] == order_id), None)

        order = wait_for(lambda: polled(watermark), timeout=30, what="the order in a poll")
        assert (order["email"], order["payment_status"], order["fulfillment_status"]) == (
            customer.email,
            "authorized",
            "not_fulfilled",
        )
        (item,) = order["items"]
        assert (item["variant_sku"], item["quantity"]) == (ORDERED.code, 2)
        assert level_at(admin, medusa, ORDERED.code)["reserved_quantity"] == 2

        lines = [{"id": item["id"], "quantity": 2}]
        order_path = f"/admin/orders/{order_id}"
        fulfilled = admin.post(
            f"{order_path}/fulfillments",
            {"items": lines, "location_id": medusa.stock_location_id},
            {"fields": "id,*fulfillments"},
        )["order"]
        (fulfillment,) = fulfilled["fulfillments"]
        tracking = "1Z999AA10123456784"
        admin.post(
            f"{order_path}/fulfillments/{fulfillment['id']}/shipments",
            {"items": lines,
             "labels": [{"tracking_number": tracking,
                         "tracking_url": f"https://carrier.example/track/{tracking}",
                         "label_url": f"https://carrier.example/label/{tracking}.pdf"}]},
        )  # fmt: skip

        shipped = wait_for(
            lambda: (o := polled(order["updated_at"])) and o["fulfillment_status"] == "shipped",
            timeout=30,
            what="the shipped order in a poll after its placement",
        )
        assert shipped
        read = admin.get(
            order_path, {"fields": "id,fulfillment_status,*fulfillments,*fulfillments.labels"}
        )["order"]
        (shipment,) = read["fulfillments"]
        assert shipment["shipped_at"] is not None
        assert shipment["location_id"] == medusa.stock_location_id
        assert [label["tracking_number"] for label in shipment["labels"]] == [tracking]

        level = level_at(admin, medusa, ORDERED.code)
        assert (level["stocked_quantity"], level["reserved_quantity"]) == (stocked - 2, 0)


@contextmanager
def webhook_receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A URL on 127.0.0.1 and the JSON bodies POSTed to it so far."""
    received: list[dict[str, Any]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/medusa-events", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_the_subscriber_posts_each_event_to_the_webhook_url(
    request: pytest.FixtureRequest,
) -> None:
    with (
        webhook_receiver() as (url, received),
        running_medusa(webhook_url=url, keep_log=lambda: request.session.testsfailed > 0) as shop,
    ):
        variant = shop.variants[RESTOCKED.code]
        with shop.admin() as admin:
            level = admin.post(
                f"/admin/inventory-items/{variant.inventory_item_id}/location-levels/"
                f"{shop.stock_location_id}",
                {"stocked_quantity": 3},
                {"fields": "id,*location_levels"},
            )["inventory_item"]["location_levels"]
        (level_id,) = [lv["id"] for lv in level if lv["location_id"] == shop.stock_location_id]
        event = wait_for(
            lambda: next((e for e in received if e["name"] == "inventory-level.updated"), None),
            timeout=30,
            what="inventory-level.updated at the webhook",
        )
    # Ids only: a receiver reads the object back through the Admin API.
    assert event["data"] == {"id": level_id}
    assert event["metadata"]["created_at"]
