"""The stock agent: inventory events and stock requests into the stock table.

Reads commerce.inventory and internal.stock-requests (both keyed by SKU, co-partitioned) in
batches; per SKU in a batch it reads the state once, applies each record in arrival order,
and writes the state once. It sends the orders the answers they need (backorders), one
availability record per SKU whose availability the batch changed to the compacted
inventory.availability topic, stock changes from outside the ERP to the ERP as
AdjustInventory, the cost of goods shipped and restocked to the journal, and stock alerts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from faust.types import EventT, Message, StreamT

from streams.contracts.topics import INVENTORY, STOCK_REQUESTS
from streams.domain import messages
from streams.domain.alerts import SKU, AlertBook, stock_findings
from streams.domain.commands import adjustment_command
from streams.domain.events import InputEvent, Rejection
from streams.domain.followups import request_cost, require_rate
from streams.domain.messages import AllocationUpdate, StockRequest
from streams.domain.stock import SkuStock, StockEffect, Verdict
from streams.topology.accounting import Outcome
from streams.topology.agents.batch import Batch, per_partition, run_in_batches
from streams.topology.agents.context import AgentContext

_OUTCOMES = {Verdict.APPLIED: Outcome.APPLIED, Verdict.DUPLICATE: Outcome.DUPLICATE}


@dataclass(slots=True)
class _Item:
    message: Message
    record: InputEvent | StockRequest


class StockAgent:
    def __init__(self, context: AgentContext) -> None:
        self._c = context
        self._source = context.topic(INVENTORY, STOCK_REQUESTS)
        self._logical = {context.catalog.physical(n): n for n in (INVENTORY, STOCK_REQUESTS)}

    def register(self) -> None:
        self._c.app.agent(self._source, name="stock")(self._run)

    async def _run(self, stream: StreamT[bytes]) -> None:
        await run_in_batches(self._c.app, stream, self._handle_batch)

    def _handle_batch(self, batch: Batch, events: Sequence[EventT[bytes]]) -> None:
        updates: list[AllocationUpdate] = []
        for partition, group in per_partition(events):
            self._handle_partition(batch, partition, group, updates)
        self._c.outputs.feedback(batch, updates)

    def _handle_partition(
        self,
        batch: Batch,
        partition: int,
        events: Sequence[EventT[bytes]],
        updates: list[AllocationUpdate],
    ) -> None:
        work: dict[str, list[_Item]] = {}
        for event in events:
            message = event.message
            if self._logical[message.topic] == STOCK_REQUESTS:
                bundle = self._c.intake.admit_internal(
                    batch, STOCK_REQUESTS, message, messages.decode_requests
                )
                for request in bundle or ():
                    work.setdefault(request.sku, []).append(_Item(message, request))
            else:
                admitted = self._c.intake.admit(batch, INVENTORY, message)
                if admitted is not None:
                    work.setdefault(admitted.key, []).append(_Item(message, admitted))
        for sku, items in work.items():
            self._handle_sku(batch, partition, sku, items, updates)

    def _handle_sku(
        self,
        batch: Batch,
        partition: int,
        sku: str,
        items: list[_Item],
        updates: list[AllocationUpdate],
    ) -> None:
        """Read the SKU once, apply its records in order, write it once; its availability
        goes out once, if the batch changed it (or redelivered something, whose first
        availability record may have been lost)."""
        c = self._c
        tables = c.tables
        stock = tables.sku(sku)
        book = tables.alert_book(tables.stock_alerts, SKU, sku)
        before = stock.availability()
        book_changed = resend = False
        cause: tuple[str, int] | None = None
        for item in items:
            if isinstance(item.record, InputEvent):
                effect = self._apply_event(batch, item.message, stock, item.record)
                if effect is None:
                    continue
                cause = item.record.event_id, item.record.occurred_ms
            else:
                request = item.record
                effect = stock.apply_request(request, c.rules, c.policy, c.now_ms())
                cost = request_cost(stock, request, c.finance)
                # Sent again on a duplicate, which may be a redelivery whose first was lost.
                if cost is not None:
                    c.outputs.journal(batch, cost)
                updates += effect.updates
                cause = request.cause, request.at_ms
            duplicate = effect.verdict is Verdict.DUPLICATE
            resend |= duplicate
            book_changed |= self._alerts(batch, stock, book, duplicate)
        if cause is None:
            return
        tables.save_sku(batch, partition, stock)
        if book_changed:
            tables.save_alert_book(batch, tables.stock_alerts, partition, book)
        after = stock.availability()
        if after != before or resend:
            c.outputs.availability(batch, sku, after, *cause)

    def _apply_event(
        self, batch: Batch, message: Message, stock: SkuStock, event: InputEvent
    ) -> StockEffect | None:
        c = self._c
        try:
            require_rate(event, c.finance)
            effect = stock.apply_event(event, c.rules, c.policy, c.now_ms())
        except Rejection as rejection:
            c.intake.reject(batch, INVENTORY, message, "rules", rejection.reason, rejection.detail)
            return None
        c.accounting.outcome(INVENTORY, _OUTCOMES[effect.verdict])
        adjustment = adjustment_command(event, c.commands)
        # Sent again on a duplicate, which may be a redelivery whose first was lost.
        if adjustment is not None:
            c.outputs.command(batch, adjustment)
        return effect

    def _alerts(self, batch: Batch, stock: SkuStock, book: AlertBook, replay: bool) -> bool:
        """The alerts the record opened or resolved (on a replay every alert's current
        state too, for receivers that may have lost it); True if the book changed."""
        now = self._c.now_ms()
        changes = book.reconcile(stock_findings(stock, self._c.alerts), now)
        for alert in changes + book.current() if replay else changes:
            self._c.outputs.alert(batch, alert)
        return bool(changes)
