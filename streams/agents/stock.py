"""The stock agent: inventory events and stock requests into the stock table.

Reads commerce.inventory and internal.stock-requests (both keyed by SKU, co-partitioned);
sends reservation outcomes back to orders and each change of a SKU's availability to the
compacted inventory.availability topic.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import faust
from faust.types import Message, StreamT

from streams.accounting import EventAccounting, Outcome
from streams.agents import derived
from streams.agents.intake import Intake
from streams.codec import Codec
from streams.domain import messages
from streams.domain.events import Rejection
from streams.domain.policy import Policy
from streams.domain.routing import RoutingRules
from streams.domain.stock import Availability, SkuStock, StockEffect, Verdict
from streams.tables import Tables
from streams.topics import AVAILABILITY, INVENTORY, ORDER_FEEDBACK, STOCK_REQUESTS, TopicCatalog

_OUTCOMES = {Verdict.APPLIED: Outcome.APPLIED, Verdict.DUPLICATE: Outcome.DUPLICATE}


class StockAgent:
    def __init__(
        self,
        app: faust.App,
        catalog: TopicCatalog,
        codec: Codec,
        tables: Tables,
        intake: Intake,
        accounting: EventAccounting,
        rules: RoutingRules,
        policy: Policy,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._codec = codec
        self._tables = tables
        self._intake = intake
        self._accounting = accounting
        self._rules = rules
        self._policy = policy
        self._clock = clock
        self._source = app.topic(
            *(catalog.physical(n) for n in (INVENTORY, STOCK_REQUESTS)),
            partitions=catalog.partitions(INVENTORY),
        )
        self._feedback = app.topic(
            catalog.physical(ORDER_FEEDBACK), partitions=catalog.partitions(ORDER_FEEDBACK)
        )
        self._availability = app.topic(
            catalog.physical(AVAILABILITY), partitions=catalog.partitions(AVAILABILITY)
        )
        self._availability_topic = catalog.physical(AVAILABILITY)
        self._logical = {catalog.physical(n): n for n in (INVENTORY, STOCK_REQUESTS)}

    def register(self, app: faust.App) -> None:
        app.agent(self._source, name="stock")(self._run)

    async def _run(self, stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            message = event.message
            if self._logical[message.topic] == STOCK_REQUESTS:
                await self._on_request(message)
            else:
                await self._on_inventory(message)

    async def _on_inventory(self, message: Message) -> None:
        event = await self._intake.admit(INVENTORY, message)
        if event is None:
            return
        stock = self._tables.sku(event.key)
        before = stock.availability()
        try:
            effect = stock.apply_event(event, self._rules, self._policy, self._now_ms())
        except Rejection as rejection:
            await self._intake.reject(
                INVENTORY, message, "rules", rejection.reason, rejection.detail
            )
            return
        self._accounting.outcome(INVENTORY, _OUTCOMES[effect.verdict])
        await self._commit(stock, before, effect, event.event_id, event.occurred_ms)

    async def _on_request(self, message: Message) -> None:
        try:
            request = messages.decode_request(message.value or b"")
        except (ValueError, KeyError, TypeError) as exc:
            # Only erpbridge writes here; a bad record is a bug, kept for inspection.
            self._accounting.consumed(STOCK_REQUESTS)
            await self._intake.reject(STOCK_REQUESTS, message, "decode", "corrupt", repr(exc))
            return
        stock = self._tables.sku(request.sku)
        before = stock.availability()
        effect = stock.apply_request(request, self._rules, self._policy, self._now_ms())
        cause = f"{request.order_id}:{request.kind.value}:{request.ref}"
        await self._commit(stock, before, effect, cause, request.at_ms)

    async def _commit(
        self, stock: SkuStock, before: Availability, effect: StockEffect, cause: str, at_ms: int
    ) -> None:
        self._tables.save_sku(stock)
        for update in effect.updates:
            self._feedback.send_soon(key=update.order_id.encode(), value=messages.encode(update))
        after = stock.availability()
        # A duplicate may be a redelivery after a crash that lost the first send: send again.
        if after != before or effect.verdict is Verdict.DUPLICATE:
            datum = derived.stock_availability(stock.sku, after, cause, at_ms)
            self._availability.send_soon(
                key=stock.sku.encode(),
                value=self._codec.encode(
                    "erpbridge.StockAvailability", datum, topic=self._availability_topic
                ),
            )

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)
