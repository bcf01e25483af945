"""`erpbridge connector medusa-source` against the session's live Medusa and broker: orders
placed in the store, paid, shipped, refunded and cancelled in its admin reach
commerce.orders and commerce.payments once each, from where the last poll stopped; what
cannot be mapped is dead-lettered and published once its cause is fixed; a customer reaches
commerce.customers as its account."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from connectors.storefront.customers import MARK as CUSTOMER_MARK
from connectors.webhooks.medusa.mapping import MARK
from streams.contracts import deadletter
from streams.contracts.topics import (
    CUSTOMERS,
    ORDERS,
    PAYMENTS,
    POLL_WATERMARKS,
    WEBHOOKS_DLQ,
    TopicCatalog,
)
from streams.local.medusa import Medusa
from streams.ops.settings import Settings, WebhookRoute
from streams.ops.topic_admin import ensure_topics
from streams.sample.generator import Catalogue
from tests.connectors.webhooks.hooks import stored
from tests.connectors.webhooks.medusa.steps import payment_id, receive_return
from tests.streams.local.test_medusa import address, money
from tests.streams.topology.agents.pipeline import read_all
from tests.support import run, settings_env, worker_settings

CATALOGUE = Catalogue.default()
# The storefront lives for the session: these two SKUs are this module's alone
# (tests/streams/local/test_medusa.py and tests/connectors/storefront/test_medusa.py take
# the four after them).
FIRST, SECOND = CATALOGUE.skus[-6], CATALOGUE.skus[-5]
WAREHOUSE = "WH-WEST"
CUSTOMER = next(c for c in CATALOGUE.customers if c.address.country == "US")


def _settings(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, medusa: Medusa, warehouses: bool = True
) -> Settings:
    key = medusa.secret_key(topic_prefix)
    route = WebhookRoute(
        provider="medusa",
        warehouses={medusa.stock_location_id: WAREHOUSE} if warehouses else {},
        admin_url=medusa.url,
        channel="medusa-web",
    )
    settings = worker_settings(
        kafka_broker.bootstrap_servers,
        topic_prefix,
        tmp_path / "data",
        webhook_routes={"shop": route},
        webhook_admin_tokens=SecretStr(json.dumps({"shop": key})),
    )
    ensure_topics(settings.confluent_config(), TopicCatalog.from_settings(settings))
    return settings


def _poll(settings: Settings, *options: str) -> str:
    result = run(["connector", "medusa-source", "--once", *options], settings_env(settings))
    assert result.exit_code == 0, result.output + result.stderr
    return str(result.output)


def _events(settings: Settings, orders: set[str]) -> list[dict[str, Any]]:
    """The events of `orders` on both input topics, in the order published per topic."""
    topics = TopicCatalog.from_settings(settings)
    return [
        datum
        for topic in (ORDERS, PAYMENTS)
        for key, datum in stored(settings, topics, topic)
        if key in orders
    ]


def _kinds(events: list[dict[str, Any]]) -> dict[str, str]:
    return {e["event_id"]: e["event"][0].removeprefix("erpbridge.") for e in events}


def _ship(
    medusa: Medusa, order_id: str, sku: str, quantity: int, tracking: str, mark: str | None
) -> str:
    with medusa.admin() as admin:
        order = admin.get(f"/admin/orders/{order_id}", {"fields": "id,*items"})["order"]
        (item,) = [i for i in order["items"] if i["variant_sku"] == sku]
        lines = [{"id": item["id"], "quantity": quantity}]
        body: dict[str, Any] = {"items": lines, "location_id": medusa.stock_location_id}
        if mark is not None:
            body["metadata"] = {MARK: mark}
        made = admin.post(
            f"/admin/orders/{order_id}/fulfillments", body, {"fields": "id,*fulfillments"}
        )["order"]["fulfillments"]
        (fulfillment,) = [f for f in made if not f.get("shipped_at")]
        admin.post(
            f"/admin/orders/{order_id}/fulfillments/{fulfillment['id']}/shipments",
            {"items": lines,
             "labels": [{"tracking_number": tracking, "tracking_url": "", "label_url": ""}]},
        )  # fmt: skip
    return str(fulfillment["id"])


def test_a_store_order_reaches_the_topics_once_per_thing_that_happened_to_it(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, medusa: Medusa
) -> None:
    settings = _settings(kafka_broker, topic_prefix, tmp_path, medusa)
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    first, second = FIRST.code, SECOND.code
    kept = medusa.checkout(
        {medusa.variants[first].variant_id: 2, medusa.variants[second].variant_id: 1},
        CUSTOMER.email,
        address(CUSTOMER),
    )
    dropped = medusa.checkout(
        {medusa.variants[first].variant_id: 1}, CUSTOMER.email, address(CUSTOMER)
    )
    ours = {kept["id"], dropped["id"]}

    output = _poll(settings, "--since", since)
    assert "shop: 2 orders read, 4 events published" in output, output
    events = _events(settings, ours)
    placed = next(e for e in events if e["order_id"] == kept["id"])
    name, body = placed["event"]
    assert (name, placed["event_id"], placed["source"]) == (
        "erpbridge.OrderPlaced",
        f"medusa:order:{kept['id']}",
        "medusa",
    )
    assert (body["storefront"], body["channel"], body["currency"]) == ("shop", "medusa-web", "USD")
    assert {(line["sku"], line["quantity"], line["unit_price"]) for line in body["lines"]} == {
        (first, 2, FIRST.price("USD")),
        (second, 1, SECOND.price("USD")),
    }
    assert body["total"] == money(kept["total"])
    assert (body["ship_to"]["country"], body["customer"]["email"]) == ("US", CUSTOMER.email)
    authorised = next(e for e in events if e["event"][0] == "erpbridge.PaymentAuthorized")
    assert authorised["event"][1]["amount"] in {money(kept["total"]), money(dropped["total"])}

    # In the admin: the first order paid, one line shipped by hand and one by erpbridge
    # (whose own fulfilment is no news), part refunded; the second order cancelled.
    payment = payment_id(medusa, kept["id"])
    with medusa.admin() as admin:
        admin.post(f"/admin/payments/{payment}/capture", {})
    by_hand = _ship(medusa, kept["id"], first, 2, "1ZPOLL0001", None)
    _ship(medusa, kept["id"], second, 1, "1ZPOLL0002", "FUL-ERPBRIDGE-1")
    with medusa.admin() as admin:
        admin.post(f"/admin/payments/{payment}/refund", {"amount": 5})
        admin.post(f"/admin/orders/{dropped['id']}/cancel", {})

    output = _poll(settings)
    assert "shop: 2 orders read" in output, output
    events = _events(settings, ours)
    kinds = _kinds(events)
    assert sorted(kinds.values()) == sorted(
        ["OrderPlaced", "OrderPlaced", "PaymentAuthorized", "PaymentAuthorized",
         "PaymentCaptured", "OrderFulfilled", "PaymentRefunded", "OrderRefunded",
         "OrderCancelled"]
    )  # fmt: skip
    shipped = next(e for e in events if e["event"][0] == "erpbridge.OrderFulfilled")["event"][1]
    assert (shipped["fulfillment_id"], shipped["warehouse_id"], shipped["tracking_number"]) == (
        by_hand,
        WAREHOUSE,
        "1ZPOLL0001",
    )
    assert shipped["lines"] == [{"sku": first, "quantity": 2}]
    refunded = next(e for e in events if e["event"][0] == "erpbridge.PaymentRefunded")
    assert (refunded["order_id"], refunded["event"][1]["amount"]) == (kept["id"], Decimal(5))
    # Money alone back, no return: the order's refund of no units, with the payment's id.
    credited = next(e for e in events if e["event"][0] == "erpbridge.OrderRefunded")["event"][1]
    assert (credited["refund_id"], credited["total"], credited["lines"], credited["restock"]) == (
        refunded["event"][1]["refund_id"], Decimal(5), [], False
    )  # fmt: skip
    cancelled = next(e for e in events if e["event"][0] == "erpbridge.OrderCancelled")
    assert cancelled["order_id"] == dropped["id"]
    # What was published again (the orders were read whole) is its first copy, byte for byte.
    first_copy: dict[str, dict[str, Any]] = {}
    for event in events:
        first = first_copy.setdefault(event["event_id"], event)
        assert first == event, {
            k: (v, event["event"][1].get(k))
            for k, v in first["event"][1].items()
            if v != event["event"][1].get(k)
        }

    # Nothing changed: nothing read; the watermark says where the next poll starts.
    assert "shop: 0 orders read, 0 events published" in _poll(settings)
    topics = TopicCatalog.from_settings(settings)
    (watermark,) = {m.key(): m.value() for m in read_all(settings, topics.physical(POLL_WATERMARKS))}.items()  # fmt: skip
    assert watermark[0] == b"shop"
    assert datetime.fromisoformat(json.loads(watermark[1])["orders"]["start"]) >= datetime.fromisoformat(since)  # fmt: skip


def test_returns_received_and_refunded_reach_commerce_orders_as_refunds_with_their_units(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, medusa: Medusa
) -> None:
    settings = _settings(kafka_broker, topic_prefix, tmp_path, medusa)
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    first, second = FIRST.code, SECOND.code
    order = medusa.checkout(
        {medusa.variants[first].variant_id: 3, medusa.variants[second].variant_id: 1},
        CUSTOMER.email,
        address(CUSTOMER),
    )
    payment = payment_id(medusa, order["id"])
    with medusa.admin() as admin:
        admin.post(f"/admin/payments/{payment}/capture", {})
    _ship(medusa, order["id"], first, 3, "1ZPOLL0004", None)
    _ship(medusa, order["id"], second, 1, "1ZPOLL0005", None)
    # Two units of the first back, one damaged, refunded; then the second SKU back, refunded.
    receive_return(medusa, order["id"], first, 1, 1)
    price = Decimal(FIRST.price("USD"))
    with medusa.admin() as admin:
        one = admin.post(f"/admin/payments/{payment}/refund", {"amount": float(2 * price)},
                         {"fields": "id,*refunds"})["payment"]["refunds"]  # fmt: skip
    _poll(settings, "--since", since)
    receive_return(medusa, order["id"], second, 1, 0)
    with medusa.admin() as admin:
        both = admin.post(f"/admin/payments/{payment}/refund", {"amount": 5},
                          {"fields": "id,*refunds"})["payment"]["refunds"]  # fmt: skip
    (later,) = [r for r in both if r["id"] not in {r["id"] for r in one}]
    _poll(settings)

    # The order was read by both polls: each refund was published again as its first copy.
    copies = [
        (e["event_id"], e["event"][1])
        for e in _events(settings, {order["id"]})
        if e["event"][0] == "erpbridge.OrderRefunded"
    ]
    refunds = {body["refund_id"]: (event_id, body) for event_id, body in copies}
    assert len(refunds) == 2
    assert all(refunds[body["refund_id"]] == (event_id, body) for event_id, body in copies)
    (earlier,) = one
    event_id, body = refunds[earlier["id"]]
    assert event_id == f"medusa:order-refund:{earlier['id']}"
    # The damaged unit stays out of stock; the sound one goes back to the return's warehouse.
    assert (body["kind"], body["restock"], body["warehouse_id"], body["total"]) == (
        "RETURN", True, WAREHOUSE, 2 * price
    )  # fmt: skip
    assert body["lines"] == [{"sku": first, "quantity": 1, "amount": 2 * price}]
    _, body = refunds[later["id"]]
    assert (body["restock"], body["lines"]) == (
        True, [{"sku": second, "quantity": 1, "amount": Decimal(5)}]
    )  # fmt: skip


def test_a_shipment_from_an_unmapped_location_is_dead_lettered_then_published_when_mapped(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, medusa: Medusa
) -> None:
    unmapped = _settings(kafka_broker, topic_prefix, tmp_path, medusa, warehouses=False)
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    order = medusa.checkout(
        {medusa.variants[SECOND.code].variant_id: 1}, CUSTOMER.email, address(CUSTOMER)
    )
    fulfillment = _ship(medusa, order["id"], SECOND.code, 1, "1ZPOLL0003", None)

    output = _poll(unmapped, "--since", since)
    assert "2 events published, 1 dead letter" in output, output
    assert sorted(_kinds(_events(unmapped, {order["id"]})).values()) == [
        "OrderPlaced",
        "PaymentAuthorized",
    ]
    topics = TopicCatalog.from_settings(unmapped)
    (letter,) = [
        m
        for m in read_all(unmapped, topics.physical(WEBHOOKS_DLQ))
        if dict(m.headers() or []).get("medusa-order-id") == order["id"].encode()
    ]
    said = deadletter.describe(letter.headers() or [])
    assert said[deadletter.REASON] == "unmapped-location"
    assert fulfillment in said[deadletter.ERROR]
    assert medusa.stock_location_id in said[deadletter.ERROR]
    assert json.loads(letter.value())["order"]["id"] == order["id"]

    # The route gains its warehouse: read again from before the order, the shipment lands
    # and what was published before is the same events again.
    mapped = unmapped.model_copy(
        update={
            "webhook_routes": {
                "shop": unmapped.webhook_routes["shop"].model_copy(
                    update={"warehouses": {medusa.stock_location_id: WAREHOUSE}}
                )
            }
        }
    )
    output = _poll(mapped, "--since", since)
    assert "3 events published" in output and "dead letter" not in output, output
    kinds = _kinds(_events(mapped, {order["id"]}))
    assert sorted(kinds.values()) == ["OrderFulfilled", "OrderPlaced", "PaymentAuthorized"]
    assert kinds[f"medusa:fulfillment:{fulfillment}"] == "OrderFulfilled"


def test_a_customer_reaches_commerce_customers_once_as_its_account(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, medusa: Medusa
) -> None:
    settings = _settings(kafka_broker, topic_prefix, tmp_path, medusa)
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    first, last = CUSTOMER.name.split(" ", 1)
    email = f"{uuid.uuid4().hex[:12]}@example.com"
    # An account erpbridge's storefront sink made for an ERP customer: marked, its address
    # added after it.
    with medusa.admin() as admin:
        made = admin.post(
            "/admin/customers",
            {"email": email, "first_name": first, "last_name": last,
             "metadata": {CUSTOMER_MARK: "CUS-POLL-1"}},
            {"fields": "id"},
        )["customer"]  # fmt: skip
        admin.post(f"/admin/customers/{made['id']}/addresses", address(CUSTOMER), {"fields": "id"})
    key = f"shop:{made['id']}"
    topics = TopicCatalog.from_settings(settings)

    _poll(settings, "--since", since)
    (account,) = [datum for k, datum in stored(settings, topics, CUSTOMERS) if k == key]
    assert (account["account"], account["source"]) == (key, "medusa")
    place = CUSTOMER.address
    assert account["event"] == {
        "storefront": "shop", "account_id": made["id"], "email": email, "name": CUSTOMER.name,
        "phone": None,
        "addresses": [{"name": None, "street": place.line1, "city": place.city,
                       "region": f"{place.country}-{place.region}",
                       "postal_code": place.postal_code, "country": place.country}],
        "erp_customer_id": "CUS-POLL-1",
    }  # fmt: skip

    # Read again from the watermark, whose customers' cursor holds it as read: unchanged, the
    # customer is not published again.
    _poll(settings)
    assert [k for k, _ in stored(settings, topics, CUSTOMERS) if k == key] == [key]
    newest = read_all(settings, topics.physical(POLL_WATERMARKS))[-1].value()
    assert newest is not None
    assert made["id"] in json.loads(newest)["customers"]["seen"]

    # An address added, then one changed: Medusa moves no customer's updated_at for either,
    # so the poll's address sweep (each --once poll sweeps) finds them.
    def published() -> list[dict[str, Any]]:
        return [datum for k, datum in stored(settings, topics, CUSTOMERS) if k == key]

    office = {**address(CUSTOMER), "address_1": "2 Office Park", "city": "Albany"}
    path = f"/admin/customers/{made['id']}"
    with medusa.admin() as admin:
        before = admin.get(path, {"fields": "updated_at"})["customer"]["updated_at"]
        added = admin.post(f"{path}/addresses", office, {"fields": "id,*addresses"})["customer"][
            "addresses"
        ]
        assert admin.get(path, {"fields": "updated_at"})["customer"]["updated_at"] == before
    _poll(settings)
    streets = [[a["street"] for a in d["event"]["addresses"]] for d in published()]
    assert streets[1:] == [[place.line1, "2 Office Park"]], streets
    (office_id,) = [a["id"] for a in added if a["address_1"] == "2 Office Park"]
    with medusa.admin() as admin:
        admin.post(f"{path}/addresses/{office_id}",
                   {"address_1": "3 Office Park"}, {"fields": "id"})  # fmt: skip
    _poll(settings)
    _poll(settings)  # nothing new: each change once
    changes = published()
    assert [sorted(a["street"] for a in d["event"]["addresses"]) for d in changes[2:]] == [
        sorted([place.line1, "3 Office Park"])
    ]
    assert len({d["event_id"] for d in changes}) == len(changes) == 3
