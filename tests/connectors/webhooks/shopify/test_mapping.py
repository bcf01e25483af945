"""Shopify's own sample payloads to erpbridge's input events, written out by hand."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest

from connectors.webhooks.inputs import UnknownTopic, Unmappable
from connectors.webhooks.references import References
from connectors.webhooks.shopify.mapping import inputs
from streams.contracts.topics import CUSTOMERS, INVENTORY, ORDERS, PAYMENTS
from tests.connectors.webhooks.vendor import assert_fits_schema, shopify, shopify_transaction

REFERENCES = References(
    warehouses={"905684977": "WH-EAST", "487838322": "WH-WEST"},
    skus={"808950810": "IPOD2008GREEN"},
    route="main",
)
BOB = {"name": "Bob Norman", "line1": "Chestnut Street 92", "line2": None, "city": "Louisville",
       "region": "KY", "postal_code": "40202", "country": "US"}  # fmt: skip


def _one(topic: str, body: dict[str, Any], event_id: str = "evt-1") -> dict[str, Any]:
    (found,) = inputs(topic, event_id, body, REFERENCES)
    assert_fits_schema(found.record, found.topic)
    return {"topic": found.topic, "key": found.key, **found.record}


_LINE = {"quantity": 1, "unit_price": "199.00", "discount": "0.00", "tax_lines": []}
ORDER_1001_EVENT_ID = "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
ORDER_1001 = {
    "event_id": f"shopify:{ORDER_1001_EVENT_ID}",
    "occurred_at": "2008-01-10T11:00:00-05:00",
    "source": "shopify",
    "order_id": "450789469",
    "event": {
        "type": "OrderPlaced",
        "currency": "USD",
        "customer": {"customer_id": "207119551", "email": "bob.norman@hostmail.com",
                     "name": "Bob Norman"},
        "ship_to": BOB,
        "bill_to": BOB,
        "channel": "web",
        "storefront": "main",
        "lines": [
            {"line_id": "466157049", "sku": "IPOD2008GREEN", **_LINE},
            {"line_id": "518995019", "sku": "IPOD2008RED", **_LINE},
            {"line_id": "703073504", "sku": "IPOD2008BLACK", **_LINE},
        ],
        "discounts": [{"code": "TENOFF", "description": None, "amount": "10.00"}],
        "shipping": {"method": "Free Shipping", "amount": "0.00", "tax_lines": []},
        "total": "409.94",
    },
}  # fmt: skip
"""Order #1001 as erpbridge's OrderPlaced. The fixture's lines carry no tax lines of their
own (its 11.94 tax is order level only), and its total_price is what Shopify says, not
recomputed."""


def test_order_1001_is_placed_with_its_three_skus_and_discount_code() -> None:
    order = _one("orders/create", shopify("order.json"), ORDER_1001_EVENT_ID)
    assert order == {"topic": ORDERS, "key": "450789469", **ORDER_1001}


def test_line_taxes_are_named_by_where_the_order_ships() -> None:
    order = shopify("order.json")
    # As the service parses it: the JSON number 0.06 as a Decimal.
    tax = {"price": "11.94", "rate": Decimal("0.06"), "title": "State Tax"}
    order["line_items"][0]["tax_lines"] = [tax]
    lines = _one("orders/create", order)["event"]["lines"]
    assert lines[0]["tax_lines"] == [{"jurisdiction": "US-KY", "rate": "0.06", "amount": "11.94"}]


def test_allocated_discounts_are_on_the_lines_and_not_counted_again() -> None:
    order = shopify("order.json")
    order["line_items"][0]["discount_allocations"] = [
        {"amount": "10.00", "discount_application_index": 0}
    ]
    event = _one("orders/create", order)["event"]
    assert event["lines"][0]["discount"] == "10.00"
    assert event["discounts"] == []


def test_cancelled_order() -> None:
    order = shopify("order.json")
    order |= {"cancelled_at": "2008-01-10T12:00:00-05:00", "cancel_reason": "customer"}
    assert _one("orders/cancelled", order) == {
        "topic": ORDERS, "key": "450789469", "event_id": "shopify:evt-1",
        "occurred_at": "2008-01-10T12:00:00-05:00", "source": "shopify", "order_id": "450789469",
        "event": {"type": "OrderCancelled", "reason": "customer"},
    }  # fmt: skip


def test_fulfilment_with_carrier_and_tracking_at_its_mapped_location() -> None:
    fulfillment = shopify("fulfillment.json") | {"location_id": 905684977}
    assert _one("fulfillments/create", fulfillment) == {
        "topic": ORDERS, "key": "450789469", "event_id": "shopify:evt-1",
        "occurred_at": "2013-11-01T16:06:08-04:00", "source": "shopify", "order_id": "450789469",
        "event": {"type": "OrderFulfilled", "fulfillment_id": "255858046",
                  "warehouse_id": "WH-EAST", "lines": [{"sku": "IPOD2008GREEN", "quantity": 1}],
                  "carrier": "null-company", "tracking_number": "1Z2345"},
    }  # fmt: skip


def test_fulfilment_without_a_location_is_unmappable_naming_it() -> None:
    # The fixture predates fulfilments naming their location: no warehouse is guessed.
    with pytest.raises(Unmappable, match="fulfillment 255858046 names no location"):
        inputs("fulfillments/create", "evt-1", shopify("fulfillment.json"), REFERENCES)


def test_fulfilment_at_an_unmapped_location_names_the_location() -> None:
    fulfillment = shopify("fulfillment.json") | {"location_id": 123456}
    with pytest.raises(Unmappable, match="location 123456 has no warehouse") as raised:
        inputs("fulfillments/create", "evt-1", fulfillment, REFERENCES)
    assert raised.value.reason == "unmapped-location"


def test_refund_with_restock_returns_two_lines_and_209_00() -> None:
    # Each line: 199.00 plus its 3.98 tax; the total is what the refund transaction moved.
    assert _one("refunds/create", shopify("refund.json")) == {
        "topic": ORDERS, "key": "450789469", "event_id": "shopify:evt-1",
        "occurred_at": "2016-06-20T13:35:06-04:00", "source": "shopify", "order_id": "450789469",
        "event": {"type": "OrderRefunded", "refund_id": "509562969", "kind": "RETURN",
                  "currency": "USD",
                  "lines": [{"sku": "IPOD2008BLACK", "quantity": 1, "amount": "202.98"},
                            {"sku": "IPOD2008GREEN", "quantity": 1, "amount": "202.98"}],
                  "shipping_amount": None, "total": "209.00", "restock": True,
                  "warehouse_id": None},
    }  # fmt: skip


def test_refunded_shipping_and_restock_location() -> None:
    refund = shopify("refund.json")
    refund["order_adjustments"] = [{"kind": "shipping_refund", "amount": "-5.00"}]
    refund["refund_line_items"][0] |= {"location_id": 487838322, "subtotal": "199.00",
                                       "total_tax": "3.98"}  # fmt: skip
    event = _one("refunds/create", refund)["event"]
    assert (event["shipping_amount"], event["warehouse_id"]) == ("5.00", "WH-WEST")


def test_authorisation_transaction() -> None:
    # The REST fixture has no currency; a webhook's transaction does.
    transaction = shopify_transaction() | {"currency": "USD"}
    assert _one("order_transactions/create", transaction) == {
        "topic": PAYMENTS, "key": "450789469", "event_id": "shopify:evt-1",
        "occurred_at": "2005-08-01T11:57:11-04:00", "source": "shopify", "order_id": "450789469",
        "event": {"type": "PaymentAuthorized", "payment_id": "389404469", "gateway": "bogus",
                  "amount": "409.94", "currency": "USD", "method": "card"},
    }  # fmt: skip


def test_a_transaction_without_currency_is_unmappable() -> None:
    with pytest.raises(Unmappable, match="currency is missing"):
        inputs("order_transactions/create", "evt-1", shopify_transaction(), REFERENCES)


def test_capture_refund_and_failure_draw_on_the_authorisation() -> None:
    base = shopify_transaction() | {"currency": "USD", "parent_id": 389404469}
    capture = _one("order_transactions/create", base | {"kind": "capture", "id": 1})["event"]
    refund = _one("order_transactions/create", base | {"kind": "refund", "id": 2})["event"]
    failed = _one(
        "order_transactions/create",
        base | {"kind": "capture", "id": 3, "status": "failure", "error_code": "card_declined"},
    )["event"]
    assert capture == {"type": "PaymentCaptured", "payment_id": "389404469", "gateway": "bogus",
                       "amount": "409.94", "currency": "USD"}  # fmt: skip
    assert refund == {"type": "PaymentRefunded", "payment_id": "389404469", "gateway": "bogus",
                      "refund_id": "2", "amount": "409.94", "currency": "USD"}  # fmt: skip
    assert failed == {"type": "PaymentFailed", "payment_id": "389404469", "gateway": "bogus",
                      "amount": "409.94", "currency": "USD", "operation": "CAPTURE",
                      "reason": "card_declined"}  # fmt: skip


def test_a_pending_transaction_is_nothing_yet() -> None:
    pending = shopify_transaction() | {"currency": "USD", "status": "pending"}
    assert inputs("order_transactions/create", "evt-1", pending, REFERENCES) == []


def test_inventory_level_is_a_snapshot_at_the_mapped_warehouse() -> None:
    assert _one("inventory_levels/update", shopify("inventory_level.json")) == {
        "topic": INVENTORY, "key": "IPOD2008GREEN", "event_id": "shopify:evt-1",
        "occurred_at": "2018-05-07T15:51:26-04:00", "source": "shopify", "sku": "IPOD2008GREEN",
        "event": {"type": "StockSnapshot", "warehouse_id": "WH-EAST", "on_hand": 6,
                  "as_of": "2018-05-07T15:51:26-04:00"},
    }  # fmt: skip


def test_an_unmapped_inventory_item_is_named() -> None:
    level = shopify("inventory_level.json") | {"inventory_item_id": 42}
    with pytest.raises(Unmappable, match="inventory item 42 has no SKU"):
        inputs("inventory_levels/update", "evt-1", level, REFERENCES)


def test_an_unknown_topic_is_not_ingested() -> None:
    with pytest.raises(UnknownTopic):
        inputs("products/update", "evt-1", shopify("order.json"), REFERENCES)


def test_a_float_never_becomes_money() -> None:
    order = shopify("order.json")
    order["line_items"][0]["price"] = 199.0
    with pytest.raises(Unmappable, match=re.escape("line_items[0].price is 199.0, not a decimal")):
        inputs("orders/create", "evt-1", order, REFERENCES)


def test_a_refund_that_moves_no_money_takes_its_lines_currency() -> None:
    refund = shopify("refund.json") | {"transactions": []}
    for line in refund["refund_line_items"]:
        line["subtotal_set"] = {"shop_money": {"amount": "199.00", "currency_code": "USD"}}
    event = _one("refunds/create", refund)["event"]
    assert (event["currency"], event["total"]) == ("USD", "0.00")
    with pytest.raises(Unmappable, match="refund 509562969 names no single currency"):
        inputs("refunds/create", "evt-1", shopify("refund.json") | {"transactions": []}, REFERENCES)


def _customer_1001(**changes: Any) -> dict[str, Any]:
    """A customers/create body: the customer of order #1001 as the fixture embeds it (the
    REST Customer resource of a payload version before 2025-01, with its `tags`), with the
    `addresses` a customer webhook carries besides its default one."""
    customer: dict[str, Any] = shopify("order.json")["customer"]
    return customer | {"addresses": [customer["default_address"]]} | changes


BOB_ACCOUNT: dict[str, Any] = {
    "topic": CUSTOMERS, "key": "main:207119551", "event_id": "shopify:evt-1",
    "occurred_at": "2014-01-22T15:58:27-05:00", "source": "shopify", "account": "main:207119551",
    "event": {"storefront": "main", "account_id": "207119551", "email": "bob.norman@hostmail.com",
              "name": "Bob Norman", "phone": None,
              "addresses": [{"name": None, "street": "Chestnut Street 92", "city": "Louisville",
                             "region": "US-KY", "postal_code": "40202", "country": "US"}],
              "erp_customer_id": None},
}  # fmt: skip
"""Bob Norman's account: one he opened himself, its tags naming no ERP customer."""


