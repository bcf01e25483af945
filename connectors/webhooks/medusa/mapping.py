"""A Medusa 2 order, as its Admin API serves it with `ORDER_FIELDS`, to erpbridge's input
events. Pure: the route's references come in as a value.

Medusa sends no webhooks (connectors.webhooks.medusa.poll reads its orders instead), so an
order is mapped whole each time it changed, and each thing it says happened keeps an event
id of Medusa's own ids: the placement (the order), each payment's authorisation, capture and
refund, each shipped fulfillment, the cancellation. Mapping the same order again gives the
same events, which the topology drops as duplicates.

A refund is also the order's refund (OrderRefunded, its credit note), with the units its
returns brought back. Medusa links a refund to no return: a return is refunded once its
units are received, so a refund takes the units of the return receipts confirmed since the
refund before it (a receipt's confirmation time never moves, so an earlier refund maps as
it first did), its amount spread over them as the order charged for them, restocked at
the return's location; damaged units are not restocked.

Each of those parts maps on its own: a fulfillment at a location the route does not map
is dead-lettered without holding back the placement or the payments.
Not mapped: fulfillments erpbridge made itself (their metadata names erpbridge's
fulfilment: connectors.storefront.medusa), packed but unshipped ones, and a return not
(yet) refunded. An order edited after its placement, or an exchange's new items, keep the
placement first read (an edit is no event erpbridge has).

A customer (a guest's too: Medusa gives one a customer id its orders carry) is mapped whole
to its account, one AccountChanged identified by when it last changed, with the ERP customer
id erpbridge's storefront sink marked it with from its metadata.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any

from connectors.storefront.customers import MARK as CUSTOMER_MARK
from connectors.webhooks.amounts import currency_code, decimal, money, plain, timestamp
from connectors.webhooks.inputs import (
    AddressFields,
    Input,
    Unmappable,
    account_changed,
    customer_input,
    optional_text,
    order_input,
    payment_input,
    text,
)
from connectors.webhooks.references import References
from streams.domain.money import allocate, quantize_minor

SOURCE = "medusa"
MARK = "erpbridge_fulfillment_id"
"""The metadata key of a fulfillment erpbridge made (connectors.storefront.medusa)."""

ORDER_FIELDS = ",".join(
    (
        "id,status,email,currency_code,created_at,updated_at,canceled_at,total,customer_id",
        "*customer,*shipping_address,*billing_address",
        "*items,*items.tax_lines,*shipping_methods,*shipping_methods.tax_lines",
        "*payment_collections,*payment_collections.payments",
        "*payment_collections.payments.captures,*payment_collections.payments.refunds",
        "*fulfillments,*fulfillments.items,*fulfillments.labels",
        "returns.id,returns.location_id",
    )
)
"""What `GET /admin/orders/<id>` must return for `parts`."""
RECEIPTS = {
    "change_type": "return_receive",
    "status": "confirmed",
    "fields": "id,return_id,confirmed_at,*actions",
}
"""What `GET /admin/orders/<id>/changes` is asked for `parts`' receipts: each return receipt
confirmed, with its received units as actions."""
CUSTOMER_FIELDS = "id,email,first_name,last_name,phone,updated_at,metadata,*addresses"
"""What `GET /admin/customers/<id>` must return for `account`."""
_RECEIVED = {"RECEIVE_RETURN_ITEM": True, "RECEIVE_DAMAGED_RETURN_ITEM": False}
"""A return receipt's actions: whether the units it received are sellable."""
_ADDRESS = AddressFields(("address_1", "address_2"), "province", "postal_code", "country_code")


@dataclass(frozen=True)
class Part:
    """One thing an order says happened, or a customer's account: its input events, or why
    they cannot be mapped."""

    name: str
    """"placed", "payment <id>", "fulfillment <id>", "cancelled", or a customer's "account"."""
    inputs: tuple[Input, ...] = ()
    problem: Unmappable | None = None


