"""Small builders of the rules' inputs: InputEvents as the codec would decode them, and the
stock requests the order rules send. Money is Decimal; times are epoch milliseconds."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from streams.domain.events import InputEvent
from streams.domain.messages import RequestKind, StockRequest
from streams.domain.orders import Order, OrderEffect
from streams.domain.policy import HOUR_MS, Policy
from streams.domain.routing import Destination, RoutingRules
from streams.domain.stock import SkuStock, StockEffect

EAST, WEST, EU = "WH-EAST", "WH-WEST", "WH-EU"
WAREHOUSES = (EAST, WEST, EU)

RULES = RoutingRules(
    warehouses=WAREHOUSES,
    by_area={"US-CA": (WEST,), "US": (EAST, WEST), "DE": (EU,)},
)
"""The shape of config/routing.json: California prefers the west, the rest of the US the east."""

POLICY = Policy()

T0 = 1_800_000_000_000
"""A fixed epoch-millisecond time (2027-01-15) every test starts from."""
MINUTE_MS = 60 * 1000

CALIFORNIA = Destination("web", "US", "CA")
NEW_YORK = Destination("web", "US", "NY")

_ids = itertools.count(1)


def new_id(prefix: str = "evt") -> str:
    return f"{prefix}-{next(_ids)}"


def to_datetime(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def event(
    kind: str,
    key: str,
    payload: dict[str, Any],
    *,
    at: int = T0,
    event_id: str | None = None,
    source: str = "test",
) -> InputEvent:
    return InputEvent(
        event_id=event_id or new_id(),
        occurred_ms=at,
        source=source,
        key=key,
        kind=kind,
        payload=payload,
    )


# --- order events --------------------------------------------------------------------------


def line(
    line_id: str,
    sku: str,
    quantity: int,
    unit_price: str = "10.00",
    *,
    discount: str = "0.00",
    tax: Sequence[str] = (),
    jurisdiction: str = "US-CA",
) -> dict[str, Any]:
    return {
        "line_id": line_id,
        "sku": sku,
        "quantity": quantity,
        "unit_price": Decimal(unit_price),
        "discount": Decimal(discount),
        "tax_lines": [
            {"jurisdiction": jurisdiction, "rate": Decimal("0.0725"), "amount": Decimal(amount)}
            for amount in tax
        ],
    }


def placed(
    order_id: str,
    lines: Sequence[dict[str, Any]],
    *,
    total: str | None = None,
    currency: str = "USD",
    destination: Destination = CALIFORNIA,
    payment_terms: str = "PREPAID",
    purchase_order_number: str | None = None,
    discounts: Sequence[dict[str, Any]] = (),
    shipping: dict[str, Any] | None = None,
    storefront: str | None = None,
    requires_approval: bool = False,
    at: int = T0,
    event_id: str | None = None,
    source: str = "test",
) -> InputEvent:
    """OrderPlaced; the total defaults to the lines' quantity x price - discount + tax
    (order-level `discounts` and `shipping` are payload items, not counted in it)."""
    if total is None:
        amount = sum(
            (
                line["quantity"] * line["unit_price"]
                - line["discount"]
                + sum((t["amount"] for t in line["tax_lines"]), Decimal(0))
                for line in lines
            ),
            Decimal(0),
        )
    else:
        amount = Decimal(total)
    payload = {
        "currency": currency,
        "customer": {
            "customer_id": "C-1",
            "email": None,
            "name": "Ada",
            "kind": "CONSUMER",
            "group": None,
            "company_id": None,
        },
        "ship_to": {
            "name": "Ada",
            "line1": "1 Main St",
            "line2": None,
            "city": "Springfield",
            "region": destination.region,
            "postal_code": "12345",
            "country": destination.country,
        },
        "bill_to": None,
        "channel": destination.channel,
        "lines": list(lines),
        "discounts": list(discounts),
        "shipping": shipping,
        "total": amount,
        "payment_terms": payment_terms,
        "purchase_order_number": purchase_order_number,
        "storefront": storefront,
        "requires_approval": requires_approval,
    }
    return event("OrderPlaced", order_id, payload, at=at, event_id=event_id, source=source)


def cancelled(
    order_id: str,
    reason: str | None = "customer_request",
    *,
    at: int = T0,
    event_id: str | None = None,
) -> InputEvent:
    return event("OrderCancelled", order_id, {"reason": reason}, at=at, event_id=event_id)


def approved(
    order_id: str, by: str | None = "buyer-admin", *, at: int = T0, event_id: str | None = None
) -> InputEvent:
    return event(
        "OrderApproved", order_id, {"approved_by": by, "note": None}, at=at, event_id=event_id
    )


def rejected(
    order_id: str,
    reason: str = "over budget",
    by: str | None = "buyer-admin",
    *,
    at: int = T0,
    event_id: str | None = None,
) -> InputEvent:
    return event(
        "OrderRejected", order_id, {"rejected_by": by, "reason": reason}, at=at, event_id=event_id
    )


def fulfilled(
    order_id: str,
    fulfillment_id: str,
    warehouse: str,
    quantities: Mapping[str, int],
    *,
    at: int = T0,
    event_id: str | None = None,
) -> InputEvent:
    payload = {
        "fulfillment_id": fulfillment_id,
        "warehouse_id": warehouse,
        "lines": [{"sku": sku, "quantity": q} for sku, q in quantities.items()],
        "carrier": "ups",
        "tracking_number": "1Z0001",
    }
    return event("OrderFulfilled", order_id, payload, at=at, event_id=event_id)


def refunded(
    order_id: str,
    refund_id: str,
    returned: Mapping[str, tuple[int, str]],
    *,
    total: str | None = None,
    restock: bool = False,
    warehouse: str | None = None,
    currency: str = "USD",
    kind: str = "RETURN",
    shipping_amount: str | None = None,
    at: int = T0,
    event_id: str | None = None,
) -> InputEvent:
    """OrderRefunded of {sku: (quantity, amount)}; the total defaults to the amounts' sum."""
    lines: list[dict[str, Any]] = [
        {"sku": sku, "quantity": q, "amount": Decimal(amount)}
        for sku, (q, amount) in returned.items()
    ]
    shipping = None if shipping_amount is None else Decimal(shipping_amount)
    amount = (
        sum((Decimal(line["amount"]) for line in lines), shipping or Decimal(0))
        if total is None
        else Decimal(total)
    )
    payload = {
        "refund_id": refund_id,
        "kind": kind,
        "currency": currency,
        "lines": lines,
        "shipping_amount": shipping,
        "total": amount,
        "restock": restock,
        "warehouse_id": warehouse,
    }
    return event("OrderRefunded", order_id, payload, at=at, event_id=event_id)


