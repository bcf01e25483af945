"""ERP commands: what erpbridge asks an ERP to do, each with a deterministic id.

A command id is the idempotency key a sink de-duplicates on. It is derived from the source
entity, the operation and its version (`<order id>/sales-order/1`, `<order id>/shipment/
<fulfilment id>`, ...), never from a clock or a counter, so re-processing after a crash or a
replay of the input yields the same id.

Commands wait on `internal.erp-pending` for the rate limit (streams.dispatch), where some
coalesce; the `dispatch_key` keeps the ones that may coalesce on one partition. The
dispatcher makes each PostJournalEntry itself, of its entry on `finance.journal`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import IntEnum, StrEnum
from typing import Any

from streams.domain import statejson
from streams.domain.events import InputEvent
from streams.domain.money import allocate, quantize_minor
from streams.domain.orders import Movement, Order, Placement

SOURCE = "erpbridge"


class Kind(StrEnum):
    """The ErpCommand union's members."""

    CREATE_SALES_ORDER = "CreateSalesOrder"
    CANCEL_SALES_ORDER = "CancelSalesOrder"
    RECORD_SHIPMENT = "RecordShipment"
    CREATE_CREDIT_NOTE = "CreateCreditNote"
    ADJUST_INVENTORY = "AdjustInventory"
    POST_JOURNAL_ENTRY = "PostJournalEntry"
    UPSERT_CUSTOMER = "UpsertCustomer"


class Lane(IntEnum):
    """Priority lanes, most urgent first: what customers and money wait on goes first."""

    ORDERS = 0
    """Sales orders, cancellations, credit notes, and the customers sales orders name."""
    SHIPMENTS = 1
    BOOKKEEPING = 2
    """Journal entries and inventory adjustments, which may also coalesce while they wait."""


LANES: dict[Kind, Lane] = {
    Kind.CREATE_SALES_ORDER: Lane.ORDERS,
    Kind.CANCEL_SALES_ORDER: Lane.ORDERS,
    Kind.CREATE_CREDIT_NOTE: Lane.ORDERS,
    Kind.UPSERT_CUSTOMER: Lane.ORDERS,
    Kind.RECORD_SHIPMENT: Lane.SHIPMENTS,
    Kind.ADJUST_INVENTORY: Lane.BOOKKEEPING,
    Kind.POST_JOURNAL_ENTRY: Lane.BOOKKEEPING,
}


