"""Shopify webhook bodies (REST resources, as the Admin API serves them) to erpbridge's
input events. Pure: the route's references come in as a value.

`event_id` is the delivery's X-Shopify-Event-Id, which Shopify keeps across its retries,
so a retried webhook is a duplicate the topology drops.

A customer account (customers/create, customers/update) is one AccountChanged, its default
address first; the ERP customer id erpbridge's storefront sink tagged it with
(`erpbridge-customer-<id>`, connectors.storefront.customers) is read from its `tags`.
Shopify leaves `tags` out of customer webhooks from API version 2025-01; such an account
goes unmarked, which is safe: the ERP finds the customer an account erpbridge made by the
e-mail erpbridge gave it (the sink makes no account without one) and only links it.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from connectors.storefront.customers import tagged_customer_id
from connectors.webhooks.amounts import currency_code, decimal, money, plain, timestamp, total
from connectors.webhooks.inputs import (
    AddressFields,
    Input,
    UnknownTopic,
    Unmappable,
    account_changed,
    customer_input,
    field,
    inventory_input,
    optional_text,
    order_input,
    payment_input,
    text,
)
from connectors.webhooks.references import References

SOURCE = "shopify"

TOPICS = (
    "orders/create",
    "orders/cancelled",
    "fulfillments/create",
    "refunds/create",
    "order_transactions/create",
    "inventory_levels/update",
    "customers/create",
    "customers/update",
)
"""What erpbridge subscribes to and ingests; `erpbridge webhooks register` creates these."""
_ADDRESS = AddressFields(("address1", "address2"), "province_code", "zip", "country_code")


def inputs(topic: str, event_id: str, document: Any, references: References) -> list[Input]:
    """The input events of one delivery of `topic` (X-Shopify-Topic); [] when it tells
    nothing erpbridge keeps (a pending transaction, an untracked stock level)."""
    handler = _HANDLERS.get(topic)
    if handler is None:
        raise UnknownTopic(topic)
    if not isinstance(document, dict):
        raise Unmappable("not-an-object", f"the {topic} body is not a JSON object")
    return handler(f"{SOURCE}:{event_id}", document, references)


def _placed(event_id: str, order: dict[str, Any], references: References) -> list[Input]:
    order_id = text(order, "id")
    currency = currency_code(order.get("currency"), "currency")
    shipping_address = order.get("shipping_address") or order.get("billing_address")
    if not shipping_address:
        raise Unmappable("missing-address", f"order {order_id} has no shipping or billing address")
    ship_to = _address(shipping_address, "shipping_address")
    jurisdiction = "-".join(
        part for part in (ship_to["country"], ship_to["region"]) if part is not None
    )
    items = order.get("line_items") or []
    # Newer payloads allocate every discount, order codes included, to the lines; older ones
    # (#1001) only name the codes. Taking both would count a code twice.
    allocated = any(item.get("discount_allocations") for item in items)
    discounts = (
        []
        if allocated
        else [
            {
                "code": optional_text(code, "code"),
                "description": None,
                "amount": money(code.get("amount"), f"discount_codes[{i}].amount"),
            }
            for i, code in enumerate(order.get("discount_codes") or [])
        ]
    )
    billing = order.get("billing_address")
    event = {
        "type": "OrderPlaced",
        "currency": currency,
        "customer": _customer(order, order_id),
        "ship_to": ship_to,
        "bill_to": _address(billing, "billing_address") if billing else None,
        "channel": references.channel,
        "storefront": references.route,
        "lines": [_line(item, i, jurisdiction) for i, item in enumerate(items)],
        "discounts": discounts,
        "shipping": _shipping(order.get("shipping_lines") or [], jurisdiction),
        "total": money(order.get("total_price"), "total_price"),
    }
    occurred_at = timestamp(order.get("created_at"), "created_at")
    return [order_input(event_id, occurred_at, SOURCE, order_id, event)]


def _customer(order: dict[str, Any], order_id: str) -> dict[str, Any]:
    customer = order.get("customer")
    if not isinstance(customer, dict) or customer.get("id") is None:
        raise Unmappable("missing-customer", f"order {order_id} has no customer")
    name = " ".join(
        part for part in (customer.get("first_name"), customer.get("last_name")) if part
    )
    return {
        "customer_id": text(customer, "id"),
        "email": order.get("email") or customer.get("email"),
        "name": name or None,
    }


def _address(address: dict[str, Any], path: str) -> dict[str, Any]:
    return {
        "name": optional_text(address, "name"),
        "line1": _required(address, "address1", path),
        "line2": optional_text(address, "address2"),
        "city": _required(address, "city", path),
        "region": optional_text(address, "province_code"),
        "postal_code": optional_text(address, "zip"),
        "country": _required(address, "country_code", path),
    }


def _required(document: dict[str, Any], name: str, path: str) -> str:
    try:
        return text(document, name)
    except Unmappable:
        raise Unmappable("missing-field", f"{path}.{name} is missing") from None


def _line(item: dict[str, Any], index: int, jurisdiction: str) -> dict[str, Any]:
    path = f"line_items[{index}]"
    line_id = text(item, "id")
    sku = optional_text(item, "sku")
    if sku is None:
        raise Unmappable("missing-sku", f"line item {line_id} has no SKU")
    allocations = item.get("discount_allocations") or []
    discount = (
        total(allocations, "amount", f"{path}.discount_allocations")
        if allocations
        else decimal(item.get("total_discount") or "0.00", f"{path}.total_discount")
    )
    return {
        "line_id": line_id,
        "sku": sku,
        "quantity": _quantity(item, path),
        "unit_price": money(item.get("price"), f"{path}.price"),
        "discount": plain(discount),
        "tax_lines": _taxes(item.get("tax_lines") or [], jurisdiction, path),
    }


def _quantity(item: dict[str, Any], path: str) -> int:
    quantity = item.get("quantity")
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise Unmappable("invalid-quantity", f"{path}.quantity is {quantity!r:.40}")
    return quantity


def _taxes(taxes: list[dict[str, Any]], jurisdiction: str, path: str) -> list[dict[str, Any]]:
    # Shopify names a tax by its title ("State Tax"); erpbridge by where it is due.
    return [
        {
            "jurisdiction": jurisdiction,
            "rate": money(tax.get("rate"), f"{path}.tax_lines[{i}].rate"),
            "amount": money(tax.get("price"), f"{path}.tax_lines[{i}].price"),
        }
        for i, tax in enumerate(taxes)
    ]


def _shipping(lines: list[dict[str, Any]], jurisdiction: str) -> dict[str, Any] | None:
    if not lines:
        return None
    return {
        "method": " + ".join(str(line.get("title") or line.get("code")) for line in lines),
        "amount": plain(total(lines, "price", "shipping_lines")),
        "tax_lines": [
            tax
            for i, line in enumerate(lines)
            for tax in _taxes(line.get("tax_lines") or [], jurisdiction, f"shipping_lines[{i}]")
        ],
    }


def _cancelled(event_id: str, order: dict[str, Any], references: References) -> list[Input]:
    occurred_at = timestamp(order.get("cancelled_at") or order.get("updated_at"), "cancelled_at")
    event = {"type": "OrderCancelled", "reason": optional_text(order, "cancel_reason")}
    return [order_input(event_id, occurred_at, SOURCE, text(order, "id"), event)]


def _fulfilled(event_id: str, fulfillment: dict[str, Any], references: References) -> list[Input]:
    fulfillment_id = text(fulfillment, "id")
    numbers = fulfillment.get("tracking_numbers") or []
    event = {
        "type": "OrderFulfilled",
        "fulfillment_id": fulfillment_id,
        "warehouse_id": references.warehouse(
            fulfillment.get("location_id"), f"fulfillment {fulfillment_id}"
        ),
        "lines": [
            {"sku": _item_sku(item, "fulfillment"), "quantity": _quantity(item, f"line_items[{i}]")}
            for i, item in enumerate(fulfillment.get("line_items") or [])
        ],
        "carrier": optional_text(fulfillment, "tracking_company"),
        "tracking_number": optional_text(fulfillment, "tracking_number")
        or (str(numbers[0]) if numbers else None),
    }
    occurred_at = timestamp(fulfillment.get("created_at"), "created_at")
    return [order_input(event_id, occurred_at, SOURCE, text(fulfillment, "order_id"), event)]


def _item_sku(item: dict[str, Any], what: str) -> str:
    sku = optional_text(item, "sku")
    if sku is None:
        raise Unmappable("missing-sku", f"{what} line item {item.get('id')} has no SKU")
    return sku


def _refunded(event_id: str, refund: dict[str, Any], references: References) -> list[Input]:
    refund_id = text(refund, "id")
    refunded = refund.get("refund_line_items") or []
    transactions = [
        t
        for t in refund.get("transactions") or []
        if t.get("kind") == "refund" and t.get("status") == "success"
    ]
    currencies = {t.get("currency") for t in transactions} - {None}
    if not currencies:
        # A refund that moves no money (goods returned for an exchange) names its currency
        # only in its lines' money sets.
        currencies = {
            r.get("subtotal_set", {}).get("shop_money", {}).get("currency_code") for r in refunded
        } - {None}
    if len(currencies) != 1:
        raise Unmappable(
            "missing-currency",
            f"refund {refund_id} names no single currency in its transactions or lines",
        )
    currency = currency_code(currencies.pop(), "transactions[].currency")
    shipping = [
        -decimal(a.get("amount"), "order_adjustments[].amount")
        for a in refund.get("order_adjustments") or []
        if a.get("kind") == "shipping_refund"
    ]
    restock = refund.get("restock")
    if restock is None:
        restock = any(r.get("restock_type") in ("return", "cancel") for r in refunded)
    locations = [r["location_id"] for r in refunded if r.get("location_id") is not None]
    event = {
        "type": "OrderRefunded",
        "refund_id": refund_id,
        "kind": "RETURN" if restock else "REFUND",
        "currency": currency,
        "lines": [_refund_line(r, i) for i, r in enumerate(refunded)],
        "shipping_amount": plain(sum(shipping, Decimal("0.00"))) if shipping else None,
        "total": plain(total(transactions, "amount", "transactions")),
        "restock": bool(restock),
        # Where restocked goods go, when Shopify says; otherwise the topology's rules decide.
        "warehouse_id": references.warehouse(locations[0], f"refund {refund_id}")
        if locations
        else None,
    }
    occurred_at = timestamp(refund.get("created_at"), "created_at")
    return [order_input(event_id, occurred_at, SOURCE, text(refund, "order_id"), event)]


def _refund_line(refunded: dict[str, Any], index: int) -> dict[str, Any]:
    path = f"refund_line_items[{index}]"
    item = field(refunded, "line_item")
    quantity = _quantity(refunded, path)
    if refunded.get("subtotal") is not None:
        amount = decimal(refunded["subtotal"], f"{path}.subtotal") + decimal(
            refunded.get("total_tax") or "0", f"{path}.total_tax"
        )
    else:
        # Older payloads (the fixture) carry only the line item: its price and taxes.
        taxes = total(item.get("tax_lines") or [], "price", f"{path}.line_item.tax_lines")
        amount = (
            decimal(item.get("price"), f"{path}.line_item.price") * quantity
            - decimal(item.get("total_discount") or "0", f"{path}.line_item.total_discount")
            + taxes
        )
    return {"sku": _item_sku(item, "refund"), "quantity": quantity, "amount": plain(amount)}


_FAILED = {"failure", "error"}
_OPERATIONS = {
    "authorization": "AUTHORIZE",
    "sale": "AUTHORIZE",
    "capture": "CAPTURE",
    "refund": "REFUND",
}


def _transaction(event_id: str, transaction: dict[str, Any], references: References) -> list[Input]:
    kind, status = transaction.get("kind"), transaction.get("status")
    if kind not in _OPERATIONS or status not in (_FAILED | {"success"}):
        return []  # a void, or a transaction still pending: its outcome comes later
    transaction_id = text(transaction, "id")
    currency = currency_code(transaction.get("currency"), "currency")
    amount = money(transaction.get("amount"), "amount")
    gateway = text(transaction, "gateway")
    # A capture or a refund points at the authorisation it draws on: one payment id for all.
    parent = optional_text(transaction, "parent_id")
    payment_id = parent if kind in ("capture", "refund") and parent else transaction_id
    base = {"payment_id": payment_id, "gateway": gateway, "amount": amount, "currency": currency}
    event: dict[str, Any]
    if status in _FAILED:
        reason = optional_text(transaction, "error_code") or optional_text(transaction, "message")
        event = {
            "type": "PaymentFailed",
            **base,
            "operation": _OPERATIONS[kind],
            "reason": reason or status,
        }
    elif kind == "authorization":
        method = "card" if transaction.get("payment_details") else None
        event = {"type": "PaymentAuthorized", **base, "method": method}
    elif kind == "refund":
        event = {"type": "PaymentRefunded", **base, "refund_id": transaction_id}
    else:
        event = {"type": "PaymentCaptured", **base}
    occurred_at = timestamp(transaction.get("created_at"), "created_at")
    return [payment_input(event_id, occurred_at, SOURCE, text(transaction, "order_id"), event)]


def _stock(event_id: str, level: dict[str, Any], references: References) -> list[Input]:
    available = level.get("available")
    if available is None:
        return []  # the item is not tracked at this location
    if isinstance(available, bool) or not isinstance(available, int):
        raise Unmappable("invalid-quantity", f"available is {available!r:.40}")
    updated_at = timestamp(level.get("updated_at"), "updated_at")
    item = text(level, "inventory_item_id")
    event = {
        "type": "StockSnapshot",
        "warehouse_id": references.warehouse(level.get("location_id"), f"inventory item {item}"),
        "on_hand": available,
        "as_of": updated_at,
    }
    sku = references.sku(item)
    return [inventory_input(event_id, updated_at, SOURCE, sku, event)]


def _account(event_id: str, customer: dict[str, Any], references: References) -> list[Input]:
    tags = customer.get("tags") or ""
    if not isinstance(tags, str):
        raise Unmappable("invalid-field", f"tags is {tags!r:.40}, not Shopify's tag list")
    account_id, event = account_changed(
        references.route,
        customer,
        # The default address first; the others keep Shopify's order.
        sorted(customer.get("addresses") or [], key=lambda a: not a.get("default")),
        _ADDRESS,
        phone=optional_text(customer, "phone"),
        erp_customer_id=tagged_customer_id(tag.strip() for tag in tags.split(",")),
    )
    occurred_at = timestamp(customer.get("updated_at"), "updated_at")
    return [customer_input(event_id, occurred_at, SOURCE, references.route, account_id, event)]


_HANDLERS: dict[str, Callable[[str, dict[str, Any], References], list[Input]]] = {
    "orders/create": _placed,
    "orders/cancelled": _cancelled,
    "fulfillments/create": _fulfilled,
    "refunds/create": _refunded,
    "order_transactions/create": _transaction,
    "inventory_levels/update": _stock,
    "customers/create": _account,
    "customers/update": _account,
}