def test_a_customer_the_shopper_opened_is_an_unmarked_account() -> None:
    assert _one("customers/create", _customer_1001()) == BOB_ACCOUNT


def test_an_account_tagged_by_erpbridge_names_its_erp_customer() -> None:
    tagged = _customer_1001(tags="vip, erpbridge-customer-CUST-7", phone="+15025550100")
    account = _one("customers/update", tagged)
    assert account["event"] == BOB_ACCOUNT["event"] | {
        "erp_customer_id": "CUST-7",
        "phone": "+15025550100",
    }


def test_the_default_address_comes_first_and_names_who_receives_there() -> None:
    default = shopify("order.json")["customer"]["default_address"]
    other = default | {"default": False, "first_name": "Ann", "last_name": "Lee",
                       "address1": "151 O'Connor Street", "address2": "Suite 4", "city": "Ottawa",
                       "province_code": "ON", "zip": "K2P 2L8", "country_code": "CA"}  # fmt: skip
    body = _customer_1001(addresses=[other, default])
    assert _one("customers/update", body)["event"]["addresses"] == [
        BOB_ACCOUNT["event"]["addresses"][0],
        {"name": "Ann Lee", "street": "151 O'Connor Street\nSuite 4", "city": "Ottawa",
         "region": "CA-ON", "postal_code": "K2P 2L8", "country": "CA"},
    ]  # fmt: skip


def test_a_customer_without_an_id_is_unmappable_and_one_without_tags_unmarked() -> None:
    with pytest.raises(Unmappable, match="id is missing"):
        inputs("customers/create", "evt-1", _customer_1001(id=None), REFERENCES)
    # Shopify's customer webhooks carry no tags from 2025-01: the ERP then links the account
    # it made by its e-mail (streams.domain.accounts), so it goes unmarked, not dead-lettered.
    untagged = _customer_1001()
    del untagged["tags"]
    event = _one("customers/create", untagged)["event"]
    assert event["erp_customer_id"] is None and event["email"] == BOB_ACCOUNT["event"]["email"]
