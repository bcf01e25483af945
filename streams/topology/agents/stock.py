"""The stock agent: inventory events and stock requests into the stock table.

Reads commerce.inventory and internal.stock-requests (both keyed by SKU, co-partitioned);
sends reservation outcomes back to orders, each change of a SKU's availability to the
compacted inventory.availability topic, stock changes from outside the ERP to it as
AdjustInventory, the cost of goods shipped and restocked to the journal, and stock alerts.
"""

from __future__ import annotations

from faust.types import Message, StreamT

from streams.contracts.topics import AVAILABILITY, INVENTORY, ORDER_FEEDBACK, STOCK_REQUESTS
from streams.domain import messages
from streams.domain.alerts import SKU, stock_findings
from streams.domain.commands import Command, adjustment_command
from streams.domain.events import Rejection
from streams.domain.finance import JournalEntry
from streams.domain.followups import request_cost, require_rate
from streams.domain.stock import Availability, SkuStock, StockEffect, Verdict
from streams.topology.accounting import Outcome
from streams.topology.agents import derived
from streams.topology.agents.context import AgentContext
from streams.topology.agents.logcontext import about_record

_OUTCOMES = {Verdict.APPLIED: Outcome.APPLIED, Verdict.DUPLICATE: Outcome.DUPLICATE}


class StockAgent:
    def __init__(self, context: AgentContext) -> None:
        self._c = context
        self._source = context.topic(INVENTORY, STOCK_REQUESTS)
        self._feedback = context.topic(ORDER_FEEDBACK)
        self._availability = context.topic(AVAILABILITY)
        self._logical = {context.catalog.physical(n): n for n in (INVENTORY, STOCK_REQUESTS)}

    def register(self) -> None:
        self._c.app.agent(self._source, name="stock")(self._run)

    async def _run(self, stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            message = event.message
            name = self._logical[message.topic]
            with about_record(name, message):
                if name == STOCK_REQUESTS:
                    await self._on_request(message)
                else:
                    await self._on_inventory(message)

    async def _on_inventory(self, message: Message) -> None:
        event = await self._c.intake.admit(INVENTORY, message)
        if event is None:
            return
        stock = self._c.tables.sku(event.key)
        before = stock.availability()
        try:
            require_rate(event, self._c.finance)
            effect = stock.apply_event(event, self._c.rules, self._c.policy, self._c.now_ms())
        except Rejection as rejection:
            await self._c.intake.reject(
                INVENTORY, message, "rules", rejection.reason, rejection.detail
            )
            return
        self._c.accounting.outcome(INVENTORY, _OUTCOMES[effect.verdict])
        adjustment = adjustment_command(event, self._c.commands)
        await self._commit(
            stock, before, effect, event.event_id, event.occurred_ms, adjustment=adjustment
        )

    async def _on_request(self, message: Message) -> None:
        request = await self._c.intake.admit_internal(
            STOCK_REQUESTS, message, messages.decode_request
        )
        if request is None:
            return
        stock = self._c.tables.sku(request.sku)
        before = stock.availability()
        effect = stock.apply_request(request, self._c.rules, self._c.policy, self._c.now_ms())
        cause = f"{request.order_id}:{request.kind.value}:{request.ref}"
        await self._commit(
            stock,
            before,
            effect,
            cause,
            request.at_ms,
            cost=request_cost(stock, request, self._c.finance),
        )

    async def _commit(
        self,
        stock: SkuStock,
        before: Availability,
        effect: StockEffect,
        cause: str,
        at_ms: int,
        *,
        adjustment: Command | None = None,
        cost: JournalEntry | None = None,
    ) -> None:
        """State, then outputs (see the order agent). Adjustments and cost entries go again
        on a duplicate, which may be a redelivery whose first outputs were lost."""
        now = self._c.now_ms()
        tables = self._c.tables
        alerts = tables.reconcile_alerts(
            tables.stock_alerts,
            SKU,
            stock.sku,
            stock_findings(stock, self._c.alerts),
            now,
            replay=effect.verdict is Verdict.DUPLICATE,
        )
        self._c.tables.save_sku(stock)
        if adjustment is not None:
            self._c.outputs.command(adjustment)
        if cost is not None:
            self._c.outputs.journal(cost)
        for alert in alerts:
            self._c.outputs.alert(alert)
        for update in effect.updates:
            self._feedback.send_soon(key=update.order_id.encode(), value=messages.encode(update))
        after = stock.availability()
        # A duplicate may be a redelivery after a crash that lost the first send: send again.
        if after != before or effect.verdict is Verdict.DUPLICATE:
            datum = derived.stock_availability(stock.sku, after, cause, at_ms)
            self._availability.send_soon(
                key=stock.sku.encode(),
                value=self._c.codec.encode(
                    "erpbridge.StockAvailability", datum, topic=self._availability.get_topic_name()
                ),
            )
