"""WooCommerce webhook bodies (wc/v3 resources, exactly as its REST API serves them) to
erpbridge's input events. Pure: the route's references come in as a value.

WooCommerce's X-WC-Webhook-Delivery-ID names one delivery attempt, not the change, so the
event ids come from the resource itself: the order and what happened to it, a refund's id,
a product's modification time. A re-sent webhook, or a later `order.updated` that repeats
a cancellation, is then a duplicate the topology drops.

An order's `completed` status is its fulfilment (WooCommerce has no shipments of its own);
its goods leave the shop's one stock location, the route's "default" warehouse. Refunds
come with `order.updated` as the order's `refunds` (id and total; WooCommerce sends no
refund webhook), and their lines from the order's refunds as its API lists them, which the
service reads for it (connectors.webhooks.woocommerce.refunds). A refund does not say
whether it put the goods back in stock (`api_restock` is write-only): erpbridge records no
restock, and a shop that restocks reports its new level with `product.updated`.

A registered customer's account (`customer.created`, `customer.updated`; a guest has none)
is one AccountChanged, identified by its modification time like a product: its billing
address, then its shipping address where that differs; its phone the billing one; the ERP
customer id erpbridge's storefront sink marked it with from its `meta_data`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from connectors.storefront.customers import marked_in
from connectors.webhooks.amounts import currency_code, decimal, money, plain, timestamp, total
from connectors.webhooks.inputs import (
    AddressFields,
    Input,
    UnknownTopic,
    Unmappable,
    account_changed,
    customer_input,
    inventory_input,
    optional_text,
    order_input,
    text,
)
from connectors.webhooks.references import References

SOURCE = "woocommerce"
STOCK_LOCATION = "default"
"""WooCommerce keeps one stock figure per product: the route maps this name to a warehouse."""

TOPICS = (
    "order.created",
    "order.updated",
    "product.updated",
    "customer.created",
    "customer.updated",
)

_RATE_PLACES = Decimal("0.000001")
_ADDRESS = AddressFields(("address_1", "address_2"), "state", "postcode", "country")


def inputs(
    topic: str,
    document: Any,
    references: References,
    refunds: list[dict[str, Any]] | None = None,
) -> list[Input]:
    """The input events of one delivery of `topic` (X-WC-Webhook-Topic); `refunds` are the
    order's refunds as the API lists them, when `refunded_order` names the order."""
    if topic not in TOPICS:
        raise UnknownTopic(topic)
    if not isinstance(document, dict):
        raise Unmappable("not-an-object", f"the {topic} body is not a JSON object")
    if topic == "order.created":
        return [_placed(document, references)]
    if topic == "order.updated":
        return _updated(document, references, refunds or [])
    if topic == "product.updated":
        return _stock(document, references)
    return [_account(document, references)]


def refunded_order(topic: str | None, document: Any) -> str | None:
    """The order whose refunds a delivery's mapping needs from the API, if any."""
    if topic != "order.updated" or not isinstance(document, dict) or not document.get("refunds"):
        return None
    return text(document, "id")


def _gmt(document: dict[str, Any], name: str) -> str:
    # The *_gmt times are UTC without an offset; the others are the site's local time.
    value = optional_text(document, name)
    return timestamp(value + "+00:00" if value else None, name)


def _placed(order: dict[str, Any], references: References) -> Input:
    order_id = text(order, "id")
    currency = currency_code(order.get("currency"), "currency")
    billing = order.get("billing") or {}
    shipping = order.get("shipping") or {}
    ship_to = _address(shipping if shipping.get("address_1") else billing, order_id)
    rates = _rates(order.get("tax_lines") or [])
    lines = [
        _line(item, i, rates, references) for i, item in enumerate(order.get("line_items") or [])
    ]
    shipping_lines = order.get("shipping_lines") or []
    event = {
        "type": "OrderPlaced",
        "currency": currency,
        "customer": _customer(order, billing, order_id),
        "ship_to": ship_to,
        "bill_to": _address(billing, order_id) if billing.get("address_1") else None,
        "channel": references.channel,
        "storefront": references.route,
        "lines": lines,
        # Coupons are already taken off each line's total (its discount), not again here.
        "discounts": [],
        "shipping": {
            "method": " + ".join(str(s.get("method_title")) for s in shipping_lines),
            "amount": plain(total(shipping_lines, "total", "shipping_lines")),
            "tax_lines": [
                _tax(tax, rates, decimal(s.get("total"), "shipping_lines[].total"))
                for s in shipping_lines
                for tax in s.get("taxes") or []
                if decimal(tax.get("total") or "0", "shipping_lines[].taxes[].total")
            ],
        }
        if shipping_lines
        else None,
        "total": money(order.get("total"), "total"),
    }
    event_id = f"{SOURCE}:order.created:{order_id}"
    return order_input(event_id, _gmt(order, "date_created_gmt"), SOURCE, order_id, event)