def parts(
    order: dict[str, Any], references: References, receipts: Sequence[dict[str, Any]] = ()
) -> list[Part]:
    """Everything `order` says happened so far, part by part; `receipts` are its confirmed
    return receipts (`RECEIPTS`), read when it has `refunds`."""
    order_id = text(order, "id")
    found = [_part("placed", partial(_placed, order, order_id, references))]
    for collection in order.get("payment_collections") or []:
        for payment in collection.get("payments") or []:
            found.append(
                _part(f"payment {payment.get('id')}", partial(_payment, payment, order_id))
            )
    paid_back = refunds(order)
    for i, (refund, payment) in enumerate(paid_back):
        after = paid_back[i - 1][0].get("created_at") if i else None
        found.append(
            _part(
                f"refund {refund.get('id')}",
                partial(_refunded, order, order_id, refund, payment, after, receipts, references),
            )
        )
    skus = {str(item.get("id")): item.get("variant_sku") for item in order.get("items") or []}
    for fulfillment in order.get("fulfillments") or []:
        if (
            fulfillment.get("shipped_at") is None
            or fulfillment.get("canceled_at") is not None
            or (fulfillment.get("metadata") or {}).get(MARK)
        ):
            continue
        found.append(
            _part(
                f"fulfillment {fulfillment.get('id')}",
                partial(_fulfilled, fulfillment, order_id, skus, references),
            )
        )
    if order.get("status") == "canceled":
        found.append(_part("cancelled", partial(_cancelled, order, order_id)))
    return found