@dataclass(frozen=True, slots=True)
class Command:
    command_id: str
    kind: Kind
    target: str
    """The ERP it is addressed to, as named in the rate limits."""
    created_ms: int
    """When the fact that called for it happened; stable across replays."""
    dispatch_key: str
    """Key on the pending topic: the order id, the SKU and warehouse of an adjustment, or
    the storefront account of a customer."""
    body: dict[str, Any]
    """The union member's Avro datum (Decimals as Decimal)."""

    @property
    def lane(self) -> Lane:
        return LANES[self.kind]

    def to_json(self) -> dict[str, Any]:
        return {
            "command_id": self.command_id,
            "kind": self.kind.value,
            "target": self.target,
            "created_ms": self.created_ms,
            "dispatch_key": self.dispatch_key,
            "body": statejson.tag(self.body),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Command:
        return cls(
            command_id=data["command_id"],
            kind=Kind(data["kind"]),
            target=data["target"],
            created_ms=data["created_ms"],
            dispatch_key=data["dispatch_key"],
            body=statejson.untag(data["body"]),
        )

    def encode(self) -> bytes:
        """The pending topic's value."""
        return statejson.dumps(self.to_json())

    @classmethod
    def decode(cls, data: bytes) -> Command:
        return cls.from_json(statejson.loads(data))

    def to_datum(self) -> dict[str, Any]:
        """The erpbridge.ErpCommand datum for erp.commands."""
        return {
            "event_id": self.command_id,
            "occurred_at": datetime.fromtimestamp(self.created_ms / 1000, UTC),
            "source": SOURCE,
            "command_id": self.command_id,
            "target": self.target,
            "priority": int(self.lane),
            "command": (f"erpbridge.{self.kind.value}", self.body),
        }

    @classmethod
    def from_datum(cls, datum: dict[str, Any]) -> Command:
        """A decoded erpbridge.ErpCommand, as a sink reads it from erp.commands.

        The dispatch key only matters on the pending topic; a sink gets the body's entity.
        """
        member, body = datum["command"]
        kind = Kind(member.rsplit(".", 1)[-1])
        occurred = datum["occurred_at"]
        created_ms = statejson.millis(occurred) if isinstance(occurred, datetime) else occurred
        if kind is Kind.UPSERT_CUSTOMER:
            key = f"{body['storefront']}:{body['account_id']}"
        else:
            key = body.get("order_id") or f"{body.get('sku')}@{body.get('warehouse_id')}"
        return cls(datum["command_id"], kind, datum["target"], created_ms, key, body)


def sales_order_id(order_id: str) -> str:
    return f"{order_id}/sales-order/1"


def order_of_sales_order(command_id: str) -> str | None:
    """The order a sales-order command id stands for; None for any other command id."""
    order_id, sep, version = command_id.rpartition("/sales-order/")
    return order_id if sep and version == "1" else None


def cancellation_id(order_id: str) -> str:
    return f"{order_id}/cancel/1"


def shipment_id(order_id: str, fulfilment_id: str) -> str:
    return f"{order_id}/shipment/{fulfilment_id}"


def credit_note_id(order_id: str, refund_id: str) -> str:
    return f"{order_id}/credit-note/{refund_id}"


def adjustment_id(sku: str, warehouse: str, event_id: str) -> str:
    return f"{sku}@{warehouse}/adjust/{event_id}"


def journal_command_id(entry_id: str) -> str:
    return f"{entry_id}/post"


@dataclass(frozen=True, slots=True)
class CommandPolicy:
    target: str = "tryton"
    confirm_on: str = "captured"
    """"captured" or "authorized": the payment that makes a prepaid order a sales order."""
    erp_sources: tuple[str, ...] = ("erp:",)
    """`source` prefixes of events that come from the ERP, whose changes it already knows."""


def confirmed_at(order: Order, policy: CommandPolicy) -> int | None:
    """When the order became confirmable as an ERP sales order, from its facts alone.

    An order on account (which always carries a purchase-order number) is confirmable when
    placed; a prepaid one when its captures (or authorizations, per policy) in the order's
    currency first added up to the total, counted in the order they happened, not arrived.
    An order that waits for approval is confirmable no earlier than its approval.
    """
    placement = order.placement
    if placement is None:
        return None
    if not placement.approval_required:
        return _payable_at(order, placement, policy)
    approval = order.approval
    if approval is None or not approval.approved:
        return None
    payable = _payable_at(order, placement, policy)
    return None if payable is None else max(payable, approval.at_ms)


def _payable_at(order: Order, placement: Placement, policy: CommandPolicy) -> int | None:
    if placement.payment_terms == "ON_ACCOUNT" or placement.total <= 0:
        return placement.placed_ms
    payments = [p for p in order.payments.values() if p.currency == placement.currency]
    times = [_reached(placement, [m for p in payments for m in p.captures.items()])]
    if policy.confirm_on == "authorized":
        times.append(_reached(placement, [m for p in payments for m in p.authorizations.items()]))
    known = [t for t in times if t is not None]
    return max(placement.placed_ms, min(known)) if known else None


def _reached(placement: Placement, movements: list[tuple[str, Movement]]) -> int | None:
    running = Decimal(0)
    for _, movement in sorted(movements, key=lambda m: (m[1].at_ms, m[0])):
        running += movement.amount
        if running >= placement.total:
            return movement.at_ms
    return None


def order_commands(order: Order, policy: CommandPolicy, *, replay: bool = False) -> list[Command]:
    """Every document command the order's facts call for now; without `replay` only those it
    has not issued yet (each depends only on facts that never change once recorded, so an
    issued command need not be built again).

    The sales order goes once the order is confirmable, unless it was cancelled first (then
    the ERP never hears of it); everything else about the order needs the sales order in
    the ERP, so it follows it: a cancellation, each shipment, each credit note of a refund
    that succeeded (a pending refund is not posted).
    """
    placement = order.placement
    if placement is None:
        return []

    def wanted(command_id: str) -> bool:
        return replay or command_id not in order.issued

    so_id = sales_order_id(order.order_id)
    created = order.issued.get(so_id)
    if created is None:
        created = confirmed_at(order, policy)
        if created is None or order.cancelled_ms is not None:
            return []
    commands = []
    if wanted(so_id):
        commands.append(
            _command(
                policy,
                so_id,
                Kind.CREATE_SALES_ORDER,
                created,
                order.order_id,
                _sales_order(order.order_id, placement),
            )
        )
    if order.cancelled_ms is not None and wanted(cancellation_id(order.order_id)):
        body: dict[str, Any] = {"order_id": order.order_id, "reason": order.cancel_reason}
        commands.append(
            _command(
                policy,
                cancellation_id(order.order_id),
                Kind.CANCEL_SALES_ORDER,
                order.cancelled_ms,
                order.order_id,
                body,
            )
        )
    for fulfilment_id, f in sorted(order.fulfilments.items(), key=lambda i: (i[1].at_ms, i[0])):
        command_id = shipment_id(order.order_id, fulfilment_id)
        if not wanted(command_id):
            continue
        body = {
            "order_id": order.order_id,
            "fulfillment_id": fulfilment_id,
            "warehouse_id": f.warehouse,
            "lines": [{"sku": sku, "quantity": q} for sku, q in sorted(f.lines.items())],
            "carrier": f.carrier,
            "tracking_number": f.tracking_number,
            "purchase_order_number": placement.purchase_order_number,
        }
        commands.append(
            _command(policy, command_id, Kind.RECORD_SHIPMENT, f.at_ms, order.order_id, body)
        )
    for refund_id, succeeded_ms in sorted(refunds_succeeded(order).items()):
        command_id = credit_note_id(order.order_id, refund_id)
        if not wanted(command_id):
            continue
        refund = order.refunds[refund_id]
        body = {
            "order_id": order.order_id,
            "refund_id": refund_id,
            "currency": placement.currency,
            "lines": [
                {"sku": sku, "quantity": q, "amount": refund.amounts.get(sku, Decimal(0))}
                for sku, q in sorted(refund.lines.items())
            ],
            "total": refund.total,
            "restock": refund.restock,
            "warehouse_id": min(refund.warehouses.values(), default=None),
            "purchase_order_number": placement.purchase_order_number,
        }
        commands.append(
            _command(
                policy, command_id, Kind.CREATE_CREDIT_NOTE, succeeded_ms, order.order_id, body
            )
        )
    return commands


def refunds_succeeded(order: Order) -> dict[str, int]:
    """Refund id -> when the refund succeeded: when the gateway confirmed it (matched by
    refund id), or when it was recorded for an order on account (nothing to pay back)."""
    placement = order.placement
    on_account = placement is not None and placement.payment_terms == "ON_ACCOUNT"
    paid_back = {r: m.at_ms for p in order.payments.values() for r, m in p.refunds.items()}
    succeeded: dict[str, int] = {}
    for refund_id, refund in order.refunds.items():
        if on_account:
            succeeded[refund_id] = refund.at_ms
        elif refund_id in paid_back:
            succeeded[refund_id] = max(refund.at_ms, paid_back[refund_id])
    return succeeded


def adjustment_command(event: InputEvent, policy: CommandPolicy) -> Command | None:
    """AdjustInventory for a stock change that did not come from the ERP; None if it did."""
    if event.kind != "StockAdjusted" or event.source.startswith(policy.erp_sources):
        return None
    p = event.payload
    body = {
        "sku": event.key,
        "warehouse_id": p["warehouse_id"],
        "delta": p["delta"],
        "reason": p["reason"],
        "reference": p.get("reference"),
    }
    return _command(
        policy,
        adjustment_id(event.key, p["warehouse_id"], event.event_id),
        Kind.ADJUST_INVENTORY,
        event.occurred_ms,
        f"{event.key}@{p['warehouse_id']}",
        body,
    )


def issue(order: Order, commands: Iterable[Command]) -> list[Command]:
    """The commands the order has not issued yet, now recorded as issued."""
    new = [c for c in commands if c.command_id not in order.issued]
    for command in new:
        order.issued[command.command_id] = command.created_ms
    return new


def _command(
    policy: CommandPolicy,
    command_id: str,
    kind: Kind,
    created_ms: int,
    key: str,
    body: dict[str, Any],
) -> Command:
    return Command(command_id, kind, policy.target, created_ms, key, body)


def _sales_order(order_id: str, placement: Placement) -> dict[str, Any]:
    """CreateSalesOrder: order-level discounts are spread over the lines (the ERP's sales
    line has a discount, the sales order none), so the ERP's total equals the order's."""
    doc = placement.document
    lines = doc["lines"]
    extra = _order_discount_per_line(lines, doc.get("discounts", []), placement.currency)
    return {
        "order_id": order_id,
        "customer": doc["customer"],
        "ship_to": doc["ship_to"],
        "bill_to": doc.get("bill_to"),
        "channel": doc["channel"],
        "currency": placement.currency,
        "lines": [
            {
                "sku": line["sku"],
                "quantity": line["quantity"],
                "unit_price": line["unit_price"],
                "discount": line["discount"] + share,
                "tax_lines": line["tax_lines"],
            }
            for line, share in zip(lines, extra, strict=True)
        ],
        "shipping": doc.get("shipping"),
        "total": placement.total,
        "purchase_order_number": placement.purchase_order_number,
        "storefront": doc.get("storefront"),
    }


def _order_discount_per_line(
    lines: list[dict[str, Any]], discounts: list[dict[str, Any]], currency: str
) -> list[Decimal]:
    total = sum((d["amount"] for d in discounts), Decimal(0))
    if total == 0:
        return [Decimal(0)] * len(lines)
    weights = [
        max(line["quantity"] * line["unit_price"] - line["discount"], Decimal(0)) for line in lines
    ]
    if sum(weights) == 0:
        weights = [Decimal(1)] * len(lines)
    whole = quantize_minor(total, currency)
    shares = allocate(whole, weights, currency)
    # Sub-minor-unit leftovers (amounts may carry 4 decimals) stay exact on the first line.
    shares[0] += total - whole
    return shares