# --- payment events ------------------------------------------------------------------------


def _payment(
    kind: str,
    order_id: str,
    amount: str,
    payment_id: str,
    currency: str,
    at: int,
    event_id: str | None,
    gateway: str = "stripe",
    **extra: Any,
) -> InputEvent:
    payload = {
        "payment_id": payment_id,
        "gateway": gateway,
        "amount": Decimal(amount),
        "currency": currency,
        **extra,
    }
    return event(kind, order_id, payload, at=at, event_id=event_id)


def authorized(
    order_id: str,
    amount: str,
    *,
    payment_id: str = "PAY-1",
    currency: str = "USD",
    at: int = T0,
    event_id: str | None = None,
    gateway: str = "stripe",
) -> InputEvent:
    return _payment(
        "PaymentAuthorized",
        order_id,
        amount,
        payment_id,
        currency,
        at,
        event_id,
        gateway,
        method="card",
    )


def captured(
    order_id: str,
    amount: str,
    *,
    payment_id: str = "PAY-1",
    currency: str = "USD",
    at: int = T0,
    event_id: str | None = None,
    gateway: str = "stripe",
) -> InputEvent:
    return _payment(
        "PaymentCaptured", order_id, amount, payment_id, currency, at, event_id, gateway
    )


def payment_failed(
    order_id: str,
    amount: str,
    *,
    payment_id: str = "PAY-1",
    currency: str = "USD",
    at: int = T0,
    event_id: str | None = None,
    gateway: str = "stripe",
) -> InputEvent:
    return _payment(
        "PaymentFailed",
        order_id,
        amount,
        payment_id,
        currency,
        at,
        event_id,
        gateway,
        operation="CAPTURE",
        reason="card_declined",
    )


def payment_refunded(
    order_id: str,
    amount: str,
    refund_id: str,
    *,
    payment_id: str = "PAY-1",
    currency: str = "USD",
    at: int = T0,
    event_id: str | None = None,
    gateway: str = "stripe",
) -> InputEvent:
    return _payment(
        "PaymentRefunded",
        order_id,
        amount,
        payment_id,
        currency,
        at,
        event_id,
        gateway,
        refund_id=refund_id,
    )


def settled(
    order_id: str,
    gross: str,
    fee: str,
    *,
    net: str | None = None,
    payout_id: str = "PO-1",
    payment_id: str = "PAY-1",
    currency: str = "USD",
    at: int = T0,
    event_id: str | None = None,
    gateway: str = "stripe",
) -> InputEvent:
    payload = {
        "payout_id": payout_id,
        "payment_id": payment_id,
        "gateway": gateway,
        "gross": Decimal(gross),
        "fee": Decimal(fee),
        "net": Decimal(gross) - Decimal(fee) if net is None else Decimal(net),
        "currency": currency,
    }
    return event("PaymentSettled", order_id, payload, at=at, event_id=event_id)


