"""The order agent: order and payment events, and the stock's answers, into the orders table.

Reads commerce.orders, commerce.payments and internal.order-feedback (all keyed by order id,
co-partitioned); sends stock requests re-keyed by SKU, lifecycle transitions to
orders.status, and events that cannot be applied to their dead-letter topic.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import faust
from faust.types import Message, StreamT

from streams.accounting import EventAccounting, Later, Outcome
from streams.agents import derived
from streams.agents.deadletters import DeadLetters, source_of
from streams.agents.intake import Intake, partition_for
from streams.codec import Codec
from streams.deadletter import SourceRecord
from streams.domain import messages
from streams.domain.events import Rejection
from streams.domain.messages import AllocationUpdate, ExpireWaiting
from streams.domain.orders import Order, OrderEffect, Verdict
from streams.domain.policy import Policy
from streams.domain.routing import RoutingRules
from streams.tables import Tables
from streams.topics import (
    ORDER_FEEDBACK,
    ORDER_STATUS,
    ORDERS,
    PAYMENTS,
    STOCK_REQUESTS,
    TopicCatalog,
)

log = logging.getLogger(__name__)

_OUTCOMES = {
    Verdict.APPLIED: Outcome.APPLIED,
    Verdict.DUPLICATE: Outcome.DUPLICATE,
    Verdict.WAITING: Outcome.WAITING,
}


class OrderAgent:
    def __init__(
        self,
        app: faust.App,
        catalog: TopicCatalog,
        codec: Codec,
        tables: Tables,
        intake: Intake,
        dead_letters: DeadLetters,
        accounting: EventAccounting,
        rules: RoutingRules,
        policy: Policy,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._catalog = catalog
        self._codec = codec
        self._tables = tables
        self._intake = intake
        self._dead_letters = dead_letters
        self._accounting = accounting
        self._rules = rules
        self._policy = policy
        self._clock = clock
        self._app = app
        self._source = app.topic(
            *(catalog.physical(n) for n in (ORDERS, PAYMENTS, ORDER_FEEDBACK)),
            partitions=catalog.partitions(ORDERS),
        )
        self._requests = app.topic(
            catalog.physical(STOCK_REQUESTS), partitions=catalog.partitions(STOCK_REQUESTS)
        )
        self._feedback = app.topic(
            catalog.physical(ORDER_FEEDBACK), partitions=catalog.partitions(ORDER_FEEDBACK)
        )
        self._status = app.topic(
            catalog.physical(ORDER_STATUS), partitions=catalog.partitions(ORDER_STATUS)
        )
        self._status_topic = catalog.physical(ORDER_STATUS)
        self._logical = {catalog.physical(n): n for n in (ORDERS, PAYMENTS, ORDER_FEEDBACK)}

    def register(self, app: faust.App, expiry_interval: float) -> None:
        app.agent(self._source, name="orders")(self._run)
        app.timer(expiry_interval, name="orders.expiry")(self._expiry_tick)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def _run(self, stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            message = event.message
            name = self._logical[message.topic]
            if name == ORDER_FEEDBACK:
                await self._on_feedback(message)
            else:
                await self._on_input(name, message)

    async def _on_input(self, name: str, message: Message) -> None:
        event = await self._intake.admit(name, message)
        if event is None:
            return
        order = self._tables.order(event.key)
        had_waiting = bool(order.waiting)
        try:
            effect = order.apply_event(
                event,
                source_of(message).to_json(),
                self._rules,
                self._policy,
                self._now_ms(),
            )
        except Rejection as rejection:
            await self._intake.reject(name, message, "rules", rejection.reason, rejection.detail)
            return
        self._accounting.outcome(name, _OUTCOMES[effect.verdict], effect.reason)
        await self._commit(order, effect, had_waiting)

    async def _on_feedback(self, message: Message) -> None:
        try:
            feedback = messages.decode_feedback(message.value or b"")
        except (ValueError, KeyError, TypeError) as exc:
            # Only erpbridge writes here; a bad record is a bug, kept for inspection.
            self._accounting.consumed(ORDER_FEEDBACK)
            await self._intake.reject(ORDER_FEEDBACK, message, "decode", "corrupt", repr(exc))
            return
        order = self._tables.order(feedback.order_id)
        had_waiting = bool(order.waiting)
        if isinstance(feedback, AllocationUpdate):
            order.apply_allocation(feedback)
            await self._commit(order, OrderEffect(Verdict.APPLIED), had_waiting)
        elif isinstance(feedback, ExpireWaiting):
            await self._commit(order, order.expire(feedback.now_ms, self._policy), had_waiting)

    async def _commit(self, order: Order, effect: OrderEffect, had_waiting: bool) -> None:
        """Dead letters first (awaited), then state, then the other outputs.

        Outputs go through Faust's send buffer without waiting for each one: Faust flushes
        it before committing the offsets of the records that caused them.
        """
        for dead in effect.dead:
            record = SourceRecord.from_json(dead.waiting.record)
            name = self._catalog.logical(record.topic)
            await self._dead_letters.send(
                name, record, "rules", dead.rejection.reason, dead.rejection.detail
            )
            self._accounting.waited(name, Later.DEAD_LETTERED, dead.rejection.reason)
        for waiting in effect.resolved:
            name = self._catalog.logical(SourceRecord.from_json(waiting.record).topic)
            self._accounting.waited(name, Later.APPLIED)
        self._tables.save_order(order, order.next_deadline(self._policy), had_waiting)
        for request in effect.requests:
            self._requests.send_soon(key=request.sku.encode(), value=messages.encode(request))
        for transition in effect.transitions:
            datum = derived.status_changed(order.order_id, transition)
            self._status.send_soon(
                key=order.order_id.encode(),
                value=self._codec.encode(
                    "erpbridge.OrderStatusChanged", datum, topic=self._status_topic
                ),
            )

    async def _expiry_tick(self) -> None:
        """Ask the order agent to expire waiting events that are due, on owned partitions.

        The timer only sends messages; the agent applies them like any event, so table
        writes stay in the stream and each partition's owner alone acts on it.
        """
        now = self._now_ms()
        topic = self._catalog.physical(ORDERS)
        partitions = self._catalog.partitions(ORDERS)
        owned = {tp.partition for tp in self._app.assignor.assigned_actives() if tp.topic == topic}
        for key, value in list(self._tables.deadlines.items()):
            if int(value) <= now and partition_for(key, partitions) in owned:
                tick = ExpireWaiting(key.decode(), now)
                await self._feedback.send(key=key, value=messages.encode(tick))
