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
from streams.agents.batching import Outbox, partition_groups
from streams.agents.context import AgentContext
from streams.agents.deadletters import source_of
from streams.agents.intake import partition_for
from streams.deadletter import SourceRecord
from streams.domain import messages
from streams.domain.events import Rejection
from streams.domain.messages import AllocationUpdate, ExpireWaiting
from streams.domain.orders import Order, OrderEffect, Verdict
from streams.domain.policy import Policy
from streams.tables import Tables
from streams.topics import (
    ORDER_FEEDBACK,
    ORDER_STATUS,
    ORDERS,
    PAYMENTS,
    STOCK_REQUESTS,
)

log = logging.getLogger(__name__)


class _Working:
    """The orders one partition group touches, each read once and saved once."""

    def __init__(self, tables: Tables) -> None:
        self._tables = tables
        self._orders: dict[str, tuple[Order, bool]] = {}

    def order(self, order_id: str) -> Order:
        entry = self._orders.get(order_id)
        if entry is None:
            order = self._tables.order(order_id)
            entry = self._orders[order_id] = (order, bool(order.waiting))
        return entry[0]

    def save(self, policy: Policy) -> None:
        for order, had_waiting in self._orders.values():
            self._tables.save_order(order, order.next_deadline(policy), had_waiting)


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
        outbox = self._c.outbox()
        async for group in partition_groups(stream, self._c.batch, outbox):
            working = _Working(self._c.tables)
            for event in group:
                message = event.message
                name = self._logical[message.topic]
                if name == ORDER_FEEDBACK:
                    await self._on_feedback(message, working, outbox)
                else:
                    await self._on_input(name, message, working, outbox)
            working.save(self._c.policy)

    async def _on_input(
        self, name: str, message: Message, working: _Working, outbox: Outbox
    ) -> None:
        event = await self._c.intake.admit(name, message)
        if event is None:
            return
        order = working.order(event.key)
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
        await self._emit(order, effect, outbox)

    async def _on_feedback(self, message: Message, working: _Working, outbox: Outbox) -> None:
        feedback = await self._c.intake.admit_internal(
            ORDER_FEEDBACK, message, messages.decode_feedback
        )
        if feedback is None:
            return
        order = working.order(feedback.order_id)
        if isinstance(feedback, AllocationUpdate):
            order.apply_allocation(feedback)
        elif isinstance(feedback, ExpireWaiting):
            await self._emit(order, order.expire(feedback.now_ms, self._c.policy), outbox)

    async def _emit(self, order: Order, effect: OrderEffect, outbox: Outbox) -> None:
        """Dead letters (awaited one by one: they are rare), then the other outputs.

        The order itself is saved once per group, after every event of the group applied.
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
        for request in effect.requests:
            await outbox.send(self._requests, request.sku.encode(), messages.encode(request))
        for transition in effect.transitions:
            datum = derived.status_changed(order.order_id, transition)
            await outbox.send(
                self._status,
                order.order_id.encode(),
                self._c.codec.encode(
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