# --- inventory events ----------------------------------------------------------------------


def snapshot(
    sku: str,
    warehouse: str,
    on_hand: int,
    as_of: int,
    *,
    unit_cost: str | None = None,
    currency: str | None = None,
    at: int | None = None,
    event_id: str | None = None,
) -> InputEvent:
    payload = {
        "warehouse_id": warehouse,
        "on_hand": on_hand,
        "as_of": to_datetime(as_of),
        "unit_cost": None if unit_cost is None else Decimal(unit_cost),
        "currency": currency,
    }
    return event("StockSnapshot", sku, payload, at=as_of if at is None else at, event_id=event_id)


def adjusted(
    sku: str,
    warehouse: str,
    delta: int,
    *,
    at: int,
    reason: str = "RECEIPT",
    counterpart: str | None = None,
    unit_cost: str | None = None,
    currency: str | None = None,
    event_id: str | None = None,
    source: str = "test",
) -> InputEvent:
    payload = {
        "warehouse_id": warehouse,
        "delta": delta,
        "reason": reason,
        "reference": "DOC-1",
        "counterpart_warehouse_id": counterpart,
        "unit_cost": None if unit_cost is None else Decimal(unit_cost),
        "currency": currency,
    }
    return event("StockAdjusted", sku, payload, at=at, event_id=event_id, source=source)


# --- stock requests ------------------------------------------------------------------------


def reserve(
    order_id: str,
    sku: str,
    lines: Sequence[tuple[str, int]],
    destination: Destination = CALIFORNIA,
    *,
    at: int = T0,
) -> StockRequest:
    return StockRequest(
        RequestKind.RESERVE,
        order_id,
        sku,
        "",
        at,
        lines=tuple(lines),
        destination=destination,
    )


def release(order_id: str, sku: str, *, at: int = T0) -> StockRequest:
    return StockRequest(RequestKind.RELEASE, order_id, sku, "", at)


def ship(
    order_id: str, sku: str, ref: str, warehouse: str, quantity: int, *, at: int = T0
) -> StockRequest:
    return StockRequest(
        RequestKind.SHIP, order_id, sku, ref, at, quantity=quantity, warehouse=warehouse
    )


def restock(
    order_id: str, sku: str, ref: str, warehouse: str, quantity: int, *, at: int = T0
) -> StockRequest:
    return StockRequest(
        RequestKind.RESTOCK,
        order_id,
        sku,
        ref,
        at,
        quantity=quantity,
        warehouse=warehouse,
    )


# --- applying ------------------------------------------------------------------------------


def apply(
    order: Order, event: InputEvent, *, now: int | None = None, policy: Policy = POLICY
) -> OrderEffect:
    """Apply an order or payment event at `now` (default: when it occurred)."""
    return order.apply_event(
        event, lambda: {"topic": "test"}, RULES, policy, event.occurred_ms if now is None else now
    )


def apply_all(order: Order, events: Sequence[InputEvent]) -> list[OrderEffect]:
    return [apply(order, e) for e in events]


def stock_event(
    stock: SkuStock, event: InputEvent, *, now: int | None = None, policy: Policy = POLICY
) -> StockEffect:
    return stock.apply_event(event, RULES, policy, event.occurred_ms if now is None else now)


def stock_request(
    stock: SkuStock, request: StockRequest, *, now: int | None = None, policy: Policy = POLICY
) -> StockEffect:
    return stock.apply_request(request, RULES, policy, request.at_ms if now is None else now)


def stocked(sku: str, on_hand: Mapping[str, int], *, as_of: int = T0 - HOUR_MS) -> SkuStock:
    """A SKU's stock after one snapshot per warehouse, an hour before T0."""
    stock = SkuStock(sku)
    for warehouse, quantity in on_hand.items():
        stock_event(stock, snapshot(sku, warehouse, quantity, as_of))
    return stock


# --- storefront accounts ---------------------------------------------------------------------


def account(
    account_id: str,
    *,
    storefront: str = "shop",
    event_id: str | None = None,
    at: int = T0,
    **changes: Any,
) -> InputEvent:
    """A storefront account the shopper opened (AccountChanged): its name and e-mail made of
    its id, no phone or address, no ERP mark; `changes` override any of its fields."""
    payload: dict[str, Any] = {
        "storefront": storefront,
        "account_id": account_id,
        "email": f"{account_id}@example.com",
        "name": f"Buyer {account_id}",
        "phone": None,
        "addresses": [],
        "erp_customer_id": None,
        **changes,
    }
    key = f"{storefront}:{account_id}"
    return event("AccountChanged", key, payload, at=at, event_id=event_id)
