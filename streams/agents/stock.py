"""The stock agent: inventory events and stock requests into the stock table.

Reads commerce.inventory and internal.stock-requests (both keyed by SKU, co-partitioned);
sends reservation outcomes back to orders and each change of a SKU's availability to the
compacted inventory.availability topic.
"""

from __future__ import annotations

from dataclasses import dataclass

from faust.types import Message, StreamT

from streams.accounting import Outcome
from streams.agents import derived
from streams.agents.batching import Outbox, partition_groups
from streams.agents.context import AgentContext
from streams.domain import messages
from streams.domain.events import Rejection
from streams.domain.stock import Availability, SkuStock, StockEffect, Verdict
from streams.tables import Tables
from streams.topics import AVAILABILITY, INVENTORY, ORDER_FEEDBACK, STOCK_REQUESTS

_OUTCOMES = {Verdict.APPLIED: Outcome.APPLIED, Verdict.DUPLICATE: Outcome.DUPLICATE}


@dataclass
class _Touched:
    stock: SkuStock
    before: Availability
    cause: str = ""
    at_ms: int = 0
    resend: bool = False
    """A duplicate may be a redelivery after a crash that lost the first send: send again."""


class _Working:
    """The SKUs one partition group touches, each read once and saved once."""

    def __init__(self, tables: Tables) -> None:
        self._tables = tables
        self.touched: dict[str, _Touched] = {}

    def sku(self, sku: str) -> _Touched:
        touched = self.touched.get(sku)
        if touched is None:
            stock = self._tables.sku(sku)
            touched = self.touched[sku] = _Touched(stock, stock.availability())
        return touched


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
        outbox = self._c.outbox()
        async for group in partition_groups(stream, self._c.batch, outbox):
            working = _Working(self._c.tables)
            for event in group:
                message = event.message
                if self._logical[message.topic] == STOCK_REQUESTS:
                    await self._on_request(message, working, outbox)
                else:
                    await self._on_inventory(message, working)
            await self._save(working, outbox)

    async def _on_inventory(self, message: Message, working: _Working) -> None:
        event = await self._c.intake.admit(INVENTORY, message)
        if event is None:
            return
        touched = working.sku(event.key)
        try:
            effect = touched.stock.apply_event(
                event, self._c.rules, self._c.policy, self._c.now_ms()
            )
        except Rejection as rejection:
            await self._c.intake.reject(
                INVENTORY, message, "rules", rejection.reason, rejection.detail
            )
            return
        self._c.accounting.outcome(INVENTORY, _OUTCOMES[effect.verdict])
        self._note(touched, effect, event.event_id, event.occurred_ms)

    async def _on_request(self, message: Message, working: _Working, outbox: Outbox) -> None:
        request = await self._c.intake.admit_internal(
            STOCK_REQUESTS, message, messages.decode_request
        )
        if request is None:
            return
        touched = working.sku(request.sku)
        effect = touched.stock.apply_request(
            request, self._c.rules, self._c.policy, self._c.now_ms()
        )
        for update in effect.updates:
            await outbox.send(self._feedback, update.order_id.encode(), messages.encode(update))
        cause = f"{request.order_id}:{request.kind.value}:{request.ref}"
        self._note(touched, effect, cause, request.at_ms)

    @staticmethod
    def _note(touched: _Touched, effect: StockEffect, cause: str, at_ms: int) -> None:
        touched.cause, touched.at_ms = cause, at_ms
        touched.resend = touched.resend or effect.verdict is Verdict.DUPLICATE

    async def _save(self, working: _Working, outbox: Outbox) -> None:
        """Each SKU's state once, and its availability once if it changed over the group.

        Like a Kafka Streams record cache in front of a compacted topic: changes that
        follow each other within one group reach inventory.availability as their result.
        """
        for sku, touched in working.touched.items():
            self._c.tables.save_sku(touched.stock)
            after = touched.stock.availability()
            if after != touched.before or touched.resend:
                datum = derived.stock_availability(sku, after, touched.cause, touched.at_ms)
                await outbox.send(
                    self._availability,
                    sku.encode(),
                    self._c.codec.encode(
                        "erpbridge.StockAvailability",
                        datum,
                        topic=self._availability.get_topic_name(),
                    ),
                )