def _customer(order: dict[str, Any], billing: dict[str, Any], order_id: str) -> dict[str, Any]:
    email = optional_text(billing, "email")
    customer_id = order.get("customer_id")
    if customer_id:
        identity = str(customer_id)
    elif email:
        identity = f"guest:{email}"  # a guest checkout: the e-mail is all that names them
    else:
        raise Unmappable("missing-customer", f"order {order_id} has no customer and no e-mail")
    name = " ".join(p for p in (billing.get("first_name"), billing.get("last_name")) if p)
    return {"customer_id": identity, "email": email, "name": name or None}


def _address(address: dict[str, Any], order_id: str) -> dict[str, Any]:
    missing = [name for name in ("address_1", "city", "country") if not address.get(name)]
    if missing:
        raise Unmappable(
            "missing-address", f"order {order_id}'s address lacks {', '.join(missing)}"
        )
    name = " ".join(p for p in (address.get("first_name"), address.get("last_name")) if p)
    return {
        "name": name or None,
        "line1": str(address["address_1"]),
        "line2": optional_text(address, "address_2"),
        "city": str(address["city"]),
        "region": optional_text(address, "state"),
        "postal_code": optional_text(address, "postcode"),
        "country": str(address["country"]),
    }


def _rates(tax_lines: list[dict[str, Any]]) -> dict[str, tuple[str, Decimal | None]]:
    """Tax rate id -> (jurisdiction, rate if the order says it)."""
    rates = {}
    for tax in tax_lines:
        # rate_code is COUNTRY-STATE-NAME-PRIORITY, e.g. "US-CA-STATE TAX".
        country, _, rest = str(tax.get("rate_code") or "").partition("-")
        state = rest.partition("-")[0]
        percent = tax.get("rate_percent")
        rate = decimal(percent, "tax_lines[].rate_percent") / 100 if percent is not None else None
        rates[str(tax.get("rate_id"))] = ("-".join(p for p in (country, state) if p), rate)
    return rates


def _tax(
    tax: dict[str, Any], rates: dict[str, tuple[str, Decimal | None]], base: Decimal
) -> dict[str, Any]:
    rate_id = str(tax.get("id"))
    if rate_id not in rates:
        raise Unmappable("unknown-tax-rate", f"tax rate {rate_id} is not in the order's tax_lines")
    jurisdiction, rate = rates[rate_id]
    amount = decimal(tax.get("total"), "taxes[].total")
    if rate is None:
        # Older WooCommerce names no percentage: the rate the line was taxed at, rounded to
        # the six places erpbridge keeps (the amount itself stays exact).
        rate = (amount / base).quantize(_RATE_PLACES) if base else Decimal(0)
    return {"jurisdiction": jurisdiction, "rate": plain(rate.normalize()), "amount": plain(amount)}


def _line(
    item: dict[str, Any],
    index: int,
    rates: dict[str, tuple[str, Decimal | None]],
    references: References,
) -> dict[str, Any]:
    path = f"line_items[{index}]"
    quantity = item.get("quantity")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        raise Unmappable("invalid-quantity", f"{path}.quantity is {quantity!r:.40}")
    subtotal = decimal(item.get("subtotal"), f"{path}.subtotal")
    total = decimal(item.get("total"), f"{path}.total")
    unit_price = subtotal / quantity
    if unit_price * quantity != subtotal:
        raise Unmappable(
            "inexact-unit-price",
            f"line item {item.get('id')}: {subtotal} for {quantity} is no exact unit price",
        )
    return {
        "line_id": text(item, "id"),
        "sku": _sku(item, references),
        "quantity": quantity,
        "unit_price": plain(unit_price),
        "discount": plain(subtotal - total),
        "tax_lines": [
            _tax(tax, rates, total)
            for tax in item.get("taxes") or []
            if decimal(tax.get("total") or "0", f"{path}.taxes[].total")
        ],
    }


def _sku(item: dict[str, Any], references: References) -> str:
    """The product's SKU, or the route's SKU for its variation or product id."""
    sku = optional_text(item, "sku")
    if sku:
        return sku
    product = item.get("variation_id") or item.get("product_id") or item.get("id")
    return references.sku(str(product))


