"""The order agent: order and payment events, and the stock's answers, into the orders table.

Reads commerce.orders, commerce.payments and internal.order-feedback (all keyed by order id,
co-partitioned); sends stock requests re-keyed by SKU, lifecycle transitions to
orders.status, and events that cannot be applied to their dead-letter topic.
"""

from __future__ import annotations

import logging

from faust.types import Message, StreamT

from streams.accounting import Later, Outcome
from streams.agents import derived
from streams.agents.context import AgentContext
from streams.agents.deadletters import source_of
from streams.agents.intake import partition_for
from streams.deadletter import SourceRecord
from streams.domain import messages
from streams.domain.events import Rejection
from streams.domain.messages import AllocationUpdate, ExpireWaiting
from streams.domain.orders import Order, OrderEffect, Verdict
from streams.topics import (
    ORDER_FEEDBACK,
    ORDER_STATUS,
    ORDERS,
    PAYMENTS,
    STOCK_REQUESTS,
)

log = logging.getLogger(__name__)

_OUTCOMES = {
    Verdict.APPLIED: Outcome.APPLIED,
    Verdict.DUPLICATE: Outcome.DUPLICATE,
    Verdict.WAITING: Outcome.WAITING,
}


class OrderAgent:
    def __init__(self, context: AgentContext) -> None:
        self._c = context
        self._source = context.topic(ORDERS, PAYMENTS, ORDER_FEEDBACK)
        self._requests = context.topic(STOCK_REQUESTS)
        self._feedback = context.topic(ORDER_FEEDBACK)
        self._status = context.topic(ORDER_STATUS)
        self._logical = {context.catalog.physical(n): n for n in (ORDERS, PAYMENTS, ORDER_FEEDBACK)}

    def register(self, expiry_interval: float) -> None:
        self._c.app.agent(self._source, name="orders")(self._run)
        self._c.app.timer(expiry_interval, name="orders.expiry")(self._expiry_tick)

    async def _run(self, stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            message = event.message
            name = self._logical[message.topic]
            if name == ORDER_FEEDBACK:
                await self._on_feedback(message)
            else:
                await self._on_input(name, message)

    async def _on_input(self, name: str, message: Message) -> None:
        event = await self._c.intake.admit(name, message)
        if event is None:
            return
        order = self._c.tables.order(event.key)
        had_waiting = bool(order.waiting)
        try:
            effect = order.apply_event(
                event,
                lambda: source_of(message).to_json(),
                self._c.rules,
                self._c.policy,
                self._c.now_ms(),
            )
        except Rejection as rejection:
            await self._c.intake.reject(name, message, "rules", rejection.reason, rejection.detail)
            return
        self._c.accounting.outcome(name, _OUTCOMES[effect.verdict], effect.reason)
        await self._commit(order, effect, had_waiting)

    async def _on_feedback(self, message: Message) -> None:
        feedback = await self._c.intake.admit_internal(
            ORDER_FEEDBACK, message, messages.decode_feedback
        )
        if feedback is None:
            return
        order = self._c.tables.order(feedback.order_id)
        had_waiting = bool(order.waiting)
        if isinstance(feedback, AllocationUpdate):
            order.apply_allocation(feedback)
            await self._commit(order, OrderEffect(Verdict.APPLIED), had_waiting)
        elif isinstance(feedback, ExpireWaiting):
            await self._commit(order, order.expire(feedback.now_ms, self._c.policy), had_waiting)

    async def _commit(self, order: Order, effect: OrderEffect, had_waiting: bool) -> None:
        """Dead letters first (awaited), then state, then the other outputs.

        Outputs go through Faust's send buffer without waiting for each one: Faust flushes
        it before committing the offsets of the records that caused them.
        """
        for dead in effect.dead:
            record = SourceRecord.from_json(dead.waiting.record)
            name = self._c.catalog.logical(record.topic)
            await self._c.dead_letters.send(
                name, record, "rules", dead.rejection.reason, dead.rejection.detail
            )
            self._c.accounting.waited(name, Later.DEAD_LETTERED, dead.rejection.reason)
        for waiting in effect.resolved:
            name = self._c.catalog.logical(waiting.record["topic"])
            self._c.accounting.waited(name, Later.APPLIED)
        self._c.tables.save_order(order, order.next_deadline(self._c.policy), had_waiting)
        for request in effect.requests:
            self._requests.send_soon(key=request.sku.encode(), value=messages.encode(request))
        for transition in effect.transitions:
            datum = derived.status_changed(order.order_id, transition)
            self._status.send_soon(
                key=order.order_id.encode(),
                value=self._c.codec.encode(
                    "erpbridge.OrderStatusChanged", datum, topic=self._status.get_topic_name()
                ),
            )

    async def _expiry_tick(self) -> None:
        """Ask the order agent to expire waiting events that are due, on owned partitions.

        The timer only sends messages; the agent applies them like any event, so table
        writes stay in the stream and each partition's owner alone acts on it.
        """
        now = self._c.now_ms()
        topic = self._c.catalog.physical(ORDERS)
        partitions = self._c.catalog.partitions(ORDERS)
        owned = {
            tp.partition for tp in self._c.app.assignor.assigned_actives() if tp.topic == topic
        }
        for key, value in list(self._c.tables.deadlines.items()):
            if int(value) <= now and partition_for(key, partitions) in owned:
                tick = ExpireWaiting(key.decode(), now)
                await self._feedback.send(key=key, value=messages.encode(tick))
