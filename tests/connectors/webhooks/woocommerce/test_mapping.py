"""WooCommerce's documented examples (its REST API docs: a webhook body is the resource as
the API serves it) to erpbridge's input events, written out by hand."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.storefront.customers import MARK
from connectors.webhooks.inputs import UnknownTopic, Unmappable
from connectors.webhooks.references import References
from connectors.webhooks.woocommerce.mapping import inputs, refunded_order
from streams.contracts.topics import CUSTOMERS, INVENTORY, ORDERS
from tests.connectors.webhooks.vendor import (
    assert_fits_schema,
    woocommerce,
    woocommerce_listed_order,
)

# The examples' products have no SKUs: the route maps their product ids to SKUs.
REFERENCES = References(
    warehouses={"default": "WH-WEST"},
    skus={"93": "WOO-SINGLE-1", "87": "WOO-ALBUM", "34": "WOO-CAP", "794": "WOO-PREMIUM"},
    route="woo",
)
JOHN = {"name": "John Doe", "line1": "969 Market", "line2": None, "city": "San Francisco",
        "region": "CA", "postal_code": "94103", "country": "US"}  # fmt: skip


def _records(topic: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    found = inputs(topic, body, REFERENCES)
    for item in found:
        assert_fits_schema(item.record, item.topic)
    return [{"topic": item.topic, "key": item.key, **item.record} for item in found]


ORDER_727 = {
        "event_id": "woocommerce:order.created:727",
        "occurred_at": "2017-03-22T19:28:02+00:00", "source": "woocommerce", "order_id": "727",
        "event": {
            "type": "OrderPlaced", "currency": "USD",
            "customer": {"customer_id": "guest:john.doe@example.com",
                         "email": "john.doe@example.com", "name": "John Doe"},
            "ship_to": JOHN, "bill_to": JOHN, "channel": "web", "storefront": "woo",
            "lines": [
                {"line_id": "315", "sku": "WOO-SINGLE-1", "quantity": 2, "unit_price": "3.00",
                 "discount": "0.00",
                 "tax_lines": [{"jurisdiction": "US-CA", "rate": "0.075", "amount": "0.45"}]},
                {"line_id": "316", "sku": "Bar3", "quantity": 1, "unit_price": "12.00",
                 "discount": "0.00",
                 "tax_lines": [{"jurisdiction": "US-CA", "rate": "0.075", "amount": "0.9"}]},
            ],
            "discounts": [],
            "shipping": {"method": "Flat Rate", "amount": "10.00", "tax_lines": []},
            "total": "29.35",
        },
}  # fmt: skip
"""The documented order 727 (a guest's) as erpbridge's OrderPlaced."""


def test_order_727_is_placed() -> None:
    order = woocommerce("_orders.md", "## Retrieve an order ##")
    assert _records("order.created", order) == [{"topic": ORDERS, "key": "727", **ORDER_727}]


def test_a_product_without_sku_or_mapping_is_named() -> None:
    order = woocommerce("_orders.md", "## Retrieve an order ##")
    with pytest.raises(Unmappable, match="inventory item 93 has no SKU"):
        inputs("order.created", order, References())


COMPLETED_723 = {
    "topic": ORDERS, "key": "723", "event_id": "woocommerce:723:completed",
    "occurred_at": "2017-03-21T19:54:51+00:00", "source": "woocommerce", "order_id": "723",
    "event": {"type": "OrderFulfilled", "fulfillment_id": "723-completed",
              "warehouse_id": "WH-WEST",
              "lines": [{"sku": "WOO-ALBUM", "quantity": 1}, {"sku": "WOO-CAP", "quantity": 1}],
              "carrier": None, "tracking_number": None},
}  # fmt: skip
"""The documented order 723, completed: its fulfilment from the shop's one location."""
REFUNDS_723 = [
    {"topic": ORDERS, "key": "723", "source": "woocommerce", "order_id": "723",
     "event_id": "woocommerce:refund:726", "occurred_at": "2017-03-21T20:07:11+00:00",
     "event": {"type": "OrderRefunded", "refund_id": "726", "kind": "REFUND",
               "currency": "USD", "lines": [], "shipping_amount": None, "total": "10.00",
               "restock": False, "warehouse_id": None}},
    {"topic": ORDERS, "key": "723", "source": "woocommerce", "order_id": "723",
     "event_id": "woocommerce:refund:724", "occurred_at": "2017-03-21T19:55:37+00:00",
     "event": {"type": "OrderRefunded", "refund_id": "724", "kind": "REFUND",
               "currency": "USD", "lines": [{"sku": "WOO-ALBUM", "quantity": 1, "amount": "9.00"}],
               "shipping_amount": None, "total": "9.00", "restock": False,
               "warehouse_id": None}},
]  # fmt: skip
"""The documented order 723's two refunds as its refunds list shows them: 726 of money only,
724 giving back one Woo Album #2 (product 87)."""


def refunds_of_723() -> list[dict[str, Any]]:
    """The "List all refunds" example: order 723's refunds as WooCommerce's API lists them."""
    listed = woocommerce("_order-refunds.md", "## List all refunds ##")
    assert isinstance(listed, list)
    return listed


def test_completed_order_723_with_two_refunds_read_from_the_api() -> None:
    order = woocommerce_listed_order(723)
    assert refunded_order("order.updated", order) == "723"
    found = inputs("order.updated", order, REFERENCES, refunds_of_723())
    for item in found:
        assert_fits_schema(item.record, item.topic)
    assert [{"topic": item.topic, "key": item.key, **item.record} for item in found] == [
        COMPLETED_723,
        *REFUNDS_723,
    ]


def test_only_an_updated_order_with_refunds_needs_them_read() -> None:
    order = woocommerce("_orders.md", "## Retrieve an order ##")
    assert refunded_order("order.updated", order) is None  # it lists no refund
    assert refunded_order("order.created", woocommerce_listed_order(723)) is None
    assert refunded_order("product.updated", woocommerce_listed_order(723)) is None


def test_a_refund_the_api_does_not_list_is_named() -> None:
    listed = [r for r in refunds_of_723() if r["id"] != 724]
    with pytest.raises(Unmappable, match="order 723: refund 724 is not among the order's refunds"):
        inputs("order.updated", woocommerce_listed_order(723), REFERENCES, listed)


def test_cancelled_order() -> None:
    order = woocommerce("_orders.md", "## Retrieve an order ##") | {"status": "cancelled"}
    assert _records("order.updated", order) == [{
        "topic": ORDERS, "key": "727", "event_id": "woocommerce:727:cancelled",
        "occurred_at": "2017-03-22T19:28:08+00:00", "source": "woocommerce", "order_id": "727",
        "event": {"type": "OrderCancelled", "reason": None},
    }]  # fmt: skip


def test_an_order_still_processing_tells_nothing_new() -> None:
    assert _records("order.updated", woocommerce("_orders.md", "## Retrieve an order ##")) == []


def test_product_stock() -> None:
    product = woocommerce("_products.md", "## Retrieve a product ##")
    # The documented product does not manage stock: nothing to ingest.
    assert _records("product.updated", product) == []
    counted = product | {"manage_stock": True, "stock_quantity": 12}
    assert _records("product.updated", counted) == [{
        "topic": INVENTORY, "key": "WOO-PREMIUM",
        "event_id": "woocommerce:product:794:2017-03-23T20:01:14+00:00",
        "occurred_at": "2017-03-23T20:01:14+00:00", "source": "woocommerce", "sku": "WOO-PREMIUM",
        "event": {"type": "StockSnapshot", "warehouse_id": "WH-WEST", "on_hand": 12,
                  "as_of": "2017-03-23T20:01:14+00:00"},
    }]  # fmt: skip


def test_other_topics_are_not_ingested() -> None:
    with pytest.raises(UnknownTopic):
        inputs("coupon.created", {}, REFERENCES)


JOHN_ACCOUNT: dict[str, Any] = {
    "topic": CUSTOMERS, "key": "woo:25",
    "event_id": "woocommerce:customer:25:2017-03-21T19:09:30+00:00",
    "occurred_at": "2017-03-21T19:09:30+00:00", "source": "woocommerce", "account": "woo:25",
    "event": {"storefront": "woo", "account_id": "25", "email": "john.doe@example.com",
              "name": "John Doe", "phone": "(555) 555-5555",
              "addresses": [{"name": None, "street": "969 Market", "city": "San Francisco",
                             "region": "US-CA", "postal_code": "94103", "country": "US"}],
              "erp_customer_id": None},
}  # fmt: skip
"""The documented customer 25: billing and shipping the same place, one address."""


def customer_25() -> dict[str, Any]:
    customer = woocommerce("_customers.md", "## Retrieve a customer ##")
    assert isinstance(customer, dict)
    return customer


def test_customer_25_is_an_unmarked_account() -> None:
    assert _records("customer.created", customer_25()) == [JOHN_ACCOUNT]


def test_an_updated_customer_is_its_account_as_of_that_change() -> None:
    # The documented update: James, in the account and both addresses.
    (account,) = _records(
        "customer.updated", woocommerce("_customers.md", "## Update a customer ##")
    )
    assert (account["event_id"], account["occurred_at"]) == (
        "woocommerce:customer:25:2017-03-21T19:12:28+00:00",
        "2017-03-21T19:12:28+00:00",
    )
    assert account["event"] == JOHN_ACCOUNT["event"] | {"name": "James Doe"}


def test_an_account_marked_by_erpbridge_names_its_erp_customer() -> None:
    marked = customer_25() | {"meta_data": [{"id": 7, "key": MARK, "value": "CUST-7"}]}
    (account,) = _records("customer.updated", marked)
    assert account["event"]["erp_customer_id"] == "CUST-7"


def test_a_shipping_address_of_its_own_follows_the_billing_one() -> None:
    customer = customer_25()
    customer["shipping"] |= {"first_name": "Ann", "last_name": "Lee", "address_1": "Hauptstr. 5",
                             "city": "München", "state": "Bayern", "postcode": "80331",
                             "country": "DE"}  # fmt: skip
    (account,) = _records("customer.updated", customer)
    # A state held by its name rather than a code gives no region, not a code that is none.
    assert account["event"]["addresses"] == [
        *JOHN_ACCOUNT["event"]["addresses"],
        {"name": "Ann Lee", "street": "Hauptstr. 5", "city": "München", "region": None,
         "postal_code": "80331", "country": "DE"},
    ]  # fmt: skip
    # Without any shipping address (a shop that does not ship), the billing one alone.
    empty = {k: "" for k in customer["shipping"]}
    (account,) = _records("customer.updated", customer | {"shipping": empty})
    assert account["event"]["addresses"] == JOHN_ACCOUNT["event"]["addresses"]


def test_a_customer_without_an_id_is_unmappable_naming_it() -> None:
    with pytest.raises(Unmappable, match="id is missing"):
        inputs("customer.created", customer_25() | {"id": None}, REFERENCES)
