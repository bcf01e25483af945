"""What a change hands on: the ERP commands and journal entries that became due.

Both are functions of the order's facts, recorded as issued in the order's state so each
goes once; a redelivered event (a replay after a crash that may have lost the outputs)
hands on everything again, with the same ids, for the receivers to de-duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from streams.domain.commands import (
    Command,
    CommandPolicy,
    issue,
    journal_command_id,
    order_commands,
    sales_order_id,
)
from streams.domain.events import InputEvent, Rejection
from streams.domain.finance import (
    FinanceMapping,
    JournalEntry,
    MissingRateError,
    cost_entry,
    order_journal,
)
from streams.domain.messages import RequestKind, StockRequest
from streams.domain.money import MINOR_UNITS
from streams.domain.orders import Order
from streams.domain.stock import SkuStock


@dataclass(frozen=True, slots=True)
class FollowUps:
    commands: list[Command]
    """Document commands (sales order, cancellation, shipments, credit notes)."""
    entries: list[JournalEntry]
    """Journal entries; each also goes to the ERP as a PostJournalEntry command."""


def follow_ups(
    order: Order, policy: CommandPolicy, mapping: FinanceMapping, *, replay: bool = False
) -> FollowUps:
    """What became due (recorded as issued), or with `replay` everything due so far."""
    documents = order_commands(order, policy, replay=replay)
    fresh = issue(order, documents)
    # Revenue recognised at confirmation is posted when the sales order was issued.
    entries = order_journal(
        order,
        mapping,
        order.issued.get(sales_order_id(order.order_id)),
        done=lambda entry_id: not replay and journal_command_id(entry_id) in order.issued,
    )
    posted = [e for e in entries if journal_command_id(e.entry_id) not in order.issued]
    for entry in posted:
        order.issued[journal_command_id(entry.entry_id)] = entry.posted_ms
    if replay:
        return FollowUps(documents, entries)
    return FollowUps(fresh, posted)


def request_cost(
    stock: SkuStock, request: StockRequest, mapping: FinanceMapping
) -> JournalEntry | None:
    """Cost of goods sold for a shipment, or its reversal for a restock, at the unit cost the
    ERP gave for the warehouse; None for other requests or while no cost is known."""
    if request.kind not in (RequestKind.SHIP, RequestKind.RESTOCK) or request.warehouse is None:
        return None
    at = stock.warehouses.get(request.warehouse)
    if at is None or at.unit_cost is None or at.cost_currency is None:
        return None
    return cost_entry(
        request.order_id,
        stock.sku,
        request.ref,
        request.warehouse,
        request.quantity,
        at.unit_cost,
        at.cost_currency,
        request.at_ms,
        mapping,
        restock=request.kind is RequestKind.RESTOCK,
        purchase_order_number=request.purchase_order_number,
    )


def require_rate(event: InputEvent, mapping: FinanceMapping) -> None:
    """Reject an event in a currency the journal has no exchange rate for on the event's date,
    before it applies: state never holds a fact whose journal entry could not be posted."""
    currency = event.payload.get("currency")
    if currency is None or currency not in MINOR_UNITS:
        return  # no money, or a currency the rules reject as unknown
    try:
        mapping.rate(currency, datetime.fromtimestamp(event.occurred_ms / 1000, UTC).date())
    except MissingRateError as error:
        raise Rejection("no-exchange-rate", str(error)) from None