def refunds(order: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The order's refunds with their payments, oldest first."""
    return sorted(
        (
            (refund, payment)
            for collection in order.get("payment_collections") or []
            for payment in collection.get("payments") or []
            for refund in payment.get("refunds") or []
        ),
        key=lambda paid: (str(paid[0].get("created_at")), str(paid[0].get("id"))),
    )


def account(customer: dict[str, Any], references: References) -> Part:
    """The customer's account as it is now."""
    return _part("account", partial(_account, customer, references))


def _part(name: str, mapped: Callable[[], Input | list[Input]]) -> Part:
    try:
        found = mapped()
        return Part(name, tuple(found) if isinstance(found, list) else (found,))
    except Unmappable as problem:
        return Part(name, problem=problem)


def _placed(order: dict[str, Any], order_id: str, references: References) -> Input:
    currency = currency_code(order.get("currency_code"), "currency_code")
    shipping = order.get("shipping_address") or {}
    billing = order.get("billing_address") or {}
    methods = order.get("shipping_methods") or []
    lines = [_line(item, i) for i, item in enumerate(order.get("items") or [])]
    shipping_lines = [
        _tax(tax, f"shipping_methods[{i}].tax_lines[{j}]")
        for i, m in enumerate(methods)
        for j, tax in enumerate(m.get("tax_lines") or [])
    ]
    shipped = sum((_net(m, f"shipping_methods[{i}]") for i, m in enumerate(methods)), Decimal(0))
    event = {
        "type": "OrderPlaced",
        "currency": currency,
        "customer": _customer(order, shipping or billing, order_id),
        "ship_to": _address(shipping, "shipping_address"),
        "bill_to": _address(billing, "billing_address") if billing.get("address_1") else None,
        "channel": references.channel,
        "storefront": references.route,
        "lines": lines,
        # Promotions are already taken off each line (its discount_total), not again here.
        "discounts": [],
        "shipping": {
            "method": " + ".join(str(m.get("name")) for m in methods),
            "amount": plain(shipped),
            "tax_lines": shipping_lines,
        }
        if methods
        else None,
        # What the lines and shipping add up to: Medusa's own `total` falls with each
        # refund, and a placement read again must be its first copy.
        "total": plain(_added(lines, shipping_lines) + shipped),
    }
    occurred_at = timestamp(order.get("created_at"), "created_at")
    return order_input(f"{SOURCE}:order:{order_id}", occurred_at, SOURCE, order_id, event)


def _customer(order: dict[str, Any], address: dict[str, Any], order_id: str) -> dict[str, Any]:
    email = optional_text(order, "email")
    customer_id = optional_text(order, "customer_id")
    if customer_id is None and email is None:
        raise Unmappable("missing-customer", f"order {order_id} has no customer and no e-mail")
    name = " ".join(p for p in (address.get("first_name"), address.get("last_name")) if p)
    return {
        "customer_id": customer_id or f"guest:{email}",
        "email": email,
        "name": name or None,
    }


def _address(address: dict[str, Any], path: str) -> dict[str, Any]:
    missing = [name for name in ("address_1", "city", "country_code") if not address.get(name)]
    if missing:
        raise Unmappable("missing-address", f"{path} lacks {', '.join(missing)}")
    country = str(address["country_code"]).upper()
    # Medusa's province is ISO 3166-2, lower case ("us-ca"); erpbridge's region is its
    # subdivision part ("CA").
    province = optional_text(address, "province")
    region = province.upper().removeprefix(f"{country}-") if province else None
    name = " ".join(p for p in (address.get("first_name"), address.get("last_name")) if p)
    return {
        "name": name or None,
        "line1": str(address["address_1"]),
        "line2": optional_text(address, "address_2"),
        "city": str(address["city"]),
        "region": region,
        "postal_code": optional_text(address, "postal_code"),
        "country": country,
    }


def _line(item: dict[str, Any], index: int) -> dict[str, Any]:
    path = f"items[{index}]"
    line_id = text(item, "id")
    sku = optional_text(item, "variant_sku")
    if sku is None:
        raise Unmappable("missing-sku", f"line item {line_id} has no SKU")
    quantity = decimal(item.get("quantity"), f"{path}.quantity")
    if quantity != quantity.to_integral_value() or quantity < 1:
        raise Unmappable("invalid-quantity", f"{path}.quantity is {quantity}")
    return {
        "line_id": line_id,
        "sku": sku,
        "quantity": int(quantity),
        "unit_price": money(item.get("unit_price"), f"{path}.unit_price"),
        "discount": money(item.get("discount_total") or 0, f"{path}.discount_total"),
        "tax_lines": [
            _tax(tax, f"{path}.tax_lines[{j}]") for j, tax in enumerate(item.get("tax_lines") or [])
        ],
    }


def _added(lines: list[dict[str, Any]], shipping_taxes: list[dict[str, Any]]) -> Decimal:
    taxes = [tax for line in lines for tax in line["tax_lines"]] + shipping_taxes
    return sum(
        (
            *(
                Decimal(line["unit_price"]) * line["quantity"] - Decimal(line["discount"])
                for line in lines
            ),
            *(Decimal(tax["amount"]) for tax in taxes),
        ),
        Decimal(0),
    )


def _net(method: dict[str, Any], path: str) -> Decimal:
    """A shipping method's charge after its discounts, before tax."""
    amount = decimal(method.get("amount"), f"{path}.amount")
    return amount - decimal(method.get("discount_total") or 0, f"{path}.discount_total")


def _tax(tax: dict[str, Any], path: str) -> dict[str, Any]:
    # Medusa's rate is a percentage; its computed `total` is the tax on the line.
    rate = decimal(tax.get("rate"), f"{path}.rate") / 100
    return {
        "jurisdiction": optional_text(tax, "code") or "",
        "rate": plain(rate.normalize()),
        "amount": money(tax.get("total"), f"{path}.total"),
    }


def _payment(payment: dict[str, Any], order_id: str) -> list[Input]:
    payment_id = text(payment, "id")
    currency = currency_code(payment.get("currency_code"), f"payment {payment_id} currency_code")
    gateway = text(payment, "provider_id")

    def event(kind: str, amount: Any, path: str, **more: Any) -> dict[str, Any]:
        return {
            "type": kind,
            "payment_id": payment_id,
            "gateway": gateway,
            "amount": money(amount, path),
            "currency": currency,
            **more,
        }

    found = [
        payment_input(
            f"{SOURCE}:payment:{payment_id}",
            timestamp(payment.get("created_at"), f"payment {payment_id} created_at"),
            SOURCE,
            order_id,
            event("PaymentAuthorized", payment.get("amount"), "amount", method=None),
        )
    ]
    for capture in payment.get("captures") or []:
        capture_id = text(capture, "id")
        found.append(
            payment_input(
                f"{SOURCE}:capture:{capture_id}",
                timestamp(capture.get("created_at"), f"capture {capture_id} created_at"),
                SOURCE,
                order_id,
                event("PaymentCaptured", capture.get("amount"), f"capture {capture_id} amount"),
            )
        )
    for refund in payment.get("refunds") or []:
        refund_id = text(refund, "id")
        found.append(
            payment_input(
                f"{SOURCE}:refund:{refund_id}",
                timestamp(refund.get("created_at"), f"refund {refund_id} created_at"),
                SOURCE,
                order_id,
                event(
                    "PaymentRefunded",
                    refund.get("amount"),
                    f"refund {refund_id} amount",
                    refund_id=refund_id,
                ),
            )
        )
    return found


def _refunded(
    order: dict[str, Any],
    order_id: str,
    refund: dict[str, Any],
    payment: dict[str, Any],
    after: Any,
    receipts: Sequence[dict[str, Any]],
    references: References,
) -> Input:
    """A payment refund as the order's refund, with the units of the returns received since
    the refund before it (Medusa refunds a return once it is received, and links neither to
    the other), restocked at the return's location unless damaged."""
    refund_id = text(refund, "id")
    owner = f"refund {refund_id}"
    currency = currency_code(
        payment.get("currency_code"), f"payment {payment.get('id')} currency_code"
    )
    amount = decimal(refund.get("amount"), f"{owner} amount")
    if quantize_minor(amount, currency) != amount:
        raise Unmappable("invalid-amount", f"{owner} amount {amount} is not whole {currency} cents")
    made = timestamp(refund.get("created_at"), f"{owner} created_at")
    until = datetime.fromisoformat(made)
    since = None if after is None else _at(after, "the refund before's created_at")
    skus = {str(item.get("id")): item.get("variant_sku") for item in order.get("items") or []}
    locations = {
        str(back.get("id")): back.get("location_id") for back in order.get("returns") or []
    }
    units: dict[bool, dict[str, int]] = {True: {}, False: {}}  # sellable or not: SKU -> units
    restocked_at = None
    for receipt in receipts:
        what = f"return receipt {receipt.get('id')}"
        confirmed = _at(receipt.get("confirmed_at"), f"{what} confirmed_at")
        if confirmed > until or (since is not None and confirmed <= since):
            continue
        for j, action in enumerate(receipt.get("actions") or []):
            sellable = _RECEIVED.get(action.get("action"))
            if sellable is None:
                continue
            path = f"{what} actions[{j}].details"
            details = action.get("details") or {}
            sku = skus.get(str(details.get("reference_id")))
            if not sku:
                raise Unmappable("missing-sku", f"{path} names no line item with a SKU")
            quantity = decimal(details.get("quantity"), f"{path}.quantity")
            if quantity != quantity.to_integral_value() or quantity < 1:
                raise Unmappable("invalid-quantity", f"{path}.quantity is {quantity}")
            units[sellable][sku] = units[sellable].get(sku, 0) + int(quantity)
            if sellable and restocked_at is None:
                restocked_at = locations.get(str(receipt.get("return_id")))
    # One event restocks all its units or none: damaged units are named only by a refund
    # whose returns have nothing sellable.
    restock = bool(units[True])
    lines = units[restock]
    event = {
        "type": "OrderRefunded",
        "refund_id": refund_id,
        "kind": "RETURN" if lines else "REFUND",
        "currency": currency,
        "lines": _refund_lines(lines, amount, currency, order.get("items") or []),
        "shipping_amount": None,
        "total": plain(amount),
        "restock": restock,
        "warehouse_id": references.warehouse(restocked_at, owner) if restock else None,
    }
    return order_input(f"{SOURCE}:order-refund:{refund_id}", made, SOURCE, order_id, event)


def _at(value: Any, path: str) -> datetime:
    return datetime.fromisoformat(timestamp(value, path))


def _refund_lines(
    units: dict[str, int], amount: Decimal, currency: str, items: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The refunded amount over the returned units, in proportion to what the order charged
    for them (Medusa names no amount per returned unit)."""
    if not units:
        return []
    charged = {sku: Decimal(0) for sku in units}
    ordered = dict.fromkeys(units, 0)
    for i, item in enumerate(items):
        sku = item.get("variant_sku")
        if sku in charged:
            line = _line(item, i)
            charged[sku] += _added([line], [])
            ordered[sku] += line["quantity"]
    skus = sorted(units)
    weights = [max(charged[sku], Decimal(0)) * units[sku] / ordered[sku] for sku in skus]
    if not any(weights):
        weights = [Decimal(units[sku]) for sku in skus]
    shares = allocate(amount, weights, currency)
    return [
        {"sku": sku, "quantity": units[sku], "amount": plain(share)}
        for sku, share in zip(skus, shares, strict=True)
    ]


def _fulfilled(
    fulfillment: dict[str, Any],
    order_id: str,
    skus: dict[str, Any],
    references: References,
) -> Input:
    fulfillment_id = text(fulfillment, "id")
    owner = f"fulfillment {fulfillment_id}"
    lines = []
    for i, item in enumerate(fulfillment.get("items") or []):
        sku = skus.get(str(item.get("line_item_id"))) or item.get("sku")
        if not sku:
            raise Unmappable("missing-sku", f"{owner} item {item.get('id')} names no SKU")
        quantity = decimal(item.get("quantity"), f"{owner} items[{i}].quantity")
        lines.append({"sku": str(sku), "quantity": int(quantity)})
    labels = fulfillment.get("labels") or []
    event = {
        "type": "OrderFulfilled",
        "fulfillment_id": fulfillment_id,
        "warehouse_id": references.warehouse(fulfillment.get("location_id"), owner),
        "lines": lines,
        "carrier": None,  # Medusa names the fulfilment provider, not the carrier
        "tracking_number": optional_text(labels[0], "tracking_number") if labels else None,
    }
    occurred_at = timestamp(fulfillment.get("shipped_at"), f"{owner} shipped_at")
    return order_input(
        f"{SOURCE}:fulfillment:{fulfillment_id}", occurred_at, SOURCE, order_id, event
    )


def _cancelled(order: dict[str, Any], order_id: str) -> Input:
    occurred_at = timestamp(order.get("canceled_at"), "canceled_at")
    event = {"type": "OrderCancelled", "reason": None}
    return order_input(f"{SOURCE}:cancel:{order_id}", occurred_at, SOURCE, order_id, event)


def _account(customer: dict[str, Any], references: References) -> Input:
    addresses = customer.get("addresses") or []
    # Medusa moves a customer's updated_at with its own fields only; an address changed since
    # has its own, later time. The newest names this state of the account.
    changed = max(
        [
            timestamp(customer.get("updated_at"), "updated_at"),
            *(
                timestamp(a.get("updated_at"), f"addresses[{i}].updated_at")
                for i, a in enumerate(addresses)
            ),
        ],
        key=datetime.fromisoformat,
    )
    defaults_first = sorted(
        addresses, key=lambda a: not (a.get("is_default_shipping") or a.get("is_default_billing"))
    )
    account_id, event = account_changed(
        references.route,
        customer,
        defaults_first,
        _ADDRESS,
        phone=optional_text(customer, "phone"),
        erp_customer_id=optional_text(customer, f"metadata.{CUSTOMER_MARK}"),
    )
    event_id = f"{SOURCE}:customer:{account_id}:{changed}"
    return customer_input(event_id, changed, SOURCE, references.route, account_id, event)
