"""A Medusa order, shaped as its Admin API serves it with ORDER_FIELDS (the live store's
answers in test_poll.py), to input events, part by part; a customer to its account; the
poll's cursors."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from connectors.storefront.customers import MARK as CUSTOMER_MARK
from connectors.webhooks.medusa.admin import Changed
from connectors.webhooks.medusa.mapping import MARK, Part, parts
from connectors.webhooks.medusa.mapping import account as account_part
from connectors.webhooks.medusa.poll import Cursor, Watermark
from connectors.webhooks.references import References
from tests.connectors.webhooks.vendor import assert_fits_schema

REFERENCES = References({"sloc_1": "WH-WEST"}, channel="web", route="shop")
ADDRESS = {"first_name": "Ava", "last_name": "Thompson", "address_1": "350 S Grand Ave",
           "address_2": None, "city": "Los Angeles", "country_code": "us",
           "province": "us-ca", "postal_code": "90071"}  # fmt: skip
ORDER: dict[str, Any] = {
    "id": "order_1", "status": "pending", "email": "ava@example.com", "currency_code": "usd",
    "created_at": "2026-12-07T04:09:05.066Z", "updated_at": "2026-12-07T04:09:05.066Z",
    "canceled_at": None, "total": Decimal("83.95"), "customer_id": "cus_1",
    "shipping_address": ADDRESS, "billing_address": ADDRESS,
    "items": [
        {"id": "ordli_1", "variant_sku": "SKU-0001", "quantity": 2, "unit_price": 24,
         "discount_total": Decimal("4.8"),
         "tax_lines": [{"code": "US-CA", "rate": Decimal("7.25"), "total": Decimal("3.13")}]},
        {"id": "ordli_2", "variant_sku": "SKU-0002", "quantity": 1, "unit_price": 29,
         "discount_total": 0, "tax_lines": []},
    ],
    "shipping_methods": [
        {"name": "Standard", "amount": Decimal("6.95"), "discount_total": 0, "tax_lines": []}
    ],
    "payment_collections": [{"payments": [{
        "id": "pay_1", "amount": Decimal("86.28"), "currency_code": "usd",
        "provider_id": "pp_system_default", "created_at": "2026-12-07T04:09:05.328Z",
        "captures": [{"id": "capt_1", "amount": Decimal("86.28"),
                      "created_at": "2026-12-07T04:10:00.000Z"}],
        "refunds": [{"id": "ref_1", "amount": 5, "created_at": "2026-12-07T04:11:00.000Z"}],
    }]}],
    "fulfillments": [
        {"id": "ful_1", "location_id": "sloc_1", "shipped_at": "2026-12-07T05:00:00.000Z",
         "canceled_at": None, "metadata": None,
         "items": [{"id": "fulit_1", "line_item_id": "ordli_1", "quantity": 2}],
         "labels": [{"tracking_number": "1Z1"}]},
        # Made by erpbridge (the storefront sink): no news.
        {"id": "ful_2", "location_id": "sloc_1", "shipped_at": "2026-12-07T05:01:00.000Z",
         "canceled_at": None, "metadata": {MARK: "FUL-9"},
         "items": [{"id": "fulit_2", "line_item_id": "ordli_2", "quantity": 1}], "labels": []},
        # Packed, not shipped yet.
        {"id": "ful_3", "location_id": "sloc_1", "shipped_at": None, "canceled_at": None,
         "items": [{"id": "fulit_3", "line_item_id": "ordli_2", "quantity": 1}], "labels": []},
    ],
}  # fmt: skip


def _by_name(found: list[Part]) -> dict[str, Part]:
    return {part.name: part for part in found}


def test_each_thing_the_order_says_happened_is_a_part_with_medusas_ids() -> None:
    found = _by_name(parts(ORDER, REFERENCES))
    assert list(found) == ["placed", "payment pay_1", "refund ref_1", "fulfillment ful_1"]
    assert all(part.problem is None for part in found.values())
    (placed,) = found["placed"].inputs
    assert (placed.topic, placed.key, placed.event_id, placed.occurred_at) == (
        "commerce.orders", "order_1", "medusa:order:order_1", "2026-12-07T04:09:05.066Z"
    )  # fmt: skip
    event = placed.record["event"]
    assert event["customer"] == {"customer_id": "cus_1", "email": "ava@example.com",
                                 "name": "Ava Thompson"}  # fmt: skip
    assert event["ship_to"] == {"name": "Ava Thompson", "line1": "350 S Grand Ave", "line2": None,
                                "city": "Los Angeles", "region": "CA", "postal_code": "90071",
                                "country": "US"}  # fmt: skip
    assert (event["storefront"], event["channel"], event["currency"]) == ("shop", "web", "USD")
    assert event["lines"][0] == {"line_id": "ordli_1", "sku": "SKU-0001", "quantity": 2,
                                 "unit_price": "24", "discount": "4.8",
                                 "tax_lines": [{"jurisdiction": "US-CA", "rate": "0.0725",
                                                "amount": "3.13"}]}  # fmt: skip
    assert event["shipping"] == {"method": "Standard", "amount": "6.95", "tax_lines": []}
    # 48 - 4.80 + 3.13 + 29 + 6.95
    assert Decimal(event["total"]) == Decimal("82.28")

    kinds = [
        (i.topic, i.event_id, i.record["event"]["type"]) for i in found["payment pay_1"].inputs
    ]
    assert kinds == [
        ("commerce.payments", "medusa:payment:pay_1", "PaymentAuthorized"),
        ("commerce.payments", "medusa:capture:capt_1", "PaymentCaptured"),
        ("commerce.payments", "medusa:refund:ref_1", "PaymentRefunded"),
    ]
    refund = found["payment pay_1"].inputs[2].record["event"]
    assert (refund["payment_id"], refund["refund_id"], refund["amount"]) == ("pay_1", "ref_1", "5")

    # Money alone back (no return received before it): a refund of no units.
    (money_back,) = found["refund ref_1"].inputs
    assert (money_back.topic, money_back.key, money_back.event_id) == (
        "commerce.orders", "order_1", "medusa:order-refund:ref_1"
    )  # fmt: skip
    assert money_back.record["event"] == {"type": "OrderRefunded", "refund_id": "ref_1",
                                          "kind": "REFUND", "currency": "USD", "lines": [],
                                          "shipping_amount": None, "total": "5",
                                          "restock": False, "warehouse_id": None}  # fmt: skip

    (shipped,) = found["fulfillment ful_1"].inputs
    assert shipped.record["event"] == {"type": "OrderFulfilled", "fulfillment_id": "ful_1",
                                       "warehouse_id": "WH-WEST",
                                       "lines": [{"sku": "SKU-0001", "quantity": 2}],
                                       "carrier": None, "tracking_number": "1Z1"}  # fmt: skip
    assert shipped.occurred_at == "2026-12-07T05:00:00.000Z"


def test_a_cancelled_guest_order_and_what_it_changes_nothing_of() -> None:
    order = copy.deepcopy(ORDER)
    order.update(status="canceled", canceled_at="2026-12-08T00:00:00.000Z", customer_id=None,
                 total=Decimal("0"))  # fmt: skip
    found = _by_name(parts(order, REFERENCES))
    (cancelled,) = found["cancelled"].inputs
    assert (cancelled.event_id, cancelled.record["event"]) == (
        "medusa:cancel:order_1", {"type": "OrderCancelled", "reason": None}
    )  # fmt: skip
    placed = found["placed"].inputs[0].record["event"]
    assert placed["customer"]["customer_id"] == "guest:ava@example.com"
    # Medusa's own total moves with refunds and cancellations; the placement stays its first copy.
    assert placed == parts(ORDER, REFERENCES)[0].inputs[0].record["event"] | {
        "customer": placed["customer"]
    }


def _receipt(receipt_id: str, confirmed_at: str, *received: tuple[str, int, int]) -> dict[str, Any]:
    """A return receipt as Medusa serves it (an order change): per line item id, the units
    received and of those the damaged ones."""
    actions = [
        {"action": action, "details": {"reference_id": item_id, "quantity": quantity}}
        for item_id, whole, damaged in received
        for action, quantity in (("RECEIVE_RETURN_ITEM", whole - damaged),
                                 ("RECEIVE_DAMAGED_RETURN_ITEM", damaged))
        if quantity
    ]  # fmt: skip
    # Each receipt its own return at the mapped location.
    return {"id": receipt_id, "return_id": f"return_{receipt_id}", "confirmed_at": confirmed_at,
            "actions": [*actions, {"action": "RETURN_ITEM", "details": {}}]}  # fmt: skip


def _returns(*receipts: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"id": r["return_id"], "location_id": "sloc_1"} for r in receipts]


def _refund(refund_id: str, amount: str, created_at: str) -> dict[str, Any]:
    return {"id": refund_id, "amount": Decimal(amount), "created_at": created_at}


def test_a_refund_takes_back_the_units_of_the_returns_received_since_the_refund_before_it() -> None:
    order = copy.deepcopy(ORDER)
    payment = order["payment_collections"][0]["payments"][0]
    # ref_1 (04:11) gives money alone back; a receipt of both SKUs, ref_2 for it; a receipt
    # of one sound and one damaged unit, ref_3; one of a damaged unit alone, ref_4.
    payment["refunds"] += [_refund("ref_2", "52.28", "2026-12-07T06:00:00.000Z"),
                           _refund("ref_4", "10", "2026-12-07T09:00:00.000Z"),
                           _refund("ref_3", "20", "2026-12-07T08:00:00.000Z")]  # fmt: skip
    receipts = [
        _receipt("rc_1", "2026-12-07T05:30:00.000Z", ("ordli_1", 1, 0), ("ordli_2", 1, 0)),
        _receipt("rc_2", "2026-12-07T07:00:00.000Z", ("ordli_1", 1, 1), ("ordli_2", 1, 0)),
        _receipt("rc_3", "2026-12-07T08:30:00.000Z", ("ordli_1", 1, 1)),
    ]
    order["returns"] = _returns(*receipts)
    found = _by_name(parts(order, REFERENCES, receipts))
    assert all(part.problem is None for part in found.values()), found
    events = {
        name: found[name].inputs[0].record["event"]
        for name in ("refund ref_1", "refund ref_2", "refund ref_3", "refund ref_4")
    }
    assert events["refund ref_1"]["lines"] == []
    both = events["refund ref_2"]
    assert (both["kind"], both["restock"], both["warehouse_id"]) == ("RETURN", True, "WH-WEST")
    # 52.28 over one unit of each, as the order charged for them: (48 - 4.80 + 3.13) / 2 =
    # 23.165 against 29.
    assert both["lines"] == [{"sku": "SKU-0001", "quantity": 1, "amount": "23.22"},
                             {"sku": "SKU-0002", "quantity": 1, "amount": "29.06"}]  # fmt: skip
    assert sum(Decimal(line["amount"]) for line in both["lines"]) == Decimal(both["total"])
    # The sound unit is restocked; the damaged one stays out of stock.
    mixed = events["refund ref_3"]
    assert (mixed["restock"], mixed["lines"]) == (
        True, [{"sku": "SKU-0002", "quantity": 1, "amount": "20.00"}]
    )  # fmt: skip
    # Nothing sellable came back: the damaged unit is named, not restocked.
    damaged = events["refund ref_4"]
    assert (damaged["kind"], damaged["restock"], damaged["warehouse_id"]) == (
        "RETURN", False, None
    )  # fmt: skip
    assert damaged["lines"] == [{"sku": "SKU-0001", "quantity": 1, "amount": "10.00"}]
    # Read again with a later receipt and refund, each earlier refund maps as it first did.
    payment["refunds"].append(_refund("ref_5", "1", "2026-12-07T10:00:00.000Z"))
    receipts.append(_receipt("rc_4", "2026-12-07T09:30:00.000Z", ("ordli_2", 1, 0)))
    order["returns"] = _returns(*receipts)
    again = _by_name(parts(order, REFERENCES, receipts))
    for name, event in events.items():
        assert again[name].inputs[0].record["event"] == event
    assert again["refund ref_5"].inputs[0].record["event"]["lines"] == [
        {"sku": "SKU-0002", "quantity": 1, "amount": "1.00"}
    ]
    for part in again.values():
        for made in part.inputs:
            assert_fits_schema(made.record, made.topic)
    # A receipt of a unit the order does not have: that refund alone cannot be mapped.
    receipts.append(_receipt("rc_5", "2026-12-07T09:45:00.000Z", ("ordli_9", 1, 0)))
    unknown = _by_name(parts(order, REFERENCES, receipts))
    problem = unknown["refund ref_5"].problem
    assert problem is not None and problem.reason == "missing-sku"
    assert "rc_5" in problem.detail
    assert [name for name, part in unknown.items() if part.problem] == ["refund ref_5"]


@pytest.mark.parametrize(
    ("change", "part", "reason", "named"),
    [
        (lambda o: o["items"][1].update(variant_sku=None), "placed", "missing-sku", "ordli_2"),
        (lambda o: o["shipping_address"].update(city=None), "placed", "missing-address", "city"),
        (lambda o: o.update(currency_code="xyz"), "placed", "unknown-currency", "currency_code"),
        (lambda o: o["fulfillments"][0].update(location_id="sloc_9"), "fulfillment ful_1",
         "unmapped-location", "sloc_9"),
        (lambda o: o["payment_collections"][0]["payments"][0]["refunds"][0].update(
            amount=Decimal("5.001")), "refund ref_1", "invalid-amount", "5.001"),
        (lambda o: o["payment_collections"][0]["payments"][0]["captures"][0].update(amount="x"),
         "payment pay_1", "invalid-amount", "capt_1"),
    ],
)  # fmt: skip
def test_a_part_that_cannot_be_mapped_says_why_and_the_others_still_map(
    change: Any, part: str, reason: str, named: str
) -> None:
    order = copy.deepcopy(ORDER)
    change(order)
    found = _by_name(parts(order, REFERENCES))
    problem = found[part].problem
    assert problem is not None and problem.reason == reason and named in problem.detail
    assert found[part].inputs == ()
    assert all(p.problem is None and p.inputs for name, p in found.items() if name != part)


def test_a_cursor_skips_what_it_read_unchanged_within_the_overlap_and_survives_json() -> None:
    t0 = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)
    overlap = timedelta(seconds=60)
    cursor = Cursor(t0)
    rows = [
        Changed("a", t0 + timedelta(seconds=10), "a"),
        Changed("b", t0 + timedelta(seconds=90), "b"),
    ]
    assert cursor.fresh(rows) == rows
    after = cursor.after(rows, overlap)
    # Read next from 60 s before the newest; "a" is older than that and forgotten.
    assert (after.start, dict(after.seen)) == (
        t0 + timedelta(seconds=30),
        {"b": rows[1].updated_at},
    )
    changed_b = Changed("b", t0 + timedelta(seconds=95), "b")
    late = Changed("c", t0 + timedelta(seconds=40), "c")  # committed late, with an earlier time
    assert after.fresh([rows[1], late, changed_b]) == [late, changed_b]
    assert after.after([], overlap) == after
    watermark = Watermark(after, Cursor(t0), Cursor(t0), Cursor(t0, {"cus_1": t0}))
    assert Watermark.from_json(watermark.to_json()) == watermark


def test_a_watermark_from_before_customers_were_polled_starts_them_where_its_orders_are() -> None:
    t0 = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)
    orders = Cursor(t0, {"order_1": t0})
    old = json.dumps({"orders": orders.to_json(), "payments": Cursor(t0).to_json()}).encode()
    assert Watermark.from_json(old) == Watermark(orders, Cursor(t0), Cursor(t0), Cursor(t0))
    # One from before addresses were swept starts them where its customers are.
    t1 = t0 + timedelta(hours=1)
    customers = Cursor(t1, {"cus_1": t1})
    older = json.dumps({"orders": orders.to_json(), "payments": Cursor(t0).to_json(),
                        "customers": customers.to_json()}).encode()  # fmt: skip
    assert Watermark.from_json(older) == Watermark(orders, Cursor(t0), customers, Cursor(t1))


CUSTOMER: dict[str, Any] = {
    "id": "cus_1", "email": "ava@example.com", "first_name": "Ava", "last_name": "Thompson",
    "phone": "+12135550100", "updated_at": "2026-12-07T04:00:00.000Z",
    "metadata": {CUSTOMER_MARK: "CUS-0001"},
    "addresses": [
        {"id": "cuaddr_2", "first_name": "Sam", "last_name": "Lee", "address_1": "1 Main St",
         "address_2": None, "city": "Albany", "province": "NY", "postal_code": "12207",
         "country_code": "us", "is_default_shipping": False, "is_default_billing": False,
         "updated_at": "2026-12-07T04:00:00.000Z"},
        {**ADDRESS, "id": "cuaddr_1", "address_2": "Suite 100", "is_default_shipping": True,
         "is_default_billing": True, "updated_at": "2026-12-07T04:05:00.000Z"},
    ],
}  # fmt: skip
"""A customer as `GET /admin/customers/<id>` serves it with CUSTOMER_FIELDS (the live store's
answer in test_poll.py), marked by erpbridge's storefront sink, with an address added later."""