def _updated(
    order: dict[str, Any], references: References, refunds: list[dict[str, Any]]
) -> list[Input]:
    order_id = text(order, "id")
    occurred_at = _gmt(order, "date_modified_gmt")
    found = []
    status = order.get("status")
    if status == "cancelled":
        event: dict[str, Any] = {"type": "OrderCancelled", "reason": None}
        found.append(
            order_input(f"{SOURCE}:{order_id}:cancelled", occurred_at, SOURCE, order_id, event)
        )
    elif status == "completed":
        event = {
            "type": "OrderFulfilled",
            "fulfillment_id": f"{order_id}-completed",
            "warehouse_id": references.warehouse(STOCK_LOCATION, f"order {order_id}"),
            "lines": [
                {"sku": _sku(item, references), "quantity": item.get("quantity")}
                for item in order.get("line_items") or []
            ],
            "carrier": None,
            "tracking_number": None,
        }
        completed_at = (
            _gmt(order, "date_completed_gmt") if order.get("date_completed_gmt") else occurred_at
        )
        found.append(
            order_input(f"{SOURCE}:{order_id}:completed", completed_at, SOURCE, order_id, event)
        )
    if order.get("refunds"):
        currency = currency_code(order.get("currency"), "currency")
        listed = {str(refund.get("id")): refund for refund in refunds}
        for summary in order["refunds"]:
            refund_id = text(summary, "id")
            refund = listed.get(refund_id)
            if refund is None:
                raise Unmappable(
                    "unknown-refund",
                    f"order {order_id}: refund {refund_id} is not among the order's refunds "
                    "WooCommerce lists",
                )
            found.append(_refund(refund, refund_id, order_id, currency, references))
    return found


def _refund(
    refund: dict[str, Any], refund_id: str, order_id: str, currency: str, references: References
) -> Input:
    path = f"refund {refund_id}"
    lines = []
    for i, item in enumerate(refund.get("line_items") or []):
        # A refund lists what it gives back as negative quantities and totals.
        quantity = item.get("quantity")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity > 0:
            raise Unmappable(
                "invalid-quantity", f"{path} line_items[{i}].quantity is {quantity!r:.40}"
            )
        amount = decimal(item.get("total"), f"{path} line_items[{i}].total") + decimal(
            item.get("total_tax") or "0", f"{path} line_items[{i}].total_tax"
        )
        lines.append(
            {"sku": _sku(item, references), "quantity": -quantity, "amount": plain(abs(amount))}
        )
    event = {
        "type": "OrderRefunded",
        "refund_id": refund_id,
        "kind": "REFUND",
        "currency": currency,
        "lines": lines,
        "shipping_amount": None,
        "total": plain(abs(decimal(refund.get("amount"), f"{path} amount"))),
        "restock": False,
        "warehouse_id": None,
    }
    return order_input(
        f"{SOURCE}:refund:{refund_id}", _gmt(refund, "date_created_gmt"), SOURCE, order_id, event
    )


def _stock(product: dict[str, Any], references: References) -> list[Input]:
    quantity = product.get("stock_quantity")
    if not product.get("manage_stock") or quantity is None:
        return []  # WooCommerce does not count this product's stock
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise Unmappable("invalid-quantity", f"stock_quantity is {quantity!r:.40}")
    product_id = text(product, "id")
    modified = _gmt(product, "date_modified_gmt")
    sku = optional_text(product, "sku") or references.sku(product_id)
    event = {
        "type": "StockSnapshot",
        "warehouse_id": references.warehouse(STOCK_LOCATION, f"product {product_id}"),
        "on_hand": quantity,
        "as_of": modified,
    }
    event_id = f"{SOURCE}:product:{product_id}:{modified}"
    return [inventory_input(event_id, modified, SOURCE, sku, event)]


def _account(customer: dict[str, Any], references: References) -> Input:
    billing = customer.get("billing") or {}
    account_id, event = account_changed(
        references.route,
        customer,
        (billing, customer.get("shipping") or {}),
        _ADDRESS,
        phone=optional_text(billing, "phone"),
        erp_customer_id=marked_in(customer.get("meta_data") or []),
    )
    # WooCommerce serves date_modified from the user's `last_update` meta; without one, the
    # account's creation time stands in.
    changed = "date_modified_gmt" if customer.get("date_modified_gmt") else "date_created_gmt"
    modified = _gmt(customer, changed)
    event_id = f"{SOURCE}:customer:{account_id}:{modified}"
    return customer_input(event_id, modified, SOURCE, references.route, account_id, event)