def test_a_customer_is_its_account_as_of_its_newest_change() -> None:
    (account,) = account_part(CUSTOMER, REFERENCES).inputs
    # Adding the address did not move the customer's updated_at: the address's time names it.
    assert (account.topic, account.key, account.event_id, account.occurred_at) == (
        "commerce.customers", "shop:cus_1", "medusa:customer:cus_1:2026-12-07T04:05:00.000Z",
        "2026-12-07T04:05:00.000Z",
    )  # fmt: skip
    assert account.record["event"] == {
        "storefront": "shop", "account_id": "cus_1", "email": "ava@example.com",
        "name": "Ava Thompson", "phone": "+12135550100",
        "addresses": [
            {"name": None, "street": "350 S Grand Ave\nSuite 100", "city": "Los Angeles",
             "region": "US-CA", "postal_code": "90071", "country": "US"},
            {"name": "Sam Lee", "street": "1 Main St", "city": "Albany", "region": "US-NY",
             "postal_code": "12207", "country": "US"},
        ],
        "erp_customer_id": "CUS-0001",
    }  # fmt: skip
    assert_fits_schema(account.record, account.topic)


def test_a_guests_customer_is_an_unmarked_account_of_its_email_alone() -> None:
    # What a checkout leaves: a customer of the email, nothing else.
    guest: dict[str, Any] = {"id": "cus_2", "email": "guest@example.com", "first_name": None, "last_name": None,
             "phone": None, "updated_at": "2026-12-07T04:09:05.066Z", "metadata": None,
             "addresses": []}  # fmt: skip
    (account,) = account_part(guest, REFERENCES).inputs
    assert account.record["event"] == {
        "storefront": "shop", "account_id": "cus_2", "email": "guest@example.com", "name": None,
        "phone": None, "addresses": [], "erp_customer_id": None,
    }  # fmt: skip
    missing = account_part(guest | {"id": None}, REFERENCES)
    assert missing.problem is not None and missing.problem.detail == "id is missing"
